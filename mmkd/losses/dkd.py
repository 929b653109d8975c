"""Decoupled Knowledge Distillation (Zhao et al., CVPR 2022).

With ``p = softmax(z / tau)``, ``g`` the row's ground-truth class,
``b = [p_g, 1 - p_g]`` and ``p_hat_j = p_j / (1 - p_g)`` for ``j != g``:

    TCKD = tau^2 * KL(b_t || b_s)
    NCKD = tau^2 * KL(p_hat_t || p_hat_s)
    DKD  = alpha * TCKD + beta * NCKD

and vanilla KD = TCKD + (1 - p_g^t) * NCKD exactly. ``p_hat`` is computed as a
softmax over the non-target logits (the target logit set to ``-inf``), which
equals the reference code's "subtract 1000 from the target logit" without its
approximation; ``log(1 - p_g)`` is ``logsumexp(non-target) - logsumexp(all)``,
exact even when ``p_g`` rounds to 1.
"""
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from mmkd.registry import MODELS
from .utils import (RowLayout, check_non_negative, check_reduction, check_tau, chunks,
                    compute_dtype, reduce_rows, to_rows)


def _split(logits: Tensor, index: Tensor, tau: float, dtype: torch.dtype):
    """Binary and non-target views of one chunk of logits (B, C, L).

    Returns ``(log p_g, log(1 - p_g), log p_hat)``; ``log p_hat`` is ``-inf``
    at the target class and is a fresh buffer the caller may overwrite.
    """
    x = logits.to(dtype) / tau
    lse = torch.logsumexp(x, dim=1, keepdim=True)
    log_pg = x.gather(1, index) - lse
    x.scatter_(1, index, float('-inf'))
    lse_nt = torch.logsumexp(x, dim=1, keepdim=True)
    return log_pg, lse_nt - lse, x.sub_(lse_nt)


class _DKDRows(torch.autograd.Function):
    """Per-row (TCKD, NCKD) with a closed-form backward.

    With ``d = p_g^s - p_g^t`` and upstream gradients ``a`` (of TCKD) and
    ``n`` (of NCKD), the gradient on ``z_s / tau`` is ``a * d`` at the target
    class and ``p_hat_s * (n - a * d) - n * p_hat_t`` elsewhere; the ``1 - p_g``
    of TCKD's derivative cancels against ``p_hat``'s, so nothing is divided.
    """

    @staticmethod
    def forward(ctx, student: Tensor, teacher: Tensor, target: Tensor,
                keep: Optional[Tensor], tau: float) -> Tuple[Tensor, Tensor]:
        dtype = compute_dtype(student)
        shape = (student.shape[0], student.shape[2])
        tckd = student.new_zeros(shape, dtype=dtype)
        nckd = student.new_zeros(shape, dtype=dtype)
        for a, b in chunks(student):
            index = target[a:b].unsqueeze(1)
            log_pg_s, log_qg_s, log_hat_s = _split(student[a:b], index, tau, dtype)
            log_pg_t, log_qg_t, log_hat_t = _split(teacher[a:b], index, tau, dtype)
            tckd[a:b] = (log_pg_t.exp() * (log_pg_t - log_pg_s)
                         + log_qg_t.exp() * (log_qg_t - log_qg_s)).squeeze(1)
            hat_t = log_hat_t.exp()
            # -inf - (-inf) at the target class: zero it before weighting.
            diff = log_hat_t.sub_(log_hat_s).scatter_(1, index, 0.0)
            nckd[a:b] = diff.mul_(hat_t).sum(1)
        scale = tau * tau
        tckd.mul_(scale)
        nckd.mul_(scale)
        if keep is not None:
            tckd.masked_fill_(~keep, 0)
            nckd.masked_fill_(~keep, 0)
        ctx.save_for_backward(student, teacher, target, keep)
        ctx.tau = tau
        return tckd, nckd

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_tckd: Tensor, grad_nckd: Tensor):
        student, teacher, target, keep = ctx.saved_tensors
        tau = ctx.tau
        dtype = compute_dtype(student)
        # d/dz = (1 / tau) * d/d(z / tau), and both terms carry tau^2.
        a_all = grad_tckd * tau
        n_all = grad_nckd * tau
        if keep is not None:
            a_all = a_all.masked_fill(~keep, 0)
            n_all = n_all.masked_fill(~keep, 0)
        grad = torch.empty_like(student)
        for a, b in chunks(student):
            index = target[a:b].unsqueeze(1)
            log_pg_s, _, log_hat_s = _split(student[a:b], index, tau, dtype)
            log_pg_t, _, log_hat_t = _split(teacher[a:b], index, tau, dtype)
            ad = a_all[a:b].unsqueeze(1) * (log_pg_s.exp() - log_pg_t.exp())
            n = n_all[a:b].unsqueeze(1)
            g = log_hat_s.exp_().mul_(n - ad).sub_(log_hat_t.exp_().mul_(n))
            grad[a:b] = g.scatter_(1, index, ad)
        return grad, None, None, None, None


def dkd_rows(layout: RowLayout, tau: float) -> Tuple[Tensor, Tensor]:
    """Per-row (TCKD, NCKD) of a :func:`to_rows` layout, each (B, L)."""
    if layout.target is None:
        raise ValueError('DKD needs the ground-truth class of every row: pass '
                         'target=(N,) or (N, H, W) class indices.')
    if layout.student.shape[1] < 2:
        raise ValueError('DKD needs at least 2 classes (it splits target from '
                         f'non-target), got {layout.student.shape[1]}.')
    return _DKDRows.apply(layout.student, layout.teacher, layout.target, layout.keep, tau)


def dkd_loss_parts(student_logits: Tensor,
                   teacher_logits: Tensor,
                   target: Optional[Tensor],
                   alpha: float = 1.0,
                   beta: float = 8.0,
                   tau: float = 4.0,
                   weight: Optional[Tensor] = None,
                   reduction: str = 'mean',
                   avg_factor: Optional[float] = None,
                   ignore_index: Optional[int] = 255) -> Dict[str, Tensor]:
    """``dict(loss=alpha*TCKD + beta*NCKD, tckd=TCKD, nckd=NCKD)``, reduced."""
    layout = to_rows(student_logits, teacher_logits, target, ignore_index)
    tckd, nckd = dkd_rows(layout, check_tau(tau))
    reduction = check_reduction(reduction)
    tckd = reduce_rows(tckd, layout, weight, reduction, avg_factor)
    nckd = reduce_rows(nckd, layout, weight, reduction, avg_factor)
    return dict(loss=alpha * tckd + beta * nckd, tckd=tckd, nckd=nckd)


def dkd_loss(student_logits: Tensor, teacher_logits: Tensor, target: Optional[Tensor],
             **kwargs) -> Tensor:
    """Functional DKD; see :class:`DKDLoss` and :func:`dkd_loss_parts`."""
    return dkd_loss_parts(student_logits, teacher_logits, target, **kwargs)['loss']


@MODELS.register_module()
class DKDLoss(nn.Module):
    """Decoupled KD loss: ``alpha * TCKD + beta * NCKD`` (each times tau^2).

    Args:
        alpha: weight of TCKD (target-class KD).
        beta: weight of NCKD (non-target-class KD). The authors use 8 on
            CIFAR-100 (tau 4), 0.5 / 2 on ImageNet (tau 1) and 0.25 on COCO
            (tau 1).
        tau: softmax temperature.
        loss_weight: factor on the reduced loss (e.g. a warm-up factor).
        reduction: ``'mean'`` over kept rows, ``'sum'`` or ``'none'``.
        ignore_index: rows with this target are left out.
    """

    def __init__(self,
                 alpha: float = 1.0,
                 beta: float = 8.0,
                 tau: float = 4.0,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 ignore_index: Optional[int] = 255) -> None:
        super().__init__()
        check_non_negative(alpha=alpha, beta=beta, loss_weight=loss_weight)
        self.alpha = alpha
        self.beta = beta
        self.tau = check_tau(tau)
        self.loss_weight = loss_weight
        self.reduction = check_reduction(reduction)
        self.ignore_index = ignore_index

    def forward_parts(self,
                      student_logits: Tensor,
                      teacher_logits: Tensor,
                      target: Optional[Tensor] = None,
                      weight: Optional[Tensor] = None,
                      avg_factor: Optional[float] = None,
                      reduction_override: Optional[str] = None) -> Dict[str, Tensor]:
        """Weighted loss plus the unweighted ``tckd`` and ``nckd`` terms."""
        parts = dkd_loss_parts(
            student_logits, teacher_logits, target, alpha=self.alpha, beta=self.beta,
            tau=self.tau, weight=weight, reduction=reduction_override or self.reduction,
            avg_factor=avg_factor, ignore_index=self.ignore_index)
        parts['loss'] = self.loss_weight * parts['loss']
        return parts

    def forward(self,
                student_logits: Tensor,
                teacher_logits: Tensor,
                target: Optional[Tensor] = None,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Args: logits ``(N, C)`` or ``(N, C, H, W)``; target (required)
        ``(N,)`` or ``(N, H, W)``; weight per row."""
        return self.forward_parts(student_logits, teacher_logits, target, weight,
                                  avg_factor, reduction_override)['loss']

    def extra_repr(self) -> str:
        return (f'alpha={self.alpha}, beta={self.beta}, tau={self.tau}, '
                f'loss_weight={self.loss_weight}, reduction={self.reduction}')
