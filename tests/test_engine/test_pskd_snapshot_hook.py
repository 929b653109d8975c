"""PSKDSnapshotHook: the re-weighted task CE + KD has exactly the gradient of
the soft-target CE; the teacher is the student's snapshot, refreshed at each
epoch boundary; epoch 0 runs no teacher; mid-interval resume restores it."""
import pytest
import torch
import torch.nn.functional as F

from mmkd.engine.checkpoint import load_checkpoint_file
from mmkd.engine.hooks import PSKDSnapshotHook, pskd_alpha
from mmkd.losses import KDLoss
from tests.helpers.runner import (CallCounter, Recorder, det_dataset, det_distiller, loader,
                           make_runner)


def test_reweighted_ce_plus_kd_has_the_soft_target_ce_gradient():
    from mmdet.models.losses import CrossEntropyLoss
    torch.manual_seed(0)
    rois, classes, alpha = 37, 81, 0.35
    student = torch.randn(rois, classes, requires_grad=True)
    snapshot = torch.randn(rois, classes)
    labels = torch.randint(0, classes, (rois,))
    # mmdet's RoI loss_cls (mean over the sampled RoIs) and mmkd's KD, as the hook weighs them
    task = CrossEntropyLoss(loss_weight=1.0)(student, labels, avg_factor=rois)
    mixed = (1 - alpha) * task + alpha * KDLoss(tau=1.0)(student, snapshot, labels)
    grad = torch.autograd.grad(mixed, student)[0]
    target = (1 - alpha) * F.one_hot(labels, classes) + alpha * snapshot.softmax(1)
    soft_ce = (-target * student.log_softmax(1)).sum(1).mean()
    expected = torch.autograd.grad(soft_ce, student)[0]
    assert torch.allclose(grad, expected, atol=1e-7)
    # the values differ only by the snapshot's entropy, a constant
    entropy = -(snapshot.softmax(1) * snapshot.log_softmax(1)).sum(1).mean()
    assert torch.allclose(soft_ce, mixed + alpha * entropy, atol=1e-5)


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_runner_snapshot_refreshed_each_epoch(tmp_path):
    model = det_distiller()
    counter = CallCounter(model.teacher)
    ends = Recorder(after_epoch=lambda runner: _state(runner.model.student))
    seen = Recorder(before_iter=lambda runner, batch: dict(
        epoch=runner.epoch, teacher=_state(runner.model.teacher), calls=counter.count,
        active=runner.model.distill_active, factor=runner.model.distill_factor,
        scales=dict(runner.model.student_loss_scales)))
    make_runner(tmp_path, model, loader(det_dataset(4)),
                [PSKDSnapshotHook(alpha_T=0.8), ends, seen],
                dict(by_epoch=True, max_epochs=3)).train()
    epoch0, epoch1, epoch2 = seen.rows[0:2], seen.rows[2:4], seen.rows[4:6]
    # epoch 0: no previous model, the student trains alone on one-hot targets
    assert all(not r['active'] and r['scales'] == {} for r in epoch0)
    assert epoch1[0]['calls'] == 0  # the teacher never ran in epoch 0
    for rows, step, end in ((epoch1, 1, ends.rows[0]), (epoch2, 2, ends.rows[1])):
        alpha = pskd_alpha(0.8, step, 3)
        for r in rows:
            assert r['active'] and r['factor'] == pytest.approx(alpha)
            assert r['scales'] == {'loss_cls': pytest.approx(1 - alpha)}
            # the teacher is the student as it was at the end of the last epoch
            assert _same(r['teacher'], end)
    assert not _same(ends.rows[0], ends.rows[1])
    assert counter.count > epoch2[0]['calls'] > 0


def test_runner_interval_resume_restores_mid_interval_snapshot(tmp_path):
    ckpt = dict(type='CheckpointHook', interval=3, by_epoch=False)
    dataset = det_dataset(2)

    def data():  # a fresh loader per run: an InfiniteSampler's generator is single-use
        return loader(dataset, infinite=True)

    seen = Recorder(before_iter=lambda runner, batch: _state(runner.model.teacher))
    make_runner(tmp_path, det_distiller(), data(), [PSKDSnapshotHook(interval=2), seen],
                dict(by_epoch=False, max_iters=4), checkpoint=ckpt).train()
    saved = load_checkpoint_file(str(tmp_path / 'iter_3.pth'))
    # iteration 3 is inside interval 1 (iterations 2-3): the snapshot travels
    assert saved['pskd_snapshot']['step'] == 1
    assert _same(saved['pskd_snapshot']['state_dict'], seen.rows[3])
    assert not any(k.startswith('teacher.') for k in saved['state_dict'])

    resumed = Recorder(before_iter=lambda runner, batch: _state(runner.model.teacher))
    make_runner(tmp_path, det_distiller(), data(), [PSKDSnapshotHook(interval=2), resumed],
                dict(by_epoch=False, max_iters=4), checkpoint=ckpt, resume=True,
                load_from=str(tmp_path / 'iter_3.pth')).train()
    assert len(resumed.rows) == 1 and _same(resumed.rows[0], seen.rows[3])
    # a checkpoint at an interval boundary carries no snapshot: rebuilt from the student
    make_runner(tmp_path / 'b', det_distiller(), data(), [PSKDSnapshotHook(interval=2)],
                dict(by_epoch=False, max_iters=4),
                checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)).train()
    assert 'pskd_snapshot' not in load_checkpoint_file(str(tmp_path / 'b' / 'iter_2.pth'))


def test_bad_distillers_are_refused(tmp_path):
    data = loader(det_dataset(2))
    train_cfg = dict(by_epoch=True, max_epochs=1)
    dkd = det_distiller(distill_losses=dict(loss_dkd=dict(type='mmkd.DKDLoss')))
    with pytest.raises(ValueError, match="KDLoss', tau=1.0"):
        make_runner(tmp_path, dkd, data, [PSKDSnapshotHook()], train_cfg).train()
    standardized = det_distiller(distill_losses=dict(
        loss_kd=dict(type='mmkd.KDLoss', tau=1.0, logit_standardize=True)))
    with pytest.raises(ValueError, match='no logit_standardize'):
        make_runner(tmp_path, standardized, data, [PSKDSnapshotHook()], train_cfg).train()
    from mmkd.models import DetectionDistiller
    from tests.helpers.det import tiny_faster_rcnn
    wider = DetectionDistiller(student=tiny_faster_rcnn(), teacher=tiny_faster_rcnn(channels=48),
                               distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss')))
    with pytest.raises(ValueError, match='teacher as the student'):
        make_runner(tmp_path, wider, data, [PSKDSnapshotHook()], train_cfg).train()
    from mmkd.engine.hooks import DistillWarmupHook
    with pytest.raises(ValueError, match='both set'):
        make_runner(tmp_path, det_distiller(), data,
                    [PSKDSnapshotHook(), DistillWarmupHook(warmup=2)], train_cfg).train()
