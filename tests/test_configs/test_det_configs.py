"""Every shipped COCO config parses, states the paper's settings and builds."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmkd.registry import MODELS
from tests.helpers import REPO

ROOT = osp.join(REPO, 'configs')
# PS-KD self-distils (no teacher checkpoint): test_schedule_configs.py
COCO = sorted(p for p in glob.glob(osp.join(ROOT, '*', 'faster_rcnn_*_coco.py'))
              if '_base_' not in p and osp.join('configs', 'pskd') not in p
              and 'cascade' not in p)  # DIST's cascade pairs: test_dist_det_configs.py


def test_all_issue_configs_exist():
    names = {osp.relpath(p, ROOT) for p in COCO}
    for pair in ('r101_r18', 'r50_mv2'):
        for method in ('kd', 'dkd', 'dist', 'reviewkd'):
            assert f'{method}/faster_rcnn_{pair}_coco.py' in names
        assert f'dkd/faster_rcnn_{pair}_reviewkd_coco.py' in names


@pytest.mark.parametrize('path', COCO, ids=lambda p: osp.relpath(p, ROOT))
def test_coco_config_builds_with_paper_settings(path):
    cfg = Config.fromfile(path)
    assert cfg.model.type == 'mmkd.DetectionDistiller'
    assert 'mmkd' in cfg.custom_imports.imports
    assert cfg.train_dataloader.batch_size == 2 and cfg.train_cfg.max_epochs == 12
    assert cfg.model.teacher_ckpt.startswith('https://download.openmmlab.com/mmdetection/')
    r18 = 'r101_r18' in path
    assert cfg.model.teacher.backbone.depth == (101 if r18 else 50)
    student = cfg.model.student.backbone
    assert (student.depth == 18) if r18 else (student.type == 'MobileNetV2')
    losses = cfg.model.distill_losses
    if 'dkd/' in path:
        assert dict(losses.loss_dkd) == dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.25, tau=1.0)
    if 'reviewkd' in path:
        assert cfg.model.reviewkd.loss.loss_weight == (1.2 if r18 else 2.0)
    cfg.model.teacher_ckpt = None
    model = MODELS.build(cfg.model)
    assert model.student.roi_head.bbox_head.num_classes == 80
    with torch.no_grad():
        feats = model.student.extract_feat(torch.zeros(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [256] * 5  # FPN P2-P6, what ReviewKD expects
