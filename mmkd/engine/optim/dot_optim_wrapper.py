"""DOT, the Distillation-Oriented Trainer, as an mmengine optimizer wrapper.

Set it in a config's ``optim_wrapper``, nothing else changes::

    optim_wrapper = dict(type='mmkd.DOTOptimWrapper', delta=0.09,
                         optimizer=dict(type='SGD', lr=0.2, momentum=0.9,
                                        weight_decay=1e-4))

Each training step takes the distiller's split of the total loss
(:attr:`mmkd.models.BaseDistiller.loss_parts`, the task's loss keys and
:attr:`~mmkd.models.BaseDistiller.distill_loss_keys`), computes the gradient
of each part (two backward passes over the same graph) and updates with
:func:`~mmkd.engine.optim.dot_update.dot_group_step`. A step without
distillation losses (after an ESKD stop) is mmengine's plain SGD step.
"""
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

import torch
from mmengine.dist import all_reduce_params, get_world_size
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper
from torch import Tensor, nn

from mmkd.models import BaseDistiller
from mmkd.registry import OPTIM_WRAPPERS
from .dot_update import Grads, dot_group_step, joint_clip_coef


@OPTIM_WRAPPERS.register_module()
class DOTOptimWrapper(OptimWrapper):
    """mmengine's ``OptimWrapper`` whose step is DOT's (Zhao et al., ICCV 2023).

    The task loss's gradient goes into SGD's momentum buffer with momentum
    ``m - delta``, the distillation loss's into a second buffer
    (``momentum_kd_buffer`` in the optimizer state, so in checkpoints) with
    momentum ``m + delta``; ``m``, the learning rate and the weight decay are
    the SGD param group's (schedulers change them as for SGD).

    Args:
        optimizer: a ``torch.optim.SGD`` (built by mmengine from the config's
            ``optimizer``); DOT is defined for SGD's momentum only, so any
            other optimizer, Nesterov momentum or ``maximize`` is refused.
        delta: DOT's momentum offset (mdistiller's ``SOLVER.DOT.DELTA``);
            ``0 <= delta <= momentum`` of every group.
        clip_grad: as ``OptimWrapper``'s, ``type='norm'`` only: the norm of
            the total gradient (task + distillation) is clipped, by scaling
            both gradients with the same factor.
        accumulative_counts: must be 1 (a DOT step needs both gradients of
            the same batch; accumulating two gradients is not DOT's rule).
        loss_scale, dtype: AMP's arguments, accepted only to refuse them:
            DOT's official update runs in float32 without a loss scaler.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, delta: float,
                 clip_grad: Optional[dict] = None, accumulative_counts: int = 1,
                 loss_scale=None, dtype=None) -> None:
        if loss_scale is not None or dtype is not None:
            raise ValueError('DOTOptimWrapper does not run with AMP (loss_scale / dtype given, '
                             'e.g. by --amp): DOT is defined for float32 SGD steps without a '
                             'loss scaler. Train without --amp.')
        _check_sgd(optimizer, delta)
        if accumulative_counts != 1:
            raise ValueError('DOTOptimWrapper needs accumulative_counts=1: a DOT step uses the '
                             'task and distillation gradients of one batch.')
        if clip_grad is not None and clip_grad.get('type', 'norm') != 'norm':
            raise ValueError("DOTOptimWrapper clips by norm only (clip_grad type='norm'): the "
                             'total gradient is split in two, and clipping each value of the '
                             'two parts is not clipping the total.')
        super().__init__(optimizer, accumulative_counts=1, clip_grad=clip_grad)
        self.delta = float(delta)
        self._distiller: Optional[BaseDistiller] = None
        self._sync_distill_grads = False

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """mmengine's train step enters it before the forward: remember the
        distiller whose :attr:`~mmkd.models.BaseDistiller.loss_parts` the
        coming :meth:`update_params` reads, and clear them (a stale split
        from an earlier step is then never used)."""
        if _under_autocast(model):
            raise RuntimeError('DOTOptimWrapper does not run under autocast (AMP): DOT is '
                               'defined for float32 SGD steps. Train without --amp.')
        distiller = model.module if is_model_wrapper(model) else model
        if not isinstance(distiller, BaseDistiller):
            raise TypeError(
                f'DOTOptimWrapper trains an mmkd distiller (a BaseDistiller), got '
                f'{type(distiller).__name__}: DOT needs the split of the loss into the task\'s '
                "and the distillation's parts. Use mmengine's OptimWrapper for a plain model.")
        distiller.loss_parts = None
        self._distiller = distiller
        # DDP averages gradients in its backward hooks; the distillation
        # gradient is taken with autograd.grad (no hooks), so it is averaged here
        self._sync_distill_grads = is_model_wrapper(model) and get_world_size() > 1
        with super().optim_context(model):
            yield

    def update_params(self, loss: Tensor, step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        """One DOT step for ``loss``, the total mmengine's train step passes
        (the sum of the distiller's :attr:`loss_parts`)."""
        distiller = self._distiller
        if distiller is None or distiller.loss_parts is None:
            raise RuntimeError(
                "DOTOptimWrapper.update_params needs mmengine's train step: optim_context(model) "
                'before the forward, then model.parse_losses, which splits the total into the '
                'task and distillation losses (BaseDistiller.loss_parts). Call model.train_step '
                '(or the Runner) rather than update_params directly.')
        task_loss, distill_loss = distiller.loss_parts
        distiller.loss_parts = None  # used once
        if not distiller.distill_loss_keys or not distill_loss.requires_grad:
            # no distillation this step (ESKD stopped it): plain SGD
            super().update_params(loss, step_kwargs, zero_kwargs)
            return
        distill = self._distill_grads(distill_loss)
        self.backward(task_loss)
        task = {p: p.grad for p in self._params() if p.grad is not None}
        if self.clip_grad_kwargs:
            self._clip_both(task, distill)
        for group in self.optimizer.param_groups:
            members = set(group['params'])
            dot_group_step(group, self.optimizer.state,
                           {p: g for p, g in task.items() if p in members},
                           {p: g for p, g in distill.items() if p in members}, self.delta)
        self.zero_grad(**(zero_kwargs or {}))

    def _params(self) -> List[Tensor]:
        return [p for group in self.optimizer.param_groups for p in group['params']
                if p.requires_grad]

    def _distill_grads(self, distill_loss: Tensor) -> Grads:
        """Gradient of the distillation loss, keeping the graph for the task
        loss's backward; parameters it does not reach have none."""
        params = self._params()
        grads = torch.autograd.grad(distill_loss, params, retain_graph=True, allow_unused=True)
        distill = {p: g for p, g in zip(params, grads) if g is not None}
        if self._sync_distill_grads:
            # assumes every rank reaches the same parameters, as DDP does
            all_reduce_params(list(distill.values()), op='mean')
        return distill

    def _clip_both(self, task: Grads, distill: Grads) -> None:
        kwargs = dict(self.clip_grad_kwargs)
        unknown = set(kwargs) - {'max_norm', 'norm_type', 'foreach'}
        if unknown:
            raise ValueError(f'DOTOptimWrapper: unsupported clip_grad arguments {sorted(unknown)}.')
        coef, total_norm = joint_clip_coef(task, distill, kwargs['max_norm'],
                                           float(kwargs.get('norm_type', 2.0)))
        for grad in list(task.values()) + list(distill.values()):
            grad.mul_(coef.to(grad.device))
        self.message_hub.update_scalar('train/grad_norm', float(total_norm))


def _under_autocast(model: nn.Module) -> bool:
    """Whether the model's device type runs under an autocast context now."""
    param = next(model.parameters(), None)
    device = param.device.type if param is not None else 'cpu'
    return torch.is_autocast_enabled(device)


def _check_sgd(optimizer: torch.optim.Optimizer, delta: float) -> None:
    """Refuse, before the first step, what DOT's update does not define."""
    if type(optimizer) is not torch.optim.SGD:
        raise TypeError(f'DOTOptimWrapper needs optimizer=dict(type=\'SGD\', ...), got '
                        f'{type(optimizer).__name__}: DOT splits SGD\'s momentum into two '
                        'buffers and is not defined for other optimizers.')
    for group in optimizer.param_groups:
        if group.get('nesterov') or group.get('maximize'):
            raise ValueError('DOTOptimWrapper: DOT is defined for plain SGD momentum; '
                             'nesterov=True and maximize=True are not supported.')
        if not 0 <= delta <= group['momentum']:
            raise ValueError(f'DOTOptimWrapper: delta must be in [0, momentum], got delta={delta} '
                             f'with momentum={group["momentum"]} (the task momentum is '
                             'momentum - delta).')
