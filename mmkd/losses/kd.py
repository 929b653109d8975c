"""Vanilla knowledge distillation (Hinton et al., 2015).

Per row: ``KD = tau^2 * sum_c p_t,c * (log p_t,c - log p_s,c)`` with
``p = softmax(z / tau)``, i.e. ``tau^2 * KL(p_t || p_s)`` summed over classes.
``'mean'`` averages over kept rows ("batchmean"). This is C times mmdet's
``KnowledgeDistillationKLDivLoss``, which also averages over classes; with
this convention ``KD == TCKD + (1 - p_t^T) * NCKD`` holds exactly (DKD paper).

``use_sigmoid=True`` (sigmoid-scored heads: RetinaNet, FCOS, ...): each class
is its own binary distribution ``p = sigmoid(z / tau)``, and a row's KD is
the per-class binary KL summed over classes,

    KD = tau^2 * sum_c [p_t,c log(p_t,c / p_s,c) + (1 - p_t,c) log((1 - p_t,c) / (1 - p_s,c))],

averaged over rows like the softmax KD. Its gradient has the same form,
``tau * (p_s - p_t)``.

``logit_standardize=True`` (Sun et al., CVPR 2024; softmax only): ``z`` is
replaced in ``p`` by its row's z-score ``(z - mean_c z) / (std_c z + 1e-7)``
(Bessel-corrected std), for both models, and ``tau`` is the base
temperature; the ``tau^2`` factor stays. See docs/logit_standardization.md.
"""
from typing import Dict, Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from mmkd.registry import MODELS
from .base import (LogitLoss, check_reduction, check_standardizable, check_standardize,
                   check_tau)
from .utils import (RowLayout, chunks, compute_dtype, full_precision, reduce_rows,
                    scores_plus, shifted_scores, stacked, to_rows, zscore_backward_,
                    zscore_stats)


class _KDRows(torch.autograd.Function):
    """Per-row KD with a closed-form backward: ``dKD/dz_s = tau * (p_s - p_t)``.

    With ``x = z / tau``, shifted logits ``y = x - max_c x_c``, ``e = exp(y)``
    and ``Z = sum_c e`` (so ``log p = y - log Z``), one row is

        KD / tau^2 = sum_c e_t,c (y_t,c - y_s,c) / Z_t - log(Z_t / Z_s);

    both terms are small when the two distributions are close, so little
    cancels. Only the logits and each row's ``lse = max_c x_c + log Z`` are
    saved: backward recomputes ``p = exp(x - lse)`` chunk by chunk, and no
    full-size temporary outlives a chunk.

    ``standardize``: ``x`` is the row's z-score over ``tau`` instead
    (:func:`~mmkd.losses.utils.stacked_standardized`); the per-row mean, std
    and factor are saved too, and backward carries ``tau * (p_s - p_t)``
    through the z-score (:func:`~mmkd.losses.utils.zscore_backward_`).
    """

    @staticmethod
    def forward(ctx, student: Tensor, teacher: Tensor, keep: Optional[Tensor],
                tau: float, standardize: bool = False) -> Tensor:
        dtype = compute_dtype(student)
        stats = zscore_stats(student, dtype) if standardize else None
        # Per-row statistics; [student, teacher] stacked on dim 0, here and in
        # each chunk, so that one op serves both models.
        shape = (2, student.shape[0], 1, student.shape[2])
        peak, z = student.new_empty(shape, dtype=dtype), student.new_empty(shape, dtype=dtype)
        dot = student.new_empty(shape[1:], dtype=dtype)
        for r, c in chunks(student):
            y = shifted_scores(student[r, :, c], teacher[r, :, c], tau, dtype, peak[:, r, :, c],
                               None if stats is None else stats[:, :, r, :, c])
            e = torch.exp(y)
            torch.sum(e, 2, keepdim=True, out=z[:, r, :, c])
            # sum_c e_t,c (y_t,c - y_s,c)
            torch.sum(torch.sub(y[1], y[0], out=y[0]).mul_(e[1]), 1, keepdim=True,
                      out=dot[r, :, c])
        rows = dot.div_(z[1]).sub_(torch.log(z[1] / z[0])).squeeze(1).mul_(tau * tau)
        ignored = None
        if keep is not None:
            ignored = ~keep
            rows.masked_fill_(ignored, 0)
        neg_lse = z.log_().add_(peak).neg_()
        ctx.save_for_backward(student, teacher, ignored, neg_lse, stats)
        ctx.tau = tau
        return rows

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_rows: Tensor):
        student, teacher, ignored, neg_lse, stats = ctx.saved_tensors
        tau = ctx.tau
        dtype = compute_dtype(student)
        scale = (grad_rows * tau).unsqueeze(1)
        if ignored is not None:
            scale.masked_fill_(ignored.unsqueeze(1), 0)
        grad = torch.empty_like(student)
        direct = grad.dtype == dtype  # else compute in a buffer and cast
        for r, c in chunks(student):
            zs = (None, None) if stats is None else stats[:, :, r, :, c].unbind(1)
            # p = exp(x - lse), as -lse + (1 / tau) * z: one pass (unstandardized).
            ps = scores_plus(neg_lse[0, r, :, c], student[r, :, c], tau, zs[0],
                             out=grad[r, :, c] if direct else None).exp_()
            pt = scores_plus(neg_lse[1, r, :, c], teacher[r, :, c], tau, zs[1]).exp_()
            if stats is None:
                ps.sub_(pt).mul_(scale[r, :, c])
            else:  # the scale is folded into the z-score's per-row factors
                zscore_backward_(ps.sub_(pt), student[r, :, c], zs[0], scale[r, :, c])
            if not direct:
                grad[r, :, c] = ps
        return grad, None, None, None, None


class _SigmoidKDRows(torch.autograd.Function):
    """Per-row binary-KL KD on sigmoids, closed-form backward ``tau * (p_s - p_t)``.

    With ``x = z / tau`` and ``log p = x - softplus(x)``,
    ``log (1 - p) = -softplus(x)``, one class's binary KL is

        p_t (x_t - x_s) + softplus(x_s) - softplus(x_t),

    which needs no log of a probability (no underflow for large |x|).
    Only the logits are saved; backward recomputes both sigmoids per chunk.
    """

    @staticmethod
    def forward(ctx, student: Tensor, teacher: Tensor, keep: Optional[Tensor],
                tau: float) -> Tensor:
        dtype = compute_dtype(student)
        rows = student.new_empty((student.shape[0], 1, student.shape[2]), dtype=dtype)
        for r, c in chunks(student):
            x = stacked(student[r, :, c], teacher[r, :, c], tau, dtype)
            p_t = torch.sigmoid(x[1])
            kl = torch.sub(x[1], x[0]).mul_(p_t)
            sp = torch.nn.functional.softplus(x)
            kl.add_(sp[0]).sub_(sp[1])
            torch.sum(kl, 1, keepdim=True, out=rows[r, :, c])
        rows = rows.squeeze(1).mul_(tau * tau)
        ignored = None
        if keep is not None:
            ignored = ~keep
            rows.masked_fill_(ignored, 0)
        ctx.save_for_backward(student, teacher, ignored)
        ctx.tau = tau
        return rows

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_rows: Tensor):
        student, teacher, ignored = ctx.saved_tensors
        tau = ctx.tau
        dtype = compute_dtype(student)
        scale = (grad_rows * tau).unsqueeze(1)
        if ignored is not None:
            scale.masked_fill_(ignored.unsqueeze(1), 0)
        grad = torch.empty_like(student)
        for r, c in chunks(student):
            p = stacked(student[r, :, c], teacher[r, :, c], tau, dtype).sigmoid_()
            grad[r, :, c] = p[0].sub_(p[1]).mul_(scale[r, :, c])
        return grad, None, None, None


def kd_rows(layout: RowLayout, tau: float, use_sigmoid: bool = False,
            logit_standardize: bool = False) -> Tensor:
    """Per-row KD of a :func:`to_rows` layout, shape (B, L); ignored rows 0
    (per-class binary KL on sigmoids when ``use_sigmoid``; on z-scored rows
    when ``logit_standardize``, softmax only)."""
    check_standardizable(layout.student.shape[1], check_standardize(logit_standardize, use_sigmoid))
    with full_precision(layout.student):
        if use_sigmoid:
            return _SigmoidKDRows.apply(layout.student, layout.teacher, layout.keep, tau)
        if logit_standardize:
            return _KDRows.apply(layout.student, layout.teacher, layout.keep, tau, True)
        return _KDRows.apply(layout.student, layout.teacher, layout.keep, tau)


def kd_loss(student_logits: Tensor,
            teacher_logits: Tensor,
            target: Optional[Tensor] = None,
            tau: float = 1.0,
            weight: Optional[Tensor] = None,
            reduction: str = 'mean',
            avg_factor: Optional[float] = None,
            ignore_index: Optional[int] = 255,
            use_sigmoid: bool = False,
            check_target: bool = True,
            logit_standardize: bool = False) -> Tensor:
    """Functional KD; see :class:`KDLoss`. ``check_target``: check that kept
    targets lie in ``[0, C)`` (one host-device sync)."""
    layout = to_rows(student_logits, teacher_logits, target, ignore_index, check_target)
    return reduce_rows(kd_rows(layout, check_tau(tau), use_sigmoid, logit_standardize), layout,
                       weight, check_reduction(reduction), avg_factor)


@MODELS.register_module()
class KDLoss(LogitLoss):
    """Vanilla KD loss on classification logits.

    Args:
        tau: softmax temperature; the loss is multiplied by ``tau^2``.
        loss_weight: factor on the reduced loss.
        reduction: ``'mean'`` (over kept rows), ``'sum'`` or ``'none'``
            (per-row values of shape ``(N,)`` or ``(N, H, W)``).
        ignore_index: rows whose target equals it are left out (only when a
            target is given; KD itself does not need one).
        use_sigmoid: per-class binary KL on ``sigmoid(z / tau)`` (summed over
            classes) instead of the softmax KL, for sigmoid-scored heads.
        logit_standardize: z-score each row of both models' logits first
            (Sun et al., CVPR 2024): ``p = softmax((z - mean) / (std + 1e-7) /
            tau)``, ``tau`` the base temperature (2 in the authors' settings);
            not with ``use_sigmoid``.
    """

    def __init__(self,
                 tau: float = 1.0,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 ignore_index: Optional[int] = 255,
                 use_sigmoid: bool = False,
                 logit_standardize: bool = False) -> None:
        check_standardize(logit_standardize, use_sigmoid)
        super().__init__(tau, loss_weight, reduction, ignore_index, logit_standardize)
        self.use_sigmoid = bool(use_sigmoid)

    def loss_parts(self, student_logits: Tensor, teacher_logits: Tensor,
                   target: Optional[Tensor], weight: Optional[Tensor],
                   avg_factor: Optional[float], reduction: str,
                   check_target: bool) -> Dict[str, Tensor]:
        """``dict(loss=...)``: KD has no decomposed terms of its own."""
        return dict(loss=kd_loss(student_logits, teacher_logits, target, self.tau, weight,
                                 reduction, avg_factor, self.ignore_index, self.use_sigmoid,
                                 check_target, self.logit_standardize))

    def extra_repr(self) -> str:
        return (f'tau={self.tau}, loss_weight={self.loss_weight}, reduction={self.reduction}, '
                f'use_sigmoid={self.use_sigmoid}, logit_standardize={self.logit_standardize}')
