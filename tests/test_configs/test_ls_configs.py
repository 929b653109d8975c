"""The logit-standardization ImageNet configs (KD+LS, DKD+LS, R34 -> R18):
the settings of github.com/sunshangquan/logit-standardization-KD's ImageNet
command, and they build a distiller whose loss standardizes."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmkd.losses import DKDLoss, KDLoss
from mmkd.registry import MODELS
from tests.helpers import REPO

ROOT = osp.join(REPO, 'configs')
ZOO = 'https://download.openmmlab.com/mmclassification/v0/resnet/'
# config -> (student CE weight, distillation losses): --base-temp 2 --kd-weight 9
# on configs/imagenet/r34_r18/{kd,dkd}.yaml, as their tools/train.py applies them.
CONFIGS = {
    'kd/resnet34_resnet18_ls_imagenet.py': (1.0, dict(loss_kd=dict(
        type='mmkd.KDLoss', tau=2.0, loss_weight=9.0, logit_standardize=True))),
    'dkd/resnet34_resnet18_ls_imagenet.py': (1.0, dict(loss_dkd=dict(
        type='mmkd.DKDLoss', alpha=9.0, beta=4.5, tau=2.0, logit_standardize=True))),
}


@pytest.mark.parametrize('rel', sorted(CONFIGS))
def test_ls_config_has_the_authors_settings_and_builds(rel):
    path = osp.join(ROOT, rel)
    with open(path) as f:
        assert len(f.read().splitlines()) <= 40
    cfg = Config.fromfile(path)
    ce, losses = CONFIGS[rel]
    assert cfg.model.type == 'mmkd.ClassificationDistiller'
    assert {k: dict(v) for k, v in cfg.model.distill_losses.items()} == losses
    assert cfg.model.student.head.loss.loss_weight == ce
    # the schedule of their kd.yaml / dkd.yaml: batch 512, lr 0.2, wd 1e-4, 100 epochs
    assert 8 * cfg.train_dataloader.batch_size == 512 == cfg.auto_scale_lr.base_batch_size
    assert cfg.optim_wrapper.optimizer.lr == 0.2
    assert cfg.optim_wrapper.optimizer.weight_decay == 1e-4
    assert cfg.optim_wrapper.optimizer.momentum == 0.9
    assert cfg.train_cfg.max_epochs == 100
    assert list(cfg.param_scheduler.milestones) == [30, 60, 90]
    assert cfg.model.teacher_ckpt == ZOO + 'resnet34_8xb32_in1k_20210831-f257d4e6.pth'
    assert not cfg.get('custom_hooks')  # WARMUP 1 from epoch 1: no warm-up

    model_cfg = cfg.model.copy()
    model_cfg.teacher_ckpt = None
    model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    assert model.teacher.backbone.depth == 34 and model.student.backbone.depth == 18
    (name, loss), = model.distill_losses.items()
    assert isinstance(loss, DKDLoss if rel.startswith('dkd/') else KDLoss)
    assert loss.logit_standardize and loss.tau == 2.0
    # the built loss standardizes: adding a constant to a row changes nothing
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(4, 1000, generator=g), torch.randn(4, 1000, generator=g)
    target = torch.randint(0, 1000, (4, ), generator=g)
    torch.testing.assert_close(loss(student + 5.0, teacher, target),
                               loss(student, teacher, target))
