"""Every shipped Cityscapes config parses, states DIST's schedule and the
method's settings, and builds (teacher_ckpt=None: no download)."""
import functools
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from mmkd.models.base_distiller import build_model
from mmkd.registry import MODELS
from tests.helpers import REPO

ROOT = osp.join(REPO, 'configs')
# PS-KD self-distils (no teacher checkpoint): test_schedule_configs.py
CITYSCAPES = sorted(p for p in glob.glob(osp.join(ROOT, '*', '*_cityscapes.py'))
                    if '_base_' not in p and osp.join('configs', 'pskd') not in p)
TEACHER_URL = ('https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/'
               'deeplabv3_r101-d8_512x1024_80k_cityscapes/')


@functools.lru_cache(maxsize=None)
def built_student(base_config: str):
    """Modules built once per distinct model config (the R101 teacher once in
    all): the method configs on one base differ in their losses only."""
    return build_model(Config.fromfile(base_config).model.student, 'mmseg')


@functools.lru_cache(maxsize=None)
def built_teacher(teacher: str):
    return build_model(teacher, 'mmseg')


def test_all_issue_configs_exist():
    names = {osp.relpath(p, ROOT) for p in CITYSCAPES}
    for method in ('kd', 'dkd', 'dist'):
        for student in ('deeplabv3', 'pspnet'):
            assert f'{method}/{student}_r101_r18_cityscapes.py' in names
    assert 'dist/deeplabv3_r101_r18_reviewkd_cityscapes.py' in names


def test_configs_state_only_what_distillation_changes():
    for path in CITYSCAPES + glob.glob(osp.join(ROOT, '_base_', '*_cityscapes.py')):
        with open(path) as f:
            assert len(f.read().splitlines()) <= 40, path


@pytest.mark.parametrize('path', CITYSCAPES, ids=lambda p: osp.relpath(p, ROOT))
def test_cityscapes_config_builds_with_its_settings(path):
    cfg = Config.fromfile(path)
    model = cfg.model
    assert model.type == 'mmkd.SegmentationDistiller'
    assert 'mmkd' in cfg.custom_imports.imports
    # DIST's schedule: 40k iterations, 2 images per GPU on 8 GPUs, lr 0.02, poly
    assert cfg.train_cfg.max_iters == 40000 and cfg.train_dataloader.batch_size == 2
    assert cfg.optim_wrapper.optimizer.lr == 0.02
    assert cfg.param_scheduler[0].end == 40000 and cfg.param_scheduler[0].power == 0.9
    assert cfg.train_dataloader.dataset.type == 'CityscapesDataset'
    assert model.teacher_ckpt.startswith(TEACHER_URL)
    assert model.student.pretrained == 'open-mmlab://resnet18_v1c'
    losses, aux = model.distill_losses, model.aux_distill_losses
    ((name, loss), ), ((aux_name, aux_loss), ) = losses.items(), aux.items()
    assert aux_name == f'{name}_aux' and aux_loss.loss_weight == 0.4
    assert loss.get('loss_weight', 1.0) == 1.0 and loss.tau == 1.0
    if 'dist/' in path:
        assert (loss.beta, loss.gamma) == (1.0, 1.0) == (aux_loss.beta, aux_loss.gamma)
    if 'dkd/' in path:
        assert (loss.alpha, loss.beta) == (1.0, 0.25)
    base = osp.join(ROOT, '_base_', osp.basename(path).replace('_reviewkd', ''))
    base_model = Config.fromfile(base).model  # the cached modules are this config's
    assert (cfg.model.student, cfg.model.teacher) == (base_model.student, base_model.teacher)
    model = cfg.model.to_dict()
    model.update(student=built_student(base), teacher=built_teacher(cfg.model.teacher),
                 teacher_ckpt=None)
    distiller = MODELS.build(model)
    student, teacher = distiller.student, distiller.teacher
    assert teacher.backbone.depth == 101 and type(teacher.decode_head).__name__ == 'ASPPHead'
    assert student.backbone.depth == 18
    assert type(student.decode_head).__name__ == (
        'PSPHead' if 'pspnet' in path else 'ASPPHead')
    assert student.decode_head.num_classes == teacher.decode_head.num_classes == 19
    if 'reviewkd' in path:
        assert distiller.connector is not None
        assert cfg.model.reviewkd.loss.loss_weight == 1.2
