"""Decoupled Knowledge Distillation (Zhao et al., CVPR 2022).

With ``p = softmax(z / tau)``, ``g`` the row's ground-truth class,
``b = [p_g, 1 - p_g]`` and ``p_hat_j = p_j / (1 - p_g)`` for ``j != g``:

    TCKD = tau^2 * KL(b_t || b_s)
    NCKD = tau^2 * KL(p_hat_t || p_hat_s)
    DKD  = alpha * TCKD + beta * NCKD

and vanilla KD = TCKD + (1 - p_g^t) * NCKD exactly. ``p_hat`` is computed as a
softmax over the non-target logits only (the target's weight is exactly 0),
which is the reference code's "subtract 1000 from the target logit" without
its approximation; ``log(1 - p_g)`` is ``logsumexp(non-target) -
logsumexp(all)``, exact even when ``p_g`` rounds to 1.

``logit_standardize=True`` (Sun et al., CVPR 2024): every ``z`` above is
replaced by its row's z-score ``(z - mean_c z) / (std_c z + 1e-7)``
(Bessel-corrected std over all C classes, target included), for both models;
``tau`` is the base temperature and both terms keep their ``tau^2``. See
docs/logit_standardization.md.
"""
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from mmkd.registry import MODELS
from .base import (LogitLoss, check_non_negative, check_reduction, check_standardizable,
                   check_tau)
from .utils import (RowLayout, chunks, compute_dtype, full_precision, reduce_rows, scores_plus,
                    stacked, stacked_standardized, to_rows, zscore_backward_, zscore_stats)


class _DKDRows(torch.autograd.Function):
    """Per-row (TCKD, NCKD) with a closed-form backward.

    Per model, with ``x = z / tau``, ``g`` the row's target class and the
    non-target logits shifted by their maximum ``m = max_{j != g} x_j``:

        e_j = exp(x_j - m) (j != g),  e_g = 0,  Z = sum_j e_j,  p_hat = e / Z
        lse_nt = m + log Z             (log-sum-exp over the non-targets)
        lse = logaddexp(lse_nt, x_g)   (log-sum-exp over all classes)
        log p_g = x_g - lse,  log(1 - p_g) = lse_nt - lse

    so ``log(1 - p_g)`` is never ``log`` of a difference: it stays exact when
    ``p_g`` rounds to 1. With ``y = x - m`` the shifted logits,

        NCKD / tau^2 = sum_j e_t,j (y_t,j - y_s,j) / Z_t - log Z_t + log Z_s.

    The target logit is set to the dtype's lowest finite value before the
    maximum is taken: its ``e`` is then exactly 0 and its ``y`` is the same
    for both models, so it adds an exact 0 to the sum (no ``inf - inf``).

    Backward: with ``d = p_g^s - p_g^t`` and upstream gradients ``a`` (of TCKD)
    and ``n`` (of NCKD), the gradient on ``z_s / tau`` is ``a * d`` at the
    target class and ``p_hat_s * (n - a * d) - n * p_hat_t`` elsewhere (the
    ``1 - p_g`` of TCKD's derivative cancels against ``p_hat``'s). Only the
    logits and per-row ``m``, ``Z`` and ``d`` are saved; ``e`` is recomputed
    chunk by chunk.

    ``standardize``: ``x`` is the row's z-score over ``tau``
    (:func:`~mmkd.losses.utils.stacked_standardized`); the gradient above is
    then on the z-score over ``tau``, and is carried through the z-score
    (:func:`~mmkd.losses.utils.zscore_backward_`) from saved per-row stats.
    """

    @staticmethod
    def forward(ctx, student: Tensor, teacher: Tensor, target: Tensor,
                keep: Optional[Tensor], tau: float,
                standardize: bool = False) -> Tuple[Tensor, Tensor]:
        dtype = compute_dtype(student)
        lowest = torch.finfo(dtype).min
        stats = zscore_stats(student, dtype) if standardize else None
        # Per-row statistics; [student, teacher] stacked on dim 0, here and in
        # each chunk, so that one op serves both models.
        shape = (2, student.shape[0], 1, student.shape[2])
        peak, z, x_g = (student.new_empty(shape, dtype=dtype) for _ in range(3))
        dot = student.new_empty(shape[1:], dtype=dtype)
        for r, c in chunks(student):
            index = target[r, c].unsqueeze(1).expand(2, -1, -1, -1)
            if stats is None:
                x = stacked(student[r, :, c], teacher[r, :, c], tau, dtype)
            else:
                x = stacked_standardized(student[r, :, c], teacher[r, :, c], tau, dtype,
                                         stats[:, :, r, :, c])
            torch.gather(x, 2, index, out=x_g[:, r, :, c])
            x.scatter_(2, index, lowest)
            y = x.sub_(torch.amax(x, 2, keepdim=True, out=peak[:, r, :, c]))
            e = torch.exp(y)
            torch.sum(e, 2, keepdim=True, out=z[:, r, :, c])
            # sum_j e_t,j (y_t,j - y_s,j)
            torch.sum(torch.sub(y[1], y[0], out=y[0]).mul_(e[1]), 1, keepdim=True,
                      out=dot[r, :, c])
        log_z = z.log()
        lse_nt = log_z + peak
        # log b = log [p_g, 1 - p_g], as (2 [g, rest], 2 [s, t], B, 1, L).
        log_b = torch.stack((x_g, lse_nt)).sub_(torch.logaddexp(lse_nt, x_g))
        b_t = log_b[:, 1].exp()
        tckd = (log_b[:, 1] - log_b[:, 0]).mul_(b_t).sum(0).squeeze(1).mul_(tau * tau)
        nckd = dot.div_(z[1]).sub_(log_z[1]).add_(log_z[0]).squeeze(1).mul_(tau * tau)
        ignored = None
        if keep is not None:
            ignored = ~keep
            tckd.masked_fill_(ignored, 0)
            nckd.masked_fill_(ignored, 0)
        d = log_b[0, 0].exp_().sub_(b_t[0])  # p_g^s - p_g^t
        ctx.save_for_backward(student, teacher, target, ignored, peak.neg_(), z, d, stats)
        ctx.tau = tau
        return tckd, nckd

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_tckd: Tensor, grad_nckd: Tensor):
        student, teacher, target, ignored, neg_peak, z, d, stats = ctx.saved_tensors
        tau = ctx.tau
        dtype = compute_dtype(student)
        # d/dz = (1 / tau) * d/d(z / tau), and both terms carry tau^2.
        g_a = (grad_tckd * tau).unsqueeze(1)
        g_n = (grad_nckd * tau).unsqueeze(1)
        if ignored is not None:
            g_a.masked_fill_(ignored.unsqueeze(1), 0)
            g_n.masked_fill_(ignored.unsqueeze(1), 0)
        ad = g_a.mul_(d)
        coef_s = (g_n - ad).div_(z[0])
        coef_t = g_n.div_(z[1])
        grad = torch.empty_like(student)
        direct = grad.dtype == dtype  # else compute in a buffer and cast
        for r, c in chunks(student):
            zs = (None, None) if stats is None else stats[:, :, r, :, c].unbind(1)
            # e = exp(x - m), as -m + (1 / tau) * z in one pass (unstandardized).
            # At the target it may overflow; that entry is overwritten last.
            es = scores_plus(neg_peak[0, r, :, c], student[r, :, c], tau, zs[0],
                             out=grad[r, :, c] if direct else None).exp_()
            et = scores_plus(neg_peak[1, r, :, c], teacher[r, :, c], tau, zs[1]).exp_()
            es.mul_(coef_s[r, :, c]).addcmul_(et, coef_t[r, :, c], value=-1)
            es.scatter_(1, target[r, c].unsqueeze(1), ad[r, :, c])
            if stats is not None:
                zscore_backward_(es, student[r, :, c], zs[0])
            if not direct:
                grad[r, :, c] = es
        return grad, None, None, None, None, None


def dkd_rows(layout: RowLayout, tau: float,
             logit_standardize: bool = False) -> Tuple[Tensor, Tensor]:
    """Per-row (TCKD, NCKD) of a :func:`to_rows` layout, each (B, L) (on
    z-scored rows when ``logit_standardize``)."""
    if layout.target is None:
        raise ValueError('DKD needs the ground-truth class of every row: pass '
                         'target=(N,) or (N, H, W) class indices.')
    if layout.student.shape[1] < 2:
        raise ValueError('DKD needs at least 2 classes (it splits target from '
                         f'non-target), got {layout.student.shape[1]}.')
    check_standardizable(layout.student.shape[1], logit_standardize)
    args = (layout.student, layout.teacher, layout.target, layout.keep, tau)
    with full_precision(layout.student):
        return _DKDRows.apply(*args, True) if logit_standardize else _DKDRows.apply(*args)


def dkd_loss_parts(student_logits: Tensor,
                   teacher_logits: Tensor,
                   target: Optional[Tensor],
                   alpha: float = 1.0,
                   beta: float = 8.0,
                   tau: float = 4.0,
                   weight: Optional[Tensor] = None,
                   reduction: str = 'mean',
                   avg_factor: Optional[float] = None,
                   ignore_index: Optional[int] = 255,
                   check_target: bool = True,
                   logit_standardize: bool = False) -> Dict[str, Tensor]:
    """``dict(loss=alpha*TCKD + beta*NCKD, tckd=TCKD, nckd=NCKD)``, reduced.
    ``check_target``: check that kept targets lie in ``[0, C)`` (one
    host-device sync); ``logit_standardize``: z-score the rows first."""
    layout = to_rows(student_logits, teacher_logits, target, ignore_index, check_target)
    tckd, nckd = dkd_rows(layout, check_tau(tau), logit_standardize)
    reduction = check_reduction(reduction)
    tckd = reduce_rows(tckd, layout, weight, reduction, avg_factor)
    nckd = reduce_rows(nckd, layout, weight, reduction, avg_factor)
    return dict(loss=alpha * tckd + beta * nckd, tckd=tckd, nckd=nckd)


def dkd_loss(student_logits: Tensor, teacher_logits: Tensor, target: Optional[Tensor],
             **kwargs) -> Tensor:
    """Functional DKD; see :class:`DKDLoss` and :func:`dkd_loss_parts`."""
    return dkd_loss_parts(student_logits, teacher_logits, target, **kwargs)['loss']


@MODELS.register_module()
class DKDLoss(LogitLoss):
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
        logit_standardize: z-score each row of both models' logits first
            (Sun et al., CVPR 2024); ``tau`` is then the base temperature
            (2 in the authors' settings, with ``alpha`` and ``beta`` times 9).
    """

    def __init__(self,
                 alpha: float = 1.0,
                 beta: float = 8.0,
                 tau: float = 4.0,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 ignore_index: Optional[int] = 255,
                 logit_standardize: bool = False) -> None:
        check_non_negative(alpha=alpha, beta=beta, loss_weight=loss_weight)
        super().__init__(tau, loss_weight, reduction, ignore_index, logit_standardize)
        self.alpha = alpha
        self.beta = beta

    def loss_parts(self, student_logits: Tensor, teacher_logits: Tensor,
                   target: Optional[Tensor], weight: Optional[Tensor],
                   avg_factor: Optional[float], reduction: str,
                   check_target: bool) -> Dict[str, Tensor]:
        """``alpha * TCKD + beta * NCKD`` plus the ``tckd`` and ``nckd`` terms."""
        return dkd_loss_parts(student_logits, teacher_logits, target, alpha=self.alpha,
                              beta=self.beta, tau=self.tau, weight=weight, reduction=reduction,
                              avg_factor=avg_factor, ignore_index=self.ignore_index,
                              check_target=check_target,
                              logit_standardize=self.logit_standardize)

    def extra_repr(self) -> str:
        return (f'alpha={self.alpha}, beta={self.beta}, tau={self.tau}, '
                f'loss_weight={self.loss_weight}, reduction={self.reduction}, '
                f'logit_standardize={self.logit_standardize}')
