"""Tiny mmdet detectors (two-stage Faster R-CNN, single-stage RetinaNet /
FCOS) and batches for CPU tests."""
import copy
import functools

import torch


def mmdet_model(config: str):
    """The ``model`` of one of mmdet's packaged configs (``mmdet::...``)."""
    from mmengine.hub import get_config
    return get_config(f'mmdet::{config}').model


def tiny_faster_rcnn(depth: int = 18, num_classes: int = 3, channels: int = 32) -> dict:
    """mmdet's packaged Faster R-CNN config, shrunk: small FPN, few RoIs."""
    cfg = mmdet_model('faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
    stage = [64, 128, 256, 512] if depth in (18, 34) else [256, 512, 1024, 2048]
    cfg.backbone.update(depth=depth, init_cfg=None, norm_eval=False)
    cfg.neck.update(in_channels=stage, out_channels=channels)
    cfg.rpn_head.update(in_channels=channels, feat_channels=channels)
    cfg.roi_head.bbox_roi_extractor.out_channels = channels
    cfg.roi_head.bbox_head.update(in_channels=channels, fc_out_channels=64, num_classes=num_classes)
    cfg.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
    cfg.train_cfg.rcnn.sampler.num = 32
    cfg.test_cfg.rpn.update(nms_pre=200, max_per_img=50)
    return cfg.to_dict() if hasattr(cfg, 'to_dict') else copy.deepcopy(cfg)


def det_batch(model, batch_size: int = 2, size: int = 64, num_classes: int = 3, seed: int = 0):
    """A preprocessed batch (inputs, data_samples) for ``model``."""
    from mmdet.testing import demo_mm_inputs
    torch.manual_seed(seed)
    packed = demo_mm_inputs(batch_size, [[3, size, size]] * batch_size, num_items=[3] * batch_size,
                            num_classes=num_classes)
    data = model.data_preprocessor(packed, True)
    return data['inputs'], data['data_samples']


#: Per-prior sigmoid distillation losses for the single-stage detectors.
SIGMOID_LOSSES = dict(loss_kd=dict(type='mmkd.KDLoss', use_sigmoid=True),
                      loss_dist=dict(type='mmkd.DISTLoss', use_sigmoid=True))


@functools.lru_cache()
def _tiny(family: str, channels: int) -> dict:
    if family == 'retinanet':
        cfg = mmdet_model('retinanet/retinanet_r18_fpn_1x_coco.py')
    else:
        cfg = mmdet_model('fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py')
        cfg.backbone.update(depth=18)
        cfg.neck.in_channels = [64, 128, 256, 512]
    cfg.backbone.update(init_cfg=None, norm_eval=False)
    cfg.neck.out_channels = channels
    cfg.bbox_head.update(in_channels=channels, feat_channels=channels, stacked_convs=1,
                         num_classes=3)
    return cfg.to_dict()


def tiny(family: str = 'retinanet', channels: int = 32, **head) -> dict:
    """A narrow single-stage detector config (``'retinanet'`` or ``'fcos'``)
    with 3 classes; ``head`` updates its ``bbox_head``."""
    cfg = copy.deepcopy(_tiny(family, channels))
    cfg['bbox_head'].update(head)
    return cfg
