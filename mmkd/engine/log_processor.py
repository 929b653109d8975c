"""Logging a distiller's decomposed terms over the losses' window.

mmengine's ``LogProcessor`` averages a logged scalar over its window only
when the key contains ``loss`` (every other key shows its current value).
A distiller logs its losses (``loss_dkd``) beside terms that decompose them
(``dkd_tckd``, ``dkd_nckd``, ``dist_inter``, ``kd_agreement``, ...), which
must not contain ``loss`` (mmengine would add them to the total). With the
plain processor a log line then shows a window mean next to one iteration's
values, and ``loss_dkd = alpha * tckd + beta * nckd`` does not hold in the
log a user reads. :class:`DistillLogProcessor` averages the distiller's
terms over the same window as the losses.
"""
import copy

from mmengine.model import is_model_wrapper
from mmengine.runner import LogProcessor

from mmkd.models import BaseDistiller
from mmkd.registry import LOG_PROCESSORS


@LOG_PROCESSORS.register_module()
class DistillLogProcessor(LogProcessor):
    """mmengine's ``LogProcessor`` that shows a distiller's logged terms
    (:attr:`mmkd.models.BaseDistiller.logged_terms`) as the mean over
    ``window_size`` iterations, like the losses. Every argument is
    ``LogProcessor``'s; a term the config's ``custom_cfg`` names keeps that
    setting. Set it with ``log_processor = dict(type='mmkd.DistillLogProcessor')``
    (mmkd's configs do)."""

    def get_log_after_iter(self, runner, batch_idx: int, mode: str):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        terms = sorted(model.logged_terms) if isinstance(model, BaseDistiller) else []
        if mode != 'train' or not terms:
            return super().get_log_after_iter(runner, batch_idx, mode)
        own = self.custom_cfg
        named = {cfg['data_src'] for cfg in own}
        logged = {key.partition('/')[2] for key in runner.message_hub.log_scalars
                  if key.startswith('train/')}
        self.custom_cfg = copy.deepcopy(own) + [
            dict(data_src=term, method_name='mean', window_size=self.window_size)
            for term in terms if term not in named and term in logged]
        try:
            return super().get_log_after_iter(runner, batch_idx, mode)
        finally:
            self.custom_cfg = own
