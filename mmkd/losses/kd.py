"""Vanilla knowledge distillation (Hinton et al., 2015).

Per row: ``KD = tau^2 * sum_c p_t,c * (log p_t,c - log p_s,c)`` with
``p = softmax(z / tau)``, i.e. ``tau^2 * KL(p_t || p_s)`` summed over classes.
``'mean'`` averages over kept rows ("batchmean"). This is C times mmdet's
``KnowledgeDistillationKLDivLoss``, which also averages over classes; with
this convention ``KD == TCKD + (1 - p_t^T) * NCKD`` holds exactly (DKD paper).
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from mmkd.registry import MODELS
from .utils import (RowLayout, check_non_negative, check_reduction, check_tau, chunks,
                    compute_dtype, reduce_rows, to_rows)


class _KDRows(torch.autograd.Function):
    """Per-row KD with a closed-form backward: ``dKD/dz_s = tau * (p_s - p_t)``.

    Only the input logits are saved; softmaxes are recomputed chunk by chunk,
    so no full-size temporary outlives a chunk.
    """

    @staticmethod
    def forward(ctx, student: Tensor, teacher: Tensor, keep: Optional[Tensor],
                tau: float) -> Tensor:
        dtype = compute_dtype(student)
        rows = student.new_zeros((student.shape[0], student.shape[2]), dtype=dtype)
        for a, b in chunks(student):
            log_ps = F.log_softmax(student[a:b].to(dtype) / tau, dim=1)
            log_pt = F.log_softmax(teacher[a:b].to(dtype) / tau, dim=1)
            pt = log_pt.exp()
            rows[a:b] = log_pt.sub_(log_ps).mul_(pt).sum(1)
        rows.mul_(tau * tau)
        if keep is not None:
            rows.masked_fill_(~keep, 0)
        ctx.save_for_backward(student, teacher, keep)
        ctx.tau = tau
        return rows

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_rows: Tensor):
        student, teacher, keep = ctx.saved_tensors
        tau = ctx.tau
        dtype = compute_dtype(student)
        scale = grad_rows * tau
        if keep is not None:
            scale = scale.masked_fill(~keep, 0)
        grad = torch.empty_like(student)
        for a, b in chunks(student):
            ps = F.softmax(student[a:b].to(dtype) / tau, dim=1)
            ps.sub_(F.softmax(teacher[a:b].to(dtype) / tau, dim=1))
            grad[a:b] = ps.mul_(scale[a:b].unsqueeze(1))
        return grad, None, None, None


def kd_rows(layout: RowLayout, tau: float) -> Tensor:
    """Per-row KD of a :func:`to_rows` layout, shape (B, L); ignored rows 0."""
    return _KDRows.apply(layout.student, layout.teacher, layout.keep, tau)


def kd_loss(student_logits: Tensor,
            teacher_logits: Tensor,
            target: Optional[Tensor] = None,
            tau: float = 1.0,
            weight: Optional[Tensor] = None,
            reduction: str = 'mean',
            avg_factor: Optional[float] = None,
            ignore_index: Optional[int] = 255) -> Tensor:
    """Functional KD; see :class:`KDLoss`."""
    layout = to_rows(student_logits, teacher_logits, target, ignore_index)
    return reduce_rows(kd_rows(layout, check_tau(tau)), layout, weight,
                       check_reduction(reduction), avg_factor)


@MODELS.register_module()
class KDLoss(nn.Module):
    """Vanilla KD loss on classification logits.

    Args:
        tau: softmax temperature; the loss is multiplied by ``tau^2``.
        loss_weight: factor on the reduced loss.
        reduction: ``'mean'`` (over kept rows), ``'sum'`` or ``'none'``
            (per-row values of shape ``(N,)`` or ``(N, H, W)``).
        ignore_index: rows whose target equals it are left out (only when a
            target is given; KD itself does not need one).
    """

    def __init__(self,
                 tau: float = 1.0,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 ignore_index: Optional[int] = 255) -> None:
        super().__init__()
        self.tau = check_tau(tau)
        check_non_negative(loss_weight=loss_weight)
        self.loss_weight = loss_weight
        self.reduction = check_reduction(reduction)
        self.ignore_index = ignore_index

    def forward(self,
                student_logits: Tensor,
                teacher_logits: Tensor,
                target: Optional[Tensor] = None,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Args: logits ``(N, C)`` or ``(N, C, H, W)``; target ``(N,)`` or
        ``(N, H, W)``; weight per row."""
        reduction = reduction_override or self.reduction
        return self.loss_weight * kd_loss(
            student_logits, teacher_logits, target, self.tau, weight,
            reduction, avg_factor, self.ignore_index)

    def forward_parts(self, student_logits: Tensor, teacher_logits: Tensor,
                      target: Optional[Tensor] = None, **kwargs) -> dict:
        """``dict(loss=...)``; KD has no decomposed terms of its own."""
        return dict(loss=self.forward(student_logits, teacher_logits, target, **kwargs))

    def extra_repr(self) -> str:
        return f'tau={self.tau}, loss_weight={self.loss_weight}, reduction={self.reduction}'
