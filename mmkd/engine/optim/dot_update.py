"""The Distillation-Oriented Trainer's update (Zhao et al., ICCV 2023).

DOT is SGD with two momentum buffers per parameter: one accumulates the
gradient of the task loss with momentum ``m - delta``, the other the gradient
of the distillation loss with momentum ``m + delta``; both buffers are applied
each step. The rule below follows the official implementation (mdistiller's
``mdistiller/engine/dot.py``), including its edge cases, so that a run with
this module reproduces a run with mdistiller step for step:

- a parameter reached by only one of the two losses uses the average momentum
  ``((m - delta) + (m + delta)) / 2`` for that loss's buffer;
- weight decay enters the task buffer; it enters the distillation buffer only
  for a parameter the task loss does not reach, and not at that buffer's first
  step (the official buffer starts as a plain copy of the gradient);
- the task buffer is kept only while ``m - delta != 0``; the distillation
  buffer always is;
- the task update is applied before the distillation one.

"Reached" means what it means to autograd: the parameter is in that loss's
graph (its gradient exists, zero or not).
"""
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

#: optimizer-state key of the distillation-loss momentum buffer (the task
#: buffer is SGD's own ``momentum_buffer``, so plain SGD continues from it).
KD_BUFFER = 'momentum_kd_buffer'
TASK_BUFFER = 'momentum_buffer'

Grads = Dict[Tensor, Tensor]


def _momentum_into(state: dict, key: str, grad: Tensor, momentum: float,
                   dampening: float) -> Tensor:
    """``buf = momentum * buf + (1 - dampening) * grad`` in ``state[key]``;
    a first step starts the buffer as a copy of ``grad``."""
    buf: Optional[Tensor] = state.get(key)
    if buf is None:
        buf = state[key] = grad.detach().clone()
    else:
        buf.mul_(momentum).add_(grad, alpha=1 - dampening)
    return buf


@torch.no_grad()
def dot_group_step(group: dict, state: dict, task: Grads, distill: Grads, delta: float) -> None:
    """Apply one DOT step to the parameters of one optimizer param group.

    With ``m`` the group's momentum, ``lr`` its learning rate, ``wd`` its
    weight decay, ``g_t`` / ``g_d`` the task / distillation gradients of a
    parameter ``p`` reached by both losses::

        b_t <- (m - delta) * b_t + (g_t + wd * p)
        b_d <- (m + delta) * b_d + g_d
        p   <- p - lr * b_t - lr * b_d

    Args:
        group: the SGD param group (``lr``, ``momentum``, ``weight_decay``,
            ``dampening``).
        state: the optimizer's per-parameter state (holds both buffers).
        task: parameter -> task-loss gradient, for the parameters of this
            group the task loss reaches.
        distill: parameter -> distillation-loss gradient, likewise.
        delta: DOT's momentum offset.
    """
    lr, wd, dampening = group['lr'], group['weight_decay'], group['dampening']
    m_task, m_distill = group['momentum'] - delta, group['momentum'] + delta
    # kept as the official code computes it (not ``group['momentum']``), so
    # both agree to the last bit
    m_alone = (m_task + m_distill) / 2.
    for param, grad in task.items():
        step = grad.add(param, alpha=wd) if wd != 0 else grad
        if m_task != 0:
            momentum = m_task if param in distill else m_alone
            step = _momentum_into(state[param], TASK_BUFFER, step, momentum, dampening)
        param.add_(step, alpha=-lr)
    for param, grad in distill.items():
        param_state = state[param]
        if param not in task and wd != 0 and param_state.get(KD_BUFFER) is not None:
            grad = grad.add(param, alpha=wd)
        momentum = m_distill if param in task else m_alone
        param.add_(_momentum_into(param_state, KD_BUFFER, grad, momentum, dampening), alpha=-lr)


def joint_clip_coef(task: Grads, distill: Grads, max_norm: float,
                    norm_type: float = 2.0) -> Tuple[Tensor, Tensor]:
    """The factor ``torch.nn.utils.clip_grad_norm_`` would apply to the
    gradient of the total loss, ``g_t + g_d``, and that norm.

    Both gradients are scaled by it, so DOT with ``delta=0`` and clipping
    still equals SGD with the same clipping.

    Args:
        task: parameter -> task-loss gradient.
        distill: parameter -> distillation-loss gradient.
        max_norm: ``clip_grad``'s ``max_norm``.
        norm_type: ``clip_grad``'s ``norm_type`` (``inf`` allowed).

    Returns:
        ``(coef, total_norm)``: ``coef = min(1, max_norm / (norm + 1e-6))``.
    """
    norms = []
    for param in {**task, **distill}:
        if param in task and param in distill:
            total = task[param] + distill[param]
        else:
            total = task[param] if param in task else distill[param]
        norms.append(torch.linalg.vector_norm(total, norm_type))
    if not norms:
        zero = torch.zeros(())
        return zero + 1, zero
    total_norm = torch.linalg.vector_norm(torch.stack(norms), norm_type)
    # same formula as torch.nn.utils.clip_grad_norm_ (no sync: clamp, not if)
    coef = torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)
    return coef, total_norm
