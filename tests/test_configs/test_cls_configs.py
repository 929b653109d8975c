"""Every shipped ImageNet config parses, states its authors' settings and builds."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmkd.registry import HOOKS, MODELS
from tests.helpers import REPO

ROOT = osp.join(REPO, 'configs')
IMAGENET = sorted(p for method in ('kd', 'dkd', 'dist', 'reviewkd')
                  for p in glob.glob(osp.join(ROOT, method, '*_imagenet.py'))
                  if not p.endswith('_ls_imagenet.py'))  # LS: tests/test_configs/test_ls_configs.py
ZOO = 'https://download.openmmlab.com/mmclassification/v0/resnet/'


def test_all_issue_configs_exist():
    names = {osp.relpath(p, ROOT) for p in IMAGENET}
    assert names == {
        'kd/resnet34_resnet18_imagenet.py', 'dkd/resnet34_resnet18_imagenet.py',
        'dkd/resnet50_mobilenetv1_imagenet.py', 'dist/resnet34_resnet18_imagenet.py',
        'dist/resnet50_mobilenetv1_imagenet.py', 'reviewkd/resnet34_resnet18_imagenet.py',
        'reviewkd/resnet50_mobilenetv1_imagenet.py', 'dkd/resnet34_resnet18_reviewkd_imagenet.py'}
    for path in IMAGENET:  # each states only what distillation changes
        with open(path) as f:
            assert len(f.read().splitlines()) <= 40, path


def settings(path: str):
    """(total batch over 8 GPUs, lr, losses) the authors used for this config."""
    name = osp.relpath(path, ROOT)
    r18 = 'resnet18' in name
    if name.startswith('kd/'):
        return 512, 0.2, dict(loss_kd=dict(type='mmkd.KDLoss', tau=1.0, loss_weight=0.5))
    if name.startswith('dkd/') and 'reviewkd' not in name:
        return 512, 0.2, dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0,
                                            beta=0.5 if r18 else 2.0, tau=1.0))
    if name.startswith('dist/'):
        return 256, 0.1, dict(loss_dist=dict(type='mmkd.DISTLoss', beta=1.0, gamma=1.0, tau=1.0,
                                             loss_weight=2.0))
    if name.startswith('dkd/'):  # DKD + ReviewKD on ReviewKD's schedule
        return 256, 0.1, dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.5, tau=1.0))
    return 256, 0.1, dict()


@pytest.mark.parametrize('path', IMAGENET, ids=lambda p: osp.relpath(p, ROOT))
def test_imagenet_config_builds_with_authors_settings(path):
    cfg = Config.fromfile(path)
    r18 = 'resnet18' in path
    assert cfg.model.type == 'mmkd.ClassificationDistiller'
    assert 'mmkd' in cfg.custom_imports.imports
    batch, lr, losses = settings(path)
    assert 8 * cfg.train_dataloader.batch_size == batch == cfg.auto_scale_lr.base_batch_size
    assert cfg.optim_wrapper.optimizer.lr == lr and cfg.optim_wrapper.optimizer.weight_decay == 1e-4
    assert cfg.train_cfg.max_epochs == 100
    assert list(cfg.param_scheduler.milestones) == [30, 60, 90]
    assert cfg.model.teacher_ckpt == ZOO + ('resnet34_8xb32_in1k_20210831-f257d4e6.pth' if r18
                                            else 'resnet50_8xb32_in1k_20210831-ea4938fc.pth')
    assert {k: dict(v) for k, v in cfg.model.distill_losses.items()} == losses
    # KD's CE 0.5 + KD 0.5; every other method keeps the student's CE at 1
    ce = cfg.model.student.head.loss.loss_weight
    assert ce == (0.5 if osp.relpath(path, ROOT).startswith('kd/') else 1.0)
    reviewkd = cfg.model.get('reviewkd')
    if 'reviewkd' in path:
        assert reviewkd.loss.loss_weight == (1.0 if r18 else 8.0)
        assert list(reviewkd.connector.in_channels) == (
            [64, 128, 256, 512, 512] if r18 else [128, 256, 512, 1024, 1024])
        assert list(reviewkd.connector.out_channels) == (
            [64, 128, 256, 512, 512] if r18 else [256, 512, 1024, 2048, 2048])
        assert reviewkd.connector.mid_channels == (512 if r18 else 256)
        assert [dict(h) for h in cfg.custom_hooks] == [
            dict(type='mmkd.DistillWarmupHook', warmup=1, by_epoch=True)]
        # mdistiller's WARMUP_EPOCHS 1 counts epochs from 1: factor 1 from the start
        assert HOOKS.build(cfg.custom_hooks[0]).factor(0) == 1.0
    else:
        assert reviewkd is None

    # builds like the Runner does (top-level data_preprocessor merged in)
    model_cfg = cfg.model.copy()
    model_cfg.teacher_ckpt = None
    model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    assert model.student.head.num_classes == model.teacher.head.num_classes == 1000
    assert model.student.data_preprocessor.mean.flatten().tolist() == pytest.approx(
        [123.675, 116.28, 103.53])
    params = sum(p.numel() for p in model.student.parameters())
    assert params == (11_689_512 if r18 else 4_231_976)  # torchvision R18; MobileNetV1
    assert model.teacher.backbone.depth == (34 if r18 else 50)
    if reviewkd is not None:
        with torch.no_grad():
            model.eval()
            inputs = torch.zeros(2, 3, 64, 64)
            fused = model.connector([*model.student.backbone(inputs), torch.zeros(
                2, reviewkd.connector.in_channels[-1], 1, 1)])
            teacher = model.teacher.backbone(inputs)
        assert [f.shape for f in fused[:4]] == [t.shape for t in teacher]



def test_exported_student_config_keeps_mmkd_only_when_the_student_needs_it():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'export_student', osp.join(ROOT, '..', 'tools', 'export_student.py'))
    export = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(export)
    r18 = export.student_config(Config.fromfile(osp.join(ROOT, 'dkd/resnet34_resnet18_imagenet.py')))
    assert r18.model.type == 'ImageClassifier' and 'custom_imports' not in r18
    mv1 = export.student_config(Config.fromfile(
        osp.join(ROOT, 'reviewkd/resnet50_mobilenetv1_imagenet.py')))
    assert mv1.model.backbone.type == 'mmkd.MobileNetV1'
    assert list(mv1.custom_imports.imports) == ['mmkd']  # mmpretrain's test tool needs it
    assert mv1.custom_hooks == []  # mmkd's distillation hooks are dropped
