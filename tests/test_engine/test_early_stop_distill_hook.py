"""EarlyStopDistillHook: after the stop the teacher provably does not run (every
call of every teacher submodule is counted), also in a run resumed past it."""
import pytest
import torch

from mmkd.engine.hooks import EarlyStopDistillHook
from tests.helpers.det import det_batch
from tests.helpers.runner import (CallCounter, Recorder, det_dataset, det_distiller, loader,
                           make_runner)


def test_settings_are_checked():
    with pytest.raises(ValueError, match='exactly one of stop_epoch and stop_iter'):
        EarlyStopDistillHook()
    with pytest.raises(ValueError, match='exactly one'):
        EarlyStopDistillHook(stop_epoch=2, stop_iter=10)
    with pytest.raises(ValueError, match='integer >= 1'):
        EarlyStopDistillHook(stop_iter=0)
    hook = EarlyStopDistillHook(stop_epoch=3)
    assert [hook.stopped(e, 0) for e in range(5)] == [False, False, False, True, True]
    hook = EarlyStopDistillHook(stop_iter=5)
    assert [hook.stopped(0, i) for i in (0, 4, 5, 9)] == [False, False, True, True]


def test_inactive_step_is_the_students_own_step():
    model = det_distiller()
    model.train()
    counter = CallCounter(model.teacher)
    inputs, samples = det_batch(model)
    model.distill_active = False
    torch.manual_seed(1)
    losses = model.loss(inputs, samples)
    assert counter.count == 0
    torch.manual_seed(1)
    own = model.student.loss(inputs, samples)
    assert set(losses) == set(own) and 'loss_kd' not in losses
    for key in ('loss_cls', 'loss_bbox'):
        assert torch.equal(losses[key], own[key])
    model.distill_active = True
    model.loss(inputs, samples)
    assert counter.count > 0  # the counter does see the teacher when it runs


def _teacher_calls(counter):
    """Teacher submodule calls made during each training iteration."""
    state = dict(last=0)

    def delta(runner, outputs):
        calls, state['last'] = counter.count - state['last'], counter.count
        return calls

    return Recorder(after_iter=delta)


def test_runner_stop_iter_and_resume_past_it(tmp_path, caplog):
    model = det_distiller()
    counter = CallCounter(model.teacher)
    calls = _teacher_calls(counter)
    dataset = det_dataset(2)

    def data():  # a fresh loader per run: an InfiniteSampler's generator is single-use
        return loader(dataset, infinite=True)

    ckpt = dict(type='CheckpointHook', interval=3, by_epoch=False)
    make_runner(tmp_path, model, data(), [EarlyStopDistillHook(stop_iter=2), calls],
                dict(by_epoch=False, max_iters=4), checkpoint=ckpt).train()
    assert [c > 0 for c in calls.rows] == [True, True, False, False]

    # a fresh process resuming at iteration 3 (past the stop) never runs the teacher
    model = det_distiller()
    counter = CallCounter(model.teacher)
    calls = _teacher_calls(counter)
    runner = make_runner(tmp_path, model, data(), [EarlyStopDistillHook(stop_iter=2), calls],
                         dict(by_epoch=False, max_iters=5), checkpoint=ckpt, resume=True,
                         load_from=str(tmp_path / 'iter_3.pth'))
    runner.train()
    assert runner.iter == 5 and calls.rows == [0, 0] and counter.count == 0


def test_runner_stop_epoch_logs_once(tmp_path):
    model = det_distiller()
    counter = CallCounter(model.teacher)
    calls = _teacher_calls(counter)
    active = Recorder(before_iter=lambda runner, batch: runner.model.distill_active)
    runner = make_runner(tmp_path, model, loader(det_dataset(4)),
                         [EarlyStopDistillHook(stop_epoch=1), calls, active],
                         dict(by_epoch=True, max_epochs=3), log_level='INFO')
    runner.train()
    assert active.rows == [True, True, False, False, False, False]
    assert [c > 0 for c in calls.rows[:2]] == [True, True] and calls.rows[2:] == [0] * 4
    log = ''.join(p.read_text() for p in tmp_path.glob('*/*.log'))
    assert log.count('EarlyStopDistillHook: distillation is off from epoch 2') == 1


def test_epoch_stop_in_iteration_loop_is_refused(tmp_path):
    runner = make_runner(tmp_path, det_distiller(), loader(det_dataset(2)),
                         [EarlyStopDistillHook(stop_epoch=1)], dict(by_epoch=False, max_iters=2))
    with pytest.raises(ValueError, match='iteration-based'):
        runner.train()


def test_student_loss_scales_after_the_stop():
    hook = EarlyStopDistillHook(stop_iter=1, student_loss_scales=dict(loss_cls=2.0))
    assert 'student_loss_scales' in hook.controls
    model = det_distiller()
    model.train()
    inputs, samples = det_batch(model)
    model.distill_active, model.student_loss_scales = False, dict(loss_cls=2.0)
    torch.manual_seed(1)
    scaled = model.loss(inputs, samples)
    torch.manual_seed(1)
    own = model.student.loss(inputs, samples)
    assert torch.allclose(scaled['loss_cls'], 2 * own['loss_cls'])
    assert torch.equal(scaled['loss_bbox'], own['loss_bbox'])
    model.student_loss_scales = dict(loss_typo=2.0)
    with pytest.raises(KeyError, match='loss_typo'):
        model.loss(inputs, samples)
