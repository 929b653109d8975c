"""ESKD (Cho & Hariharan, ICCV 2019): stop distilling early, finish on the task loss."""
from typing import Dict, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmkd.registry import HOOKS
from .schedule_utils import (check_by_epoch, check_exclusive, check_unused_parameters,
                             distiller_of)


@HOOKS.register_module()
class EarlyStopDistillHook(Hook):
    """Distil for the first ``stop_epoch`` epochs (or ``stop_iter`` iterations),
    then train the student alone: **the teacher does not run at all**.

    Before every training iteration the hook sets the distiller's
    ``distill_active`` from the runner's counters: ``runner.epoch <
    stop_epoch`` (0-indexed, so ``stop_epoch=30`` distils the epochs logged as
    1-30) or ``runner.iter < stop_iter``. While it is False the distiller's
    ``loss`` is the student's own ``loss``: no teacher forward, no
    distillation losses, so a step costs what a student-only step costs
    (unlike MMRazor's ``StopDistillHook``, whose distiller still runs the
    teacher). Because the state follows from the counters, a run resumed past
    the stop never runs the teacher. The switch is logged once.

    Under DDP, a trainable part outside the student (a ReviewKD connector)
    gets no gradient after the stop; the hook then asks for
    ``find_unused_parameters=True`` before training starts.

    Args:
        stop_epoch: first epoch (0-indexed) without distillation; for epoch
            loops.
        stop_iter: first iteration (0-indexed) without distillation; for
            iteration loops (or to stop mid-epoch).
        student_loss_scales: factors on named student loss keys from the stop
            on (the distiller's ``student_loss_scales``), e.g. ``dict(loss_cls=2.0)``
            to train on CE with weight 1 after a KD recipe that weighs CE 0.5
            (mmpretrain's key is ``loss``).
    """

    priority = 'NORMAL'
    controls = ('distill_active',)

    def __init__(self, stop_epoch: Optional[int] = None, stop_iter: Optional[int] = None,
                 student_loss_scales: Optional[Dict[str, float]] = None) -> None:
        if (stop_epoch is None) == (stop_iter is None):
            raise ValueError('EarlyStopDistillHook: give exactly one of stop_epoch and stop_iter '
                             f'(got stop_epoch={stop_epoch!r}, stop_iter={stop_iter!r}).')
        stop = stop_epoch if stop_iter is None else stop_iter
        if isinstance(stop, bool) or not isinstance(stop, int) or stop < 1:
            raise ValueError(f'EarlyStopDistillHook: the stop must be an integer >= 1 (the number '
                             f'of distilled epochs or iterations), got {stop!r}.')
        self.stop_epoch = stop_epoch
        self.stop_iter = stop_iter
        self.student_loss_scales = dict(student_loss_scales or {})
        if self.student_loss_scales:
            self.controls = self.controls + ('student_loss_scales',)
        self._announced = False

    def stopped(self, epoch: int, iteration: int) -> bool:
        """Whether the step at 0-indexed ``epoch`` / ``iteration`` is past the stop."""
        if self.stop_epoch is not None:
            return epoch >= self.stop_epoch
        return iteration >= self.stop_iter

    def _where(self) -> str:
        return (f'stop_epoch={self.stop_epoch}' if self.stop_epoch is not None
                else f'stop_iter={self.stop_iter}')

    def before_train(self, runner) -> None:
        model = distiller_of(runner, 'EarlyStopDistillHook')
        check_by_epoch(runner, 'EarlyStopDistillHook', self.stop_epoch is not None,
                       f'stop_epoch={self.stop_epoch}')
        check_exclusive(runner, self)
        check_unused_parameters(runner, model, 'EarlyStopDistillHook')
        self._announced = False

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        stopped = self.stopped(runner.epoch, runner.iter)
        model = distiller_of(runner, 'EarlyStopDistillHook')
        model.distill_active = not stopped
        if self.student_loss_scales:
            model.student_loss_scales = dict(self.student_loss_scales) if stopped else {}
        if stopped and not self._announced:
            self._announced = True
            print_log(f'EarlyStopDistillHook: distillation is off from epoch {runner.epoch + 1}, '
                      f'iteration {runner.iter + 1} on ({self._where()}); the student trains '
                      'alone and the teacher no longer runs.', logger='current')
