"""DIST's two COCO rows (and their "+ mimic" variants) parse, state DIST's
settings and mmdet's zoo teachers, and build with teacher_ckpt=None."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmkd.registry import MODELS
from tests.helpers import REPO

ROOT = osp.join(REPO, 'configs', 'dist')
ZOO = 'https://download.openmmlab.com/mmdetection/v2.0/'
CONFIGS = {
    'faster_rcnn_x101_cascade_r50_coco.py': ('mmkd.DetectionDistiller', False),
    'faster_rcnn_x101_cascade_r50_mimic_coco.py': ('mmkd.DetectionDistiller', True),
    'retinanet_x101_r50_coco.py': ('mmkd.DenseDistiller', False),
    'retinanet_x101_r50_mimic_coco.py': ('mmkd.DenseDistiller', True),
}


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_dist_coco_config_settings(name):
    cfg = Config.fromfile(osp.join(ROOT, name))
    kind, mimic = CONFIGS[name]
    assert cfg.model.type == kind and 'mmkd' in cfg.custom_imports.imports
    assert cfg.train_dataloader.batch_size == 2 and cfg.train_cfg.max_epochs == 12
    dist = cfg.model.distill_losses.loss_dist
    assert (dist.beta, dist.gamma, dist.tau) == (1.0, 1.0, 1.0)
    assert dist.get('use_sigmoid', False) == (kind == 'mmkd.DenseDistiller')
    assert cfg.model.student.backbone.depth == 50
    if kind == 'mmkd.DetectionDistiller':  # the zoo's 45.6 AP Cascade Mask R-CNN X101-64x4d
        assert cfg.model.teacher.endswith('cascade-mask-rcnn_x101-64x4d_fpn_20e_coco.py')
        assert cfg.model.teacher_ckpt == ZOO + (
            'cascade_rcnn/cascade_mask_rcnn_x101_64x4d_fpn_20e_coco/'
            'cascade_mask_rcnn_x101_64x4d_fpn_20e_coco_20200512_161033-bdb5126a.pth')
        assert cfg.model.teacher_stage == 'mean'
    else:  # the zoo's 41.0 AP RetinaNet X101-64x4d 1x
        assert cfg.model.teacher.endswith('retinanet_x101-64x4d_fpn_1x_coco.py')
        assert cfg.model.teacher_ckpt.startswith(ZOO + 'retinanet/retinanet_x101_64x4d_fpn_1x')
    assert ('mimic' in cfg.model) == mimic
    if mimic:
        assert cfg.model.mimic.type == 'mmkd.FPNMimicLoss'


@pytest.mark.parametrize('name', ['faster_rcnn_x101_cascade_r50_mimic_coco.py',
                                  'retinanet_x101_r50_mimic_coco.py'])
def test_dist_coco_config_builds(name):
    cfg = Config.fromfile(osp.join(ROOT, name))
    cfg.model.teacher_ckpt = None
    model = MODELS.build(cfg.model)
    teacher = model.teacher
    assert teacher.backbone.depth == 101 and teacher.backbone.groups == 64
    if 'cascade' in name:
        assert type(teacher.roi_head).__name__ == 'CascadeRoIHead'
        assert model.teacher_stages == [0, 1, 2]
    else:
        assert type(teacher.bbox_head).__name__ == 'RetinaHead'
    assert all(isinstance(a, torch.nn.Identity) for a in model.mimic.adapters)  # 256 -> 256
    with torch.no_grad():
        feats = model.student.extract_feat(torch.zeros(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [256] * 5
