"""The KD + DOT ImageNet configs: mdistiller's configs/imagenet/{r34_r18,
r50_mv1}/dot.yaml settings, and the Runner's way of building them gives a
DOTOptimWrapper with task momentum 0.81 and distillation momentum 0.99."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from mmkd.engine.optim import DOTOptimWrapper
from mmkd.registry import MODELS
from tests.helpers import REPO

ROOT = osp.join(REPO, 'configs', 'dot')
CONFIGS = ['resnet34_resnet18_imagenet.py', 'resnet50_mobilenetv1_imagenet.py']
ZOO = 'https://download.openmmlab.com/mmclassification/v0/resnet/'


@pytest.mark.parametrize('name', CONFIGS)
def test_dot_config_has_mdistillers_settings_and_builds(name):
    path = osp.join(ROOT, name)
    with open(path) as f:
        assert len(f.read().splitlines()) <= 40
    cfg = Config.fromfile(path)
    r18 = 'resnet18' in name
    # mdistiller: BATCH_SIZE 512, LR 0.2, MOMENTUM 0.9, WEIGHT_DECAY 1e-4, DOT.DELTA 0.09
    assert 8 * cfg.train_dataloader.batch_size == 512 == cfg.auto_scale_lr.base_batch_size
    wrapper = cfg.optim_wrapper
    assert wrapper.type == 'mmkd.DOTOptimWrapper' and wrapper.delta == 0.09
    assert (wrapper.optimizer.type, wrapper.optimizer.lr, wrapper.optimizer.momentum,
            wrapper.optimizer.weight_decay) == ('SGD', 0.2, 0.9, 1e-4)
    # EPOCHS 100, LR_DECAY_STAGES [30, 60, 90], LR_DECAY_RATE 0.1
    assert cfg.train_cfg.max_epochs == 100
    assert list(cfg.param_scheduler.milestones) == [30, 60, 90]
    assert cfg.param_scheduler.gamma == 0.1
    # KD: TEMPERATURE 1, CE_WEIGHT 0.5, KD_WEIGHT 0.5
    assert {k: dict(v) for k, v in cfg.model.distill_losses.items()} == dict(
        loss_kd=dict(type='mmkd.KDLoss', tau=1.0, loss_weight=0.5))
    assert cfg.model.student.head.loss.loss_weight == 0.5
    assert cfg.model.teacher_ckpt == ZOO + ('resnet34_8xb32_in1k_20210831-f257d4e6.pth' if r18
                                            else 'resnet50_8xb32_in1k_20210831-ea4938fc.pth')

    model_cfg = cfg.model.copy()
    model_cfg.teacher_ckpt = None
    model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    assert model.teacher.backbone.depth == (34 if r18 else 50)
    # as the Runner builds it: under the config's default scope (mmpretrain)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        built = build_optim_wrapper(model, cfg.optim_wrapper)
    assert isinstance(built, DOTOptimWrapper)
    group = built.optimizer.param_groups[0]
    assert group['momentum'] - built.delta == pytest.approx(0.81)
    assert group['momentum'] + built.delta == pytest.approx(0.99)
    trained = {id(p) for g in built.optimizer.param_groups for p in g['params']}
    assert trained == {id(p) for p in model.student.parameters()}  # never the teacher
