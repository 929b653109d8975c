"""Shared plumbing of mmkd's logit losses: layout, validation, reduction.

Every logit loss sees its input as ``(B, C, L)``: ``(N, C)`` logits become
``(N, C, 1)`` and dense ``(N, C, H, W)`` logits ``(N, C, H*W)``, both as views,
so no permuted copy of a segmentation map is ever made. A *row* is one
``(b, l)`` position: one RoI, one image, or one pixel.
"""
import math
from typing import Iterator, NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor

# Re-exported: ``mmkd.losses.utils.LogitLoss`` and the setting checks lived
# here before mmkd/losses/base.py; callers (e.g. PSKDSnapshotHook) import them.
from .base import (REDUCTIONS, LogitLoss, check_non_negative, check_reduction,  # noqa: F401
                   check_tau)

#: Elements of one chunk of a loss's forward/backward; a few compute-dtype
#: temporaries of this size live at once, so memory stays flat in the input.
#: Read at call time (tests patch it).
CHUNK_ELEMENTS = 1 << 20


class RowLayout(NamedTuple):
    """Logits reshaped to rows, plus what is needed to undo it."""
    student: Tensor  # (B, C, L), may carry grad
    teacher: Tensor  # (B, C, L), detached
    target: Optional[Tensor]  # (B, L) int64, or None
    keep: Optional[Tensor]  # (B, L) bool, or None when every row counts
    row_shape: torch.Size  # (N,) or (N, H, W): shape of per-row results


def to_rows(student: Tensor,
            teacher: Tensor,
            target: Optional[Tensor] = None,
            ignore_index: Optional[int] = 255,
            check_target: bool = True) -> RowLayout:
    """Check student/teacher/target agree and view them as rows.

    Everything here but the target-value check reads shapes only, so it runs
    without a host-device sync. The value check (:func:`check_target_values`,
    one sync) runs when ``check_target`` is true.

    Raises:
        ValueError: if the logits are not ``(N, C, ...)``, student and teacher
            shapes differ, the target's shape does not match, or (when
            ``check_target``) a kept target lies outside ``[0, C)``.
    """
    if student.dim() < 2:
        raise ValueError('logits must be (N, C) or (N, C, H, W); got shape '
                         f'{tuple(student.shape)}.')
    if student.shape != teacher.shape:
        raise ValueError(
            f'student logits {tuple(student.shape)} and teacher logits '
            f'{tuple(teacher.shape)} differ in shape: distillation compares them '
            'row by row, so both models must predict the same classes at the '
            'same positions (resize the teacher logits or fix num_classes).')
    n, c = student.shape[:2]
    row_shape = torch.Size((n, ) + tuple(student.shape[2:]))
    spatial = 1
    for size in student.shape[2:]:
        spatial *= size
    s3 = student.reshape(n, c, spatial)
    t3 = teacher.detach().reshape(n, c, spatial)
    if target is None:
        return RowLayout(s3, t3, None, None, row_shape)
    if tuple(target.shape) != tuple(row_shape):
        raise ValueError(f'target has shape {tuple(target.shape)} but logits of shape '
                         f'{tuple(student.shape)} need a target of shape '
                         f'{tuple(row_shape)} (one class index per row).')
    if target.is_floating_point():
        raise ValueError('target must hold integer class indices, got dtype '
                         f'{target.dtype}.')
    tgt = target.reshape(n, spatial).long()
    # Without an ignore_index every row counts: no mask at all, rather than
    # an all-True one that the kernels would then apply.
    keep = None if ignore_index is None else tgt != ignore_index
    if check_target:
        check_target_values(tgt, keep, c, ignore_index)
    if keep is not None:
        # Ignored rows are given class 0 so gathers stay in range; their loss
        # is zeroed by `keep` and they never reach a gradient.
        tgt = tgt.masked_fill(~keep, 0)
    return RowLayout(s3, t3, tgt, keep, row_shape)


def check_target_values(target: Tensor, keep: Optional[Tensor], num_classes: int,
                        ignore_index: Optional[int]) -> None:
    """Raise if a kept target lies outside ``[0, num_classes)``.

    This reads a value on the host, so on an accelerator it waits for the
    device (one sync): the loss modules run it on their first call only
    (see :class:`~mmkd.losses.base.LogitLoss`).

    Raises:
        ValueError: naming the first such value in row order.
    """
    bad = (target < 0) | (target >= num_classes)
    if keep is not None:
        bad &= keep
    if bool(bad.any()):
        value = target[bad][0].item()
        raise ValueError(
            f'target value {value} is outside [0, {num_classes}) for logits with '
            f'{num_classes} classes (ignore_index={ignore_index}). Check num_classes of '
            'both models, or set ignore_index to the label your dataset uses for "ignore".')


def full_precision(x: Tensor):
    """Autocast off around a loss's kernels: they choose their own compute
    dtype (:func:`compute_dtype`), and under bf16/fp16 autocast the reductions
    inside (einsum, sums) would otherwise drop to low precision."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def compute_dtype(x: Tensor) -> torch.dtype:
    """Losses run in float32 at least (fp16/bf16 logits under AMP)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def chunks(x: Tensor) -> Iterator[Tuple[slice, slice]]:
    """Pieces of a ``(B, C, L)`` tensor of at most about CHUNK_ELEMENTS each.

    Yields ``(rows, cols)``, slices of dims 0 and 2: a piece is
    ``x[rows, :, cols]`` (and ``t[rows, cols]`` of a per-row ``(B, L)``
    tensor). Whole entries of dim 0 are grouped while they fit; an entry too
    large on its own (one big image) is cut along ``L``. Pieces are balanced
    in size.
    """
    n, c, length = x.shape
    limit = max(1, CHUNK_ELEMENTS)
    if c * length <= limit or length == 1:
        step = _balanced(n, max(1, limit // max(1, c * length)))
        for start in range(0, n, step):
            yield slice(start, min(start + step, n)), slice(None)
    else:
        width = _balanced(length, max(1, limit // c))
        for row in range(n):
            for start in range(0, length, width):
                yield slice(row, row + 1), slice(start, min(start + width, length))


def _balanced(total: int, step: int) -> int:
    """The smallest step that needs as few pieces of ``total`` as ``step`` does."""
    pieces = -(-total // step) if total else 1
    return max(1, -(-total // pieces))


def stacked(student: Tensor, teacher: Tensor, tau: float, dtype: torch.dtype) -> Tensor:
    """``logits / tau`` of both models, stacked into a fresh ``(2, b, C, l)``
    buffer of ``dtype``, so that one op then serves both models."""
    x = student.new_empty((2, ) + student.shape, dtype=dtype)
    x[0] = student
    x[1] = teacher
    return x.div_(tau) if tau != 1 else x


def stacked_shifted(student: Tensor, teacher: Tensor, tau: float, dtype: torch.dtype,
                    max_out: Tensor) -> Tensor:
    """``x - max_c x`` for ``x = logits / tau`` of both models, stacked into a
    fresh ``(2, b, C, l)`` buffer; the per-row maxima ``(2, b, 1, l)`` of ``x``
    are written to ``max_out``."""
    y = student.new_empty((2, ) + student.shape, dtype=dtype)
    for i, logits in enumerate((student, teacher)):
        # max(z / tau) = max(z) / tau: take it on the raw logits (exact in any
        # dtype), subtract it while copying, then divide both at once.
        if logits.dtype == dtype:
            peak = torch.amax(logits, 1, keepdim=True, out=max_out[i])
        else:
            peak = max_out[i].copy_(torch.amax(logits, 1, keepdim=True))
        torch.sub(logits, peak, out=y[i])  # in dtype: peak has it
    if tau != 1:
        y.div_(tau)
        max_out.div_(tau)
    return y


def reduce_rows(rows: Tensor,
                layout: RowLayout,
                weight: Optional[Tensor],
                reduction: str,
                avg_factor: Optional[float]) -> Tensor:
    """Weight and reduce per-row losses of shape (B, L).

    Ignored rows are already 0. ``'mean'`` divides by ``avg_factor`` when given,
    else by the number of kept rows (at least 1, so an empty batch gives a 0
    that still belongs to the graph).
    """
    rows = rows.reshape(layout.row_shape)
    if weight is not None:
        if weight.numel() != rows.numel():
            raise ValueError(f'weight has {weight.numel()} elements but there are '
                             f'{rows.numel()} rows (shape {tuple(rows.shape)}).')
        rows = rows * weight.reshape(rows.shape).to(rows.dtype)
    if reduction == 'none':
        return rows
    total = rows.sum()
    if reduction == 'sum':
        return total
    if avg_factor is None:
        return total / kept_rows(layout, total.dtype)
    return total / avg_factor


def kept_rows(layout: RowLayout, dtype: torch.dtype) -> Union[int, Tensor]:
    """The number of kept rows, at least 1 (an empty batch then gives a 0
    that still belongs to the graph): an ``int`` when every row counts, else
    a 0-dim tensor of ``dtype`` on the logits' device, which no sync reads."""
    if layout.keep is None:
        return max(layout.student.shape[0] * layout.student.shape[2], 1)
    return layout.keep.sum().clamp_(min=1).to(dtype)


#: The official logit-standardization code's epsilon (Sun et al., CVPR 2024):
#: a row is z-scored as ``(z - mean) / (std + STD_EPS)``.
STD_EPS = 1e-7


def zscore_stats(student: Tensor, dtype: torch.dtype) -> Tensor:
    """An empty ``(3, 2, B, 1, L)`` buffer for the per-row ``[mean, std,
    factor]`` of both models (:func:`stacked_standardized` fills it)."""
    return student.new_empty((3, 2, student.shape[0], 1, student.shape[2]), dtype=dtype)


def stacked_centred(student: Tensor, teacher: Tensor, tau: float, dtype: torch.dtype,
                    stats: Tensor) -> Tensor:
    """``u = z - mean`` of both models' rows, stacked into a fresh ``(2, b, C,
    l)`` buffer of ``dtype``; their statistics are written to ``stats``, a
    ``(3, 2, b, 1, l)`` view of :func:`zscore_stats`'s buffer: ``mean``,
    ``std`` (with Bessel's correction, as ``torch.std``'s default in the
    official code) and ``factor = 1 / (tau * (std + STD_EPS))``, so that the
    standardized scores are ``u * factor``.

    Two passes over the centred values (mean, then the norm of ``u``): no
    ``E[z^2] - E[z]^2`` cancellation.
    """
    u = student.new_empty((2, ) + student.shape, dtype=dtype)
    for i, logits in enumerate((student, teacher)):
        torch.mean(logits, 1, keepdim=True, dtype=dtype, out=stats[0, i])
        torch.sub(logits, stats[0, i], out=u[i])
    torch.linalg.vector_norm(u, dim=2, keepdim=True, out=stats[1])
    stats[1].div_(math.sqrt(student.shape[1] - 1))
    torch.add(stats[1], STD_EPS, out=stats[2]).mul_(tau).reciprocal_()
    return u


def stacked_standardized(student: Tensor, teacher: Tensor, tau: float, dtype: torch.dtype,
                         stats: Tensor) -> Tensor:
    """``(z - mean) / (std + STD_EPS) / tau`` of both models, stacked into a
    fresh ``(2, b, C, l)`` buffer; ``stats`` as in :func:`stacked_centred`.
    The row is centred before it is scaled, so no large mean cancels."""
    x = stacked_centred(student, teacher, tau, dtype, stats)
    return x.mul_(stats[2])


def shifted_scores(student: Tensor, teacher: Tensor, tau: float, dtype: torch.dtype,
                   max_out: Tensor, stats: Optional[Tensor]) -> Tensor:
    """:func:`stacked_shifted` on ``x = z / tau``, or on the standardized
    ``x`` of :func:`stacked_standardized` when ``stats`` is given: ``x -
    max_c x`` of both models, the per-row maxima of ``x`` written to
    ``max_out``."""
    if stats is None:
        return stacked_shifted(student, teacher, tau, dtype, max_out)
    u = stacked_centred(student, teacher, tau, dtype, stats)
    # (u - max u) * factor in one pass, as u * factor - (max u) * factor:
    # u is centred, so neither product is large and little cancels.
    top = torch.amax(u, 2, keepdim=True, out=max_out).mul_(stats[2])
    return torch.addcmul(top.neg(), u, stats[2], out=u)


def scores_plus(offset: Tensor, logits: Tensor, tau: float, stats: Optional[Tensor],
                out: Optional[Tensor] = None) -> Tensor:
    """``offset + x`` for one model's ``(b, C, l)`` chunk, where ``x = z /
    tau``, or ``x = (z - mean) * factor`` when that model's ``(3, b, 1, l)``
    ``stats`` are given (standardized): the argument of a recomputed ``exp``
    in backward. The plain case is one pass, exactly as before."""
    if stats is None:
        return torch.add(offset, logits, alpha=1 / tau, out=out)
    u = torch.sub(logits, stats[0], out=out)
    return torch.addcmul(offset, u, stats[2], out=u)


def zscore_backward_(grad: Tensor, logits: Tensor, stats: Tensor,
                     row_scale: Optional[Tensor] = None) -> Tensor:
    """Turn ``grad = dL/dn`` into ``dL/dz`` in place, for a ``(b, C, l)`` chunk
    of standardized logits ``n = u / s`` (``u = z - mean``, ``s = std +
    STD_EPS``, ``std`` with Bessel's correction) and that model's ``(3, b, 1,
    l)`` ``stats``:

        dL/dz = (grad - mean_c(grad) - <grad, u> u / ((C - 1) std s)) / s

    (the last term is the derivative through ``std``). A constant row (std 0,
    so ``u = 0``) gets ``(grad - mean_c(grad)) / STD_EPS``: finite, where
    autograd through ``torch.std`` would give NaN. ``row_scale`` (``(b, 1,
    l)``): ``grad`` is ``dL/dn / row_scale``; the map is linear, so the
    factor is applied to per-row numbers here, not in a pass of its own.
    """
    mean, std = stats[0], stats[1]
    u = torch.sub(logits, mean)
    inv_s = (std + STD_EPS).reciprocal_()
    # -<grad, u> / ((C - 1) std s^2): the factor of u, 0 for a constant row.
    k = torch.linalg.vecdot(u, grad, dim=1).unsqueeze(1).mul_(inv_s).mul_(inv_s)
    k = torch.where(std > 0, k / (std * (1 - grad.shape[1])), torch.zeros_like(k))
    if row_scale is not None:
        k, inv_s = k * row_scale, inv_s * row_scale
    # grad / s - mean_c(grad) / s, then + k u: two passes over the chunk.
    torch.addcmul(grad.mean(1, keepdim=True).mul_(inv_s).neg_(), grad, inv_s, out=grad)
    return grad.addcmul_(u, k)
