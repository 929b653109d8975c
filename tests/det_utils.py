"""Tiny mmdet two-stage detectors and batches for CPU tests."""
import copy

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
