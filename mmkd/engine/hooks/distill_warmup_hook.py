"""DKD's linear warm-up of the distillation losses, as a hook for every distiller."""
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmkd.registry import HOOKS
from .schedule_utils import check_by_epoch, check_exclusive, distiller_of


@HOOKS.register_module()
class DistillWarmupHook(Hook):
    """Scale every distillation loss (not the task's) by ``min(step / warmup, 1)``.

    ``step`` counts from 1, as mdistiller counts its epochs: the factor of the
    first epoch is ``1 / warmup``, and ``warmup=1`` means **no warm-up at all**
    (DKD's ImageNet YAMLs set ``WARMUP: 1``; its CIFAR ones 20). In mmengine's
    0-indexed counters the factor before a step is
    ``min((runner.epoch + 1) / warmup, 1)`` with ``by_epoch=True``, or
    ``min((runner.iter + 1) / warmup, 1)`` with ``by_epoch=False`` (a per-
    iteration ramp, which iteration loops need).

    The factor is recomputed from the runner's counters before every training
    iteration, so a run resumed with ``--resume`` continues the ramp where it
    stopped. It is logged as ``distill_factor``. The factor multiplies the
    distiller's keys that contain "loss" (``loss_kd``, ``loss_dkd``,
    ``loss_reviewkd``, ...), never the student's own losses.

    Args:
        warmup: length of the ramp, in epochs (``by_epoch=True``) or
            iterations; ``>= 1``.
        by_epoch: count epochs (mdistiller) or iterations.
    """

    priority = 'NORMAL'
    #: the distiller switches this hook sets (two hooks may not share one).
    controls = ('distill_factor',)

    def __init__(self, warmup: int, by_epoch: bool = True) -> None:
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1:
            raise ValueError(f'DistillWarmupHook: warmup must be an integer >= 1 (1 = no '
                             f'warm-up), got {warmup!r}.')
        self.warmup = warmup
        self.by_epoch = bool(by_epoch)

    def factor(self, step: int) -> float:
        """The factor for the 0-indexed epoch / iteration ``step``."""
        return min((step + 1) / self.warmup, 1.0)

    def before_train(self, runner) -> None:
        distiller_of(runner, 'DistillWarmupHook')
        check_by_epoch(runner, 'DistillWarmupHook', self.by_epoch, f'warmup={self.warmup}')
        check_exclusive(runner, self)
        unit = 'epochs' if self.by_epoch else 'iterations'
        print_log(f'DistillWarmupHook: distillation losses ramp up over {self.warmup} {unit} '
                  f'(factor {self.factor(runner.epoch if self.by_epoch else runner.iter):.4g} '
                  'at the first step of this run).', logger='current')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        factor = self.factor(runner.epoch if self.by_epoch else runner.iter)
        distiller_of(runner, 'DistillWarmupHook').distill_factor = factor
        runner.message_hub.update_scalar('train/distill_factor', factor)
