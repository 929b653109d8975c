"""mmdet's packaged detector zoo through mmkd, one family folder at a time.

For each folder of mmdet's packaged configs whose model is a detector, one
representative config (the R50 FPN 1x COCO one where there is one) is shrunk
to a ResNet-18 backbone (no checkpoint, BN instead of SyncBN, fewer sampled
RoIs) and built once; its copy is the teacher, as a new user would pair a
model with a bigger one of its own family. The distiller a user would pick
(``DetectionDistiller`` for two-stage detectors, ``DenseDistiller`` for
single-stage ones, the former for anything else) with default DIST settings
must then either

* ``distils``: train one step on 2 images of 64x64 with a finite
  distillation loss and a backward, or
* ``refused``: stop while it is built with an error naming what is supported.

A family whose own model cannot be built or trained on this machine (it
needs detectron2, a download, a file mmdet does not ship, a CUDA-only op) is
``host``: the plain student fails the same way, without mmkd. Anything else
is an unexplained crash and fails the test.

    python tests/test_zoo_sweep.py   # prints the table the README lists
"""
import copy
import glob
import os
import os.path as osp
import time
import warnings

import pytest
import torch

MMDET_CONFIGS = osp.join(osp.dirname(__import__('mmdet').__file__), '.mim', 'configs')
R18 = [64, 128, 256, 512]
#: backbones replaced by ResNet-18 (their necks get its channels)
SHRUNK = {'ResNet', 'ResNetV1d', 'ResNeXt', 'Res2Net', 'ResNeSt', 'RegNet', 'SwinTransformer',
          'PyramidVisionTransformer', 'PyramidVisionTransformerV2', 'mmpretrain.ConvNeXt',
          'EfficientNet', 'mmpretrain.TIMMBackbone', 'HRNet', 'CSPDarknet', 'CSPNeXt',
          'Darknet', 'SSDVGG', 'MobileNetV2'}


def _pick(folder: str):
    """The folder's representative config: R50 / FPN / 1x / COCO first, then the
    shortest name; the first that parses with a model."""
    from mmengine.config import Config

    def rank(path):
        name = osp.basename(path)
        return (-sum(k in name for k in ('r50', 'fpn', '1x', 'coco')), len(name), name)

    for path in sorted(glob.glob(osp.join(MMDET_CONFIGS, folder, '*.py')), key=rank):
        try:
            cfg = Config.fromfile(path, import_custom_modules=False)
        except Exception:  # a config whose _base_ mmdet does not ship
            continue
        if isinstance(cfg.get('model'), dict):
            return osp.basename(path), cfg.model.to_dict()
    return None, None


def _is_detector(model_cfg: dict) -> bool:
    from mmdet.models.detectors import BaseDetector
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cls = MODELS.get(model_cfg.get('type', ''))
    return isinstance(cls, type) and issubclass(cls, BaseDetector)


def _walk(node, fn):
    if isinstance(node, dict):
        fn(node)
        for value in node.values():
            _walk(value, fn)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _walk(value, fn)


#: widths of FPN-based necks and heads: 256 -> 32, box-head FCs 1024 -> 64
NARROW = {'in_channels': {256: 32}, 'out_channels': {256: 32}, 'feat_channels': {256: 32},
          'output_channels': {256: 32}, 'conv_out_channels': {256: 32, 1024: 64},
          'fc_out_channels': {1024: 64}}


def _cpu_friendly(node: dict) -> None:
    for key, narrow in NARROW.items():
        if isinstance(node.get(key), int) and node[key] in narrow:
            node[key] = narrow[node[key]]
    if node.get('type') == 'HourglassNet':  # CornerNet's 104 layers: 2 levels, 32 wide
        node.update(downsample_times=2, stage_channels=(32, 32, 32), stage_blocks=(1, 1, 1),
                    feat_channel=32)
    _cpu_norms(node)


def _cpu_norms(node: dict) -> None:
    if node.get('type') in ('SyncBN', 'MMSyncBN'):
        node['type'] = 'BN'
    init = node.get('init_cfg')
    if isinstance(init, dict) and init.get('type') == 'Pretrained':
        node['init_cfg'] = None
    elif isinstance(init, list):
        node['init_cfg'] = [i for i in init if i.get('type') != 'Pretrained'] or None
    if isinstance(node.get('pretrained'), str):
        node['pretrained'] = None
    if isinstance(node.get('sampler'), dict) and 'num' in node['sampler']:
        node['sampler']['num'] = min(node['sampler']['num'], 64)
    if 'max_per_img' in node and 'nms' in node and 'nms_pre' in node:  # RPN proposals
        node.update(nms_pre=min(node['nms_pre'], 200), max_per_img=min(node['max_per_img'], 64))


def shrink(model: dict, narrow: bool = True) -> dict:
    """ResNet-18 backbone (no checkpoint), its channels into the neck, 32-wide
    necks and heads, CPU-only norms, at most 64 sampled RoIs per image."""
    model = copy.deepcopy(model)
    model.pop('pretrained', None)
    backbone, neck = model.get('backbone'), model.get('neck')
    first = neck[0] if isinstance(neck, list) else neck
    if isinstance(backbone, dict) and backbone.get('type') in SHRUNK and isinstance(first, dict):
        kind = first.get('type')
        if kind == 'SSDNeck':  # VGG's strides 8 and 16: ResNet's stages 2 and 3
            out = (1, 2)
        elif kind == 'DilatedEncoder':
            out = (3, )
        else:
            out = tuple(range(4 - len(first['in_channels']), 4))
        channels = [R18[i] for i in out]
        model['backbone'] = dict(type='ResNet', depth=18, num_stages=4, out_indices=out,
                                 frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True),
                                 norm_eval=False, style='pytorch', init_cfg=None)
        if kind == 'DilatedEncoder':
            first['in_channels'] = channels[0]
        elif kind == 'YOLOV3Neck':  # deepest first
            first['in_channels'] = channels[::-1]
        elif kind == 'SSDNeck':  # passes its inputs through as the first outputs
            first['in_channels'] = channels
            first['out_channels'] = channels + list(first['out_channels'][2:])
            model['bbox_head']['in_channels'] = first['out_channels']
        else:
            first['in_channels'] = channels
    _walk(model, _cpu_friendly if narrow else _cpu_norms)
    if isinstance(model.get('data_preprocessor'), dict):  # no padding to 896x896 crops
        model['data_preprocessor'].pop('batch_augments', None)
    return model


def _num_classes(model) -> int:
    head = getattr(getattr(model, 'roi_head', None), 'bbox_head', None)
    if isinstance(head, torch.nn.ModuleList):
        head = head[0]
    head = head if head is not None else getattr(model, 'bbox_head', None)
    return int(getattr(head, 'num_classes', 3) or 3)


def _batch(model, size: int):
    from mmdet.testing import demo_mm_inputs
    torch.manual_seed(0)
    from mmengine.structures import InstanceData
    num_classes = _num_classes(model)
    roi_head = getattr(model, 'roi_head', None)
    semantic = hasattr(model, 'semantic_head') or getattr(roi_head, 'with_semantic', False)
    masks = bool(getattr(roi_head, 'with_mask', False))
    packed = demo_mm_inputs(2, [[3, size, size]] * 2, num_items=[3, 3],
                            num_classes=max(num_classes, 2), with_mask=masks,
                            with_semantic=semantic)
    for sample in packed['data_samples']:
        sample.gt_instances.labels %= num_classes  # mmdet draws them from [1, num_classes)
        boxes = torch.rand(50, 4).sort(1).values * size  # Fast R-CNN's precomputed proposals
        sample.proposals = InstanceData(bboxes=boxes[:, [0, 1, 2, 3]].clone(),
                                        scores=torch.rand(50), labels=torch.zeros(50).long())
    data = model.data_preprocessor(packed, True)
    return data['inputs'], data['data_samples']


def _losses(student) -> dict:
    sigmoid = bool(getattr(getattr(student, 'bbox_head', None), 'use_sigmoid_cls', False))
    if _is_query_based(student):  # DETR heads: focal loss, per-class sigmoids
        sigmoid = True
    return dict(loss_dist=dict(type='mmkd.DISTLoss', use_sigmoid=sigmoid))


def _is_query_based(model) -> bool:
    from mmdet.models.detectors import DetectionTransformer
    return isinstance(model, DetectionTransformer)


def _total(losses: dict) -> torch.Tensor:
    total = 0
    for key, value in losses.items():
        if 'loss' in key:
            total = total + (sum(value) if isinstance(value, (list, tuple)) else value)
    return total


def sweep_one(folder: str) -> dict:
    """Run one family; returns dict(folder, config, outcome, detail)."""
    import mmkd  # noqa: F401
    from mmdet.models.detectors import SingleStageDetector, TwoStageDetector
    from mmkd.models.base_distiller import build_model
    from mmkd.registry import MODELS
    name, cfg = _pick(folder)
    row = dict(folder=folder, config=name)
    if cfg is None or not _is_detector(cfg):
        return dict(row, outcome='not a detector')
    # DETR families keep their widths: the neck feeds a 256-wide transformer
    # whose box sine embeddings fix that width
    narrow = not ('encoder' in cfg and 'decoder' in cfg)
    try:
        torch.manual_seed(0)
        student = build_model(shrink(cfg, narrow), 'mmdet')
    except Exception:  # a width the generic narrowing got wrong: full widths
        try:
            student = build_model(shrink(cfg, narrow=False), 'mmdet')
        except Exception as err:  # the family's own model, without mmkd
            return dict(row, outcome='host',
                        detail=f'{type(err).__name__}: {err}'.splitlines()[0])
    student.init_weights()  # as the Runner does (SSD's L2Norm starts uninitialised)
    kind = 'mmkd.DetectionDistiller'
    if isinstance(student, SingleStageDetector) and not isinstance(student, TwoStageDetector):
        kind = 'mmkd.DenseDistiller'
    if _is_query_based(student):  # the DETR families
        kind = 'mmkd.QueryDistiller'
    row['distiller'] = kind
    try:
        distiller = MODELS.build(dict(type=kind, student=student, teacher=copy.deepcopy(student),
                                      distill_losses=_losses(student)))
    except (TypeError, ValueError) as err:
        return dict(row, outcome='refused', detail=str(err))
    distiller.train()
    sizes = (320, ) if 'SSDNeck' in repr(cfg.get('neck')) else (64, 256)
    for size in sizes:  # 256: heads whose ops need more than 1x1 maps at P7 (DDOD)
        inputs, samples = _batch(student, size)
        try:
            losses = distiller.loss(inputs, samples)
            _total(losses).backward()
        except Exception as err:
            try:  # is it the student's own step that fails here?
                student.zero_grad()
                _total(student.loss(inputs, samples)).backward()
            except Exception as own:
                failure = f'{type(own).__name__}: {own}'.splitlines()[0]
                continue
            raise AssertionError(f'{folder}: distilled step crashed, the plain student step '
                                 f'does not: {type(err).__name__}: {err}') from err
        loss = losses['loss_dist']
        return dict(row, outcome='distils', detail=f'loss_dist={float(loss):.4f} at {size}px',
                    loss=loss)
    return dict(row, outcome='host', detail=failure)


def families():
    return sorted(d for d in os.listdir(MMDET_CONFIGS)
                  if not d.startswith('_') and glob.glob(osp.join(MMDET_CONFIGS, d, '*.py')))


def _runner_state() -> None:
    """What mmengine's Runner sets before a step: TOOD reads the epoch."""
    from mmengine.logging import MessageHub
    MessageHub.get_current_instance().update_info('epoch', 0)


def test_every_packaged_detector_family_distils_or_is_refused_clearly():
    warnings.filterwarnings('ignore')
    _runner_state()
    rows = [sweep_one(folder) for folder in families()]
    by = {r['folder']: r for r in rows}
    for row in rows:
        if row['outcome'] == 'distils':
            assert torch.isfinite(row['loss']), row
        elif row['outcome'] == 'refused':
            assert 'supported' in row['detail'] or 'use_sigmoid' in row['detail'], row
    # what the README promises
    for folder in ('faster_rcnn', 'mask_rcnn', 'retinanet', 'fcos', 'atss', 'gfl', 'lvis',
                   'objects365', 'openimages', 'v3det', 'pascal_voc', 'ssd', 'yolof', 'yolox',
                   'rtmdet', 'tood', 'vfnet', 'fsaf', 'free_anchor', 'autoassign', 'fast_rcnn',
                   'panoptic_fpn', 'point_rend', 'grid_rcnn', 'double_heads', 'swin', 'rpn',
                   'dino', 'dab_detr'):
        assert by[folder]['outcome'] == 'distils', by[folder]
    for folder in ('cascade_rcnn', 'htc', 'scnet', 'sparse_rcnn', 'queryinst', 'detr',
                   'yolo', 'solo', 'crowddet', 'tridentnet', 'seesaw_loss', 'sabl'):
        assert by[folder]['outcome'] == 'refused', by[folder]
    # DETR families: mmkd.QueryDistiller distils DINO and DAB-DETR (and two-stage
    # Deformable DETR, whose folder's representative is the single-stage one);
    # the families whose queries are learned embeddings, and DDQ-DETR, are
    # refused by it
    for folder in ('detr', 'conditional_detr', 'deformable_detr', 'ddq'):
        assert by[folder]['outcome'] == 'refused', by[folder]
        assert by[folder]['detail'].startswith('QueryDistiller'), by[folder]
    assert sum(r['outcome'] == 'distils' for r in rows) >= 60
    assert sum(r['outcome'] == 'host' for r in rows) <= 15

if __name__ == '__main__':
    warnings.filterwarnings('ignore')
    _runner_state()
    start = time.time()
    for folder in families():
        t = time.time()
        try:
            row = sweep_one(folder)
        except AssertionError as err:
            row = dict(folder=folder, outcome='CRASH', detail=str(err))
        print(f"{folder:22s} {row['outcome']:15s} {time.time() - t:5.1f}s  "
              f"{row.get('distiller', '')} {row.get('config')}  {str(row.get('detail', ''))[:150]}",
              flush=True)
    print(f'total {time.time() - start:.0f}s')
