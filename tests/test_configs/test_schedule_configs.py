"""The ESKD and PS-KD configs parse, inherit their recipes and carry the
schedule settings their comments state; their hooks build."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmkd.registry import HOOKS
from tests.helpers import REPO

ROOT = osp.join(REPO, 'configs')


def load(name):
    return Config.fromfile(osp.join(ROOT, name))


def hooks_of(cfg, type_name):
    found = [h for h in cfg.get('custom_hooks', []) if h['type'] == type_name]
    assert len(found) == 1, cfg.get('custom_hooks')
    HOOKS.build(dict(found[0]))  # the settings are valid
    return found[0]


def test_eskd_imagenet_stops_kd_at_the_first_lr_step():
    cfg = load('eskd/resnet34_resnet18_imagenet.py')
    assert cfg.model.type == 'mmkd.ClassificationDistiller'
    assert cfg.model.distill_losses.loss_kd.type == 'mmkd.KDLoss'  # the KD recipe underneath
    assert cfg.train_cfg.max_epochs == 100 and cfg.param_scheduler.milestones[0] == 30
    hook = hooks_of(cfg, 'mmkd.EarlyStopDistillHook')
    assert hook.stop_epoch == 30 == cfg.param_scheduler.milestones[0]
    # CE weight 0.5 in the KD recipe, scaled to 1 after the stop
    assert cfg.model.student.head.loss.loss_weight * hook.student_loss_scales['loss_cls'] == 1.0


def test_eskd_early_stopped_teacher_recipe():
    teacher = load('eskd/resnet34_imagenet_teacher.py')
    assert teacher.model.backbone.depth == 34 and teacher.train_cfg.max_epochs == 100
    early = hooks_of(teacher, 'CheckpointHook')
    assert early.save_begin == 30 and early.filename_tmpl == 'early_epoch_{}.pth'
    assert early.max_keep_ckpts == -1 and not early.save_optimizer
    student = load('eskd/resnet34_early_resnet18_imagenet.py')
    assert student.model.teacher_ckpt.endswith('resnet34_imagenet_teacher/early_epoch_30.pth')
    assert hooks_of(student, 'mmkd.EarlyStopDistillHook').stop_epoch == 30


def test_eskd_detection():
    cfg = load('eskd/faster_rcnn_r101_r18_coco.py')
    assert cfg.model.type == 'mmkd.DetectionDistiller' and cfg.train_cfg.max_epochs == 12
    assert cfg.model.teacher.backbone.depth == 101 and cfg.model.student.backbone.depth == 18
    milestones = [s for s in cfg.param_scheduler if s.type == 'MultiStepLR'][0].milestones
    assert hooks_of(cfg, 'mmkd.EarlyStopDistillHook').stop_epoch == milestones[0] == 8


def test_pskd_imagenet_is_a_plain_classifier_with_soft_ce():
    cfg = load('pskd/resnet18_imagenet.py')
    assert cfg.model.type == 'ImageClassifier' and 'teacher' not in cfg.model
    assert 'mmkd' in cfg.custom_imports.imports
    assert cfg.model.head.loss.use_soft and not cfg.model.head.get('cal_acc', False)
    assert hooks_of(cfg, 'mmkd.PSKDHook').alpha_T == 0.3
    assert cfg.train_cfg.max_epochs == 100


def test_pskd_detection_snapshot_teacher():
    cfg = load('pskd/faster_rcnn_r50_coco.py')
    assert cfg.model.type == 'mmkd.DetectionDistiller' and cfg.model.teacher_ckpt is None
    assert cfg.model.teacher == cfg.model.student  # the snapshot copies the student
    assert dict(cfg.model.distill_losses) == dict(
        loss_kd=dict(type='mmkd.KDLoss', tau=1.0, loss_weight=1.0))
    # KD's weight equals the task CE's: the re-weighting is the soft-target CE's gradient
    assert cfg.model.student.roi_head.bbox_head.loss_cls.loss_weight == 1.0
    hook = hooks_of(cfg, 'mmkd.PSKDSnapshotHook')
    assert hook.alpha_T == 0.8 and list(hook.cls_loss_keys) == ['loss_cls']


@pytest.mark.parametrize('name', ['eskd/resnet34_resnet18_imagenet.py',
                                  'pskd/resnet18_imagenet.py'])
def test_classification_configs_build(name):
    from mmkd.models import build_model
    from mmkd.registry import MODELS
    cfg = load(name)
    cfg.model.pop('teacher_ckpt', None)
    model = MODELS.build(cfg.model) if cfg.model.type.startswith('mmkd.') else build_model(
        cfg.model, 'mmpretrain')
    assert model is not None


def test_early_teacher_checkpoint_recipe_keeps_the_early_file(tmp_path):
    """The teacher config's extra CheckpointHook, run for 3 tiny epochs with
    the early copy at epoch 2 and the default hook keeping 1 checkpoint."""
    from tests.helpers.runner import cls_dataset, loader, make_runner, tiny_classifier
    early = dict(hooks_of(load('eskd/resnet34_imagenet_teacher.py'), 'CheckpointHook'))
    early['save_begin'] = 2
    runner = make_runner(tmp_path, tiny_classifier(use_soft=False), loader(cls_dataset(4)), [early],
                         dict(by_epoch=True, max_epochs=3),
                         checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1))
    runner.train()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['early_epoch_2.pth', 'epoch_3.pth']
    assert (tmp_path / 'last_checkpoint').read_text().endswith('epoch_3.pth')
    from mmkd.engine.checkpoint import load_checkpoint_file
    saved = load_checkpoint_file(str(tmp_path / 'early_epoch_2.pth'))
    assert saved['meta']['epoch'] == 2 and 'optimizer' not in saved


def test_eskd_segmentation():
    cfg = load('eskd/deeplabv3_r101_r18_cityscapes.py')
    assert cfg.model.type == 'mmkd.SegmentationDistiller'
    assert cfg.train_cfg.type == 'IterBasedTrainLoop' and cfg.train_cfg.max_iters == 40000
    hook = hooks_of(cfg, 'mmkd.EarlyStopDistillHook')
    assert hook.stop_iter == 12000 and hook.stop_iter % cfg.default_hooks.checkpoint.interval == 0


def test_pskd_segmentation_snapshot_teacher():
    cfg = load('pskd/deeplabv3_r18_cityscapes.py')
    model = cfg.model
    assert model.type == 'mmkd.SegmentationDistiller' and model.teacher_ckpt is None
    assert model.teacher == model.student and model.student.backbone.depth == 18
    hook = hooks_of(cfg, 'mmkd.PSKDSnapshotHook')
    # one pass over Cityscapes' 2975 training images at the config's batch (4 GPUs x 2)
    assert hook.interval == -(-2975 // (4 * cfg.train_dataloader.batch_size))
    assert list(hook.cls_loss_keys) == ['decode.loss_ce', 'aux.loss_ce']
    # KD weights equal the CE weights they are paired with
    assert model.student.decode_head.loss_decode.loss_weight == \
        model.distill_losses.loss_kd.loss_weight == 1.0
    assert model.student.auxiliary_head.loss_decode.loss_weight == \
        model.aux_distill_losses.loss_kd_aux.loss_weight == 0.4
