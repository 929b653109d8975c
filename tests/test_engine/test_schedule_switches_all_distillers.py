"""The switches the schedule hooks set, in all three distillers: with
``distill_active=False`` (ESKD after the stop, PS-KD's epoch 0) no teacher
submodule runs and the losses are the student's own; ``distill_factor``
scales only distillation losses; ``student_loss_scales`` only the named keys."""
import pytest
import torch

from mmkd.engine.hooks import PSKDSnapshotHook
from mmkd.registry import MODELS
from tests.helpers.runner import CallCounter

KD = dict(loss_kd=dict(type='mmkd.KDLoss', tau=1.0))


def detection():
    from tests.helpers.det import det_batch, tiny_faster_rcnn
    model = MODELS.build(dict(type='mmkd.DetectionDistiller', student=tiny_faster_rcnn(),
                              teacher=tiny_faster_rcnn(), distill_losses=KD))
    return model, det_batch(model), 'loss_cls', 'loss_cls'


def segmentation():
    from tests.helpers.seg import seg_batch, tiny_segmentor
    model = MODELS.build(dict(
        type='mmkd.SegmentationDistiller', student=tiny_segmentor(), teacher=tiny_segmentor(),
        distill_losses=KD,
        aux_distill_losses=dict(loss_kd_aux=dict(type='mmkd.KDLoss', tau=1.0, loss_weight=0.4))))
    return model, seg_batch(), 'decode.loss_ce', 'decode.loss_ce'


def classification():
    from tests.helpers.cls import cls_batch, tiny_resnet
    model = MODELS.build(dict(type='mmkd.ClassificationDistiller', student=tiny_resnet(),
                              teacher=tiny_resnet(), distill_losses=KD))
    # the distiller logs mmpretrain's "loss" as loss_cls, with and without the teacher
    return model, cls_batch(model, [0, 1, 2, 3]), 'loss_cls', 'loss_cls'


TASKS = dict(detection=detection, segmentation=segmentation, classification=classification)


def losses_of(model, batch, seed=0):
    torch.manual_seed(seed)  # detection samples RoIs at random
    return model.loss(*batch)


@pytest.fixture(scope='module', params=sorted(TASKS))
def task(request):
    torch.manual_seed(0)
    model, batch, active_key, student_key = TASKS[request.param]()
    model.init_weights()
    model.train()
    return request.param, model, batch, active_key, student_key


def test_inactive_runs_no_teacher_and_returns_the_students_losses(task):
    name, model, batch, _, student_key = task
    counter = CallCounter(model.teacher)
    model.distill_active = False
    try:
        losses = losses_of(model, batch)
    finally:
        model.distill_active = True
    assert counter.count == 0
    torch.manual_seed(0)
    own = model.student_loss(*batch)  # the student's own losses, as the distiller keys them
    assert set(losses) == set(own)
    assert torch.equal(losses[student_key], own[student_key])
    losses_of(model, batch)
    assert counter.count > 0  # the counter sees the teacher when it does run


def test_factor_and_student_scales_touch_only_their_keys(task):
    name, model, batch, active_key, _ = task
    full = losses_of(model, batch)
    model.distill_factor, model.student_loss_scales = 0.25, {active_key: 0.5}
    try:
        scaled = losses_of(model, batch)
    finally:
        model.distill_factor, model.student_loss_scales = 1.0, {}
    for key, value in full.items():
        if not torch.is_tensor(value) or value.dim():
            continue
        expected = value * (0.25 if key.startswith('loss_kd') else
                            0.5 if key == active_key else 1.0)
        assert torch.allclose(scaled[key], expected, rtol=1e-5, atol=1e-7), key
    assert 'loss_kd' in full and active_key in full


def test_snapshot_refresh_copies_the_student(task):
    name, model, *_ = task
    hook = PSKDSnapshotHook(alpha_T=0.8)
    hook.total = 4
    PSKDSnapshotHook._check_distiller(model)  # KD at tau 1 everywhere, same architecture
    with torch.no_grad():
        next(model.student.parameters()).add_(1.0)
    hook.refresh(model, step=1)
    student, teacher = model.student.state_dict(), model.teacher.state_dict()
    assert all(torch.equal(student[k], teacher[k]) for k in student)
    assert hook.snapshot_step == 1 and not model.teacher.training
