"""DIST: Knowledge Distillation from a Stronger Teacher (Huang et al., 2022).

With ``y = softmax(z / tau)`` and the Pearson distance
``d(u, v) = 1 - <u - mean(u), v - mean(v)> / (|u - mean(u)| |v - mean(v)| + 1e-8)``:

    inter = mean over kept rows i of d(y_s[i, :], y_t[i, :])
    intra = mean over classes j of d(y_s[:, j], y_t[:, j])   (across kept rows)
    DIST  = tau^2 * (beta * inter + gamma * intra)

Dense logits ``(N, C, H, W)``: every pixel is a row and the intra-class
correlation runs over every kept pixel of the batch. A softmax row sums to 1,
so its mean is exactly ``1 / C``. With a single kept row the intra-class
correlation is 0 (nothing varies), as in the reference code; with none, both
terms are 0.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from mmkd.registry import MODELS
from .utils import RowLayout, check_non_negative, check_tau, chunks, compute_dtype, to_rows

EPS = 1e-8


def _probs(student: Tensor, teacher: Tensor, tau: float, dtype: torch.dtype):
    return (F.softmax(student.to(dtype) / tau, dim=1), F.softmax(teacher.to(dtype) / tau, dim=1))


def _row_stats(ys: Tensor, yt: Tensor):
    """Row-centred ``a``, ``b`` and their dot product and norms, (b, 1, L)."""
    inv_c = 1.0 / ys.shape[1]
    a, b = ys - inv_c, yt - inv_c
    return (a, b, (a * b).sum(1, keepdim=True), a.norm(dim=1, keepdim=True),
            b.norm(dim=1, keepdim=True))


def _cos_grad(x: Tensor, y: Tensor, dot: Tensor, nx: Tensor, ny: Tensor) -> Tensor:
    """d/dx of <x, y> / (|x||y| + eps), for centred x, y (mean-free result)."""
    denom = nx * ny + EPS
    # x == 0 (a uniform row, or a column with no kept rows) has dot == 0 too:
    # its second term is 0, not 0/0.
    coef = torch.where(nx > 0, dot * ny / (nx * denom * denom), torch.zeros_like(dot))
    return y / denom - x * coef


class _DISTTerms(torch.autograd.Function):
    """(inter, intra) Pearson distances with a closed-form backward.

    Forward passes over the rows twice (column means first, then centred
    column statistics); backward recomputes the softmaxes once more. Only the
    logits and (C,)-sized statistics are saved.
    """

    @staticmethod
    def forward(ctx, student: Tensor, teacher: Tensor, keep: Optional[Tensor],
                row_weight: Tensor, inter_norm: float, tau: float) -> Tuple[Tensor, Tensor]:
        dtype = compute_dtype(student)
        c = student.shape[1]
        kept = student.shape[0] * student.shape[2] if keep is None else int(keep.sum())
        mask = None if keep is None else keep.unsqueeze(1).to(dtype)
        inter = student.new_zeros((), dtype=dtype)
        sum_s = student.new_zeros((1, c, 1), dtype=dtype)
        sum_t = student.new_zeros((1, c, 1), dtype=dtype)
        for a, b in chunks(student):
            ys, yt = _probs(student[a:b], teacher[a:b], tau, dtype)
            _, _, dot, na, nb = _row_stats(ys, yt)
            dist = 1 - dot / (na * nb + EPS)
            inter += (dist.squeeze(1) * row_weight[a:b]).sum()
            if mask is not None:
                ys.mul_(mask[a:b])
                yt.mul_(mask[a:b])
            sum_s += ys.sum((0, 2), keepdim=True)
            sum_t += yt.sum((0, 2), keepdim=True)
        inter /= inter_norm
        mean_s, mean_t = sum_s / max(kept, 1), sum_t / max(kept, 1)
        col_dot = torch.zeros_like(sum_s)
        col_ss = torch.zeros_like(sum_s)
        col_tt = torch.zeros_like(sum_s)
        for a, b in chunks(student):
            ys, yt = _probs(student[a:b], teacher[a:b], tau, dtype)
            u, v = ys.sub_(mean_s), yt.sub_(mean_t)
            if mask is not None:
                u.mul_(mask[a:b])
                v.mul_(mask[a:b])
            col_dot += (u * v).sum((0, 2), keepdim=True)
            col_ss += (u * u).sum((0, 2), keepdim=True)
            col_tt += (v * v).sum((0, 2), keepdim=True)
        col_nu, col_nv = col_ss.sqrt(), col_tt.sqrt()
        intra = (1 - col_dot / (col_nu * col_nv + EPS)).mean()
        if kept == 0:
            intra = intra * 0
        ctx.save_for_backward(student, teacher, keep, row_weight, mean_s, mean_t, col_dot,
                              col_nu, col_nv)
        ctx.inter_norm, ctx.tau, ctx.kept = inter_norm, tau, kept
        return inter, intra

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_inter: Tensor, grad_intra: Tensor):
        (student, teacher, keep, row_weight, mean_s, mean_t, col_dot, col_nu,
         col_nv) = ctx.saved_tensors
        tau = ctx.tau
        dtype = compute_dtype(student)
        c = student.shape[1]
        # The loss *decreases* with correlation: d(1 - r) = -dr.
        row_coef = (-grad_inter / ctx.inter_norm) * row_weight  # (B, L)
        col_coef = -grad_intra / c if ctx.kept else grad_intra * 0
        grad = torch.empty_like(student)
        for a, b in chunks(student):
            ys, yt = _probs(student[a:b], teacher[a:b], tau, dtype)
            ra, rb, dot, na, nb = _row_stats(ys, yt)
            g = _cos_grad(ra, rb, dot, na, nb).mul_(row_coef[a:b].unsqueeze(1))
            u, v = ys - mean_s, yt.sub_(mean_t)
            col_grad_u = _cos_grad(u, v, col_dot, col_nu, col_nv).mul_(col_coef)
            if keep is not None:
                col_grad_u.mul_(keep[a:b].unsqueeze(1).to(dtype))
            g.add_(col_grad_u)
            # softmax backward, then d(z / tau)/dz = 1 / tau.
            g.sub_((g * ys).sum(1, keepdim=True)).mul_(ys).div_(tau)
            grad[a:b] = g
        return grad, None, None, None, None, None


def dist_terms(layout: RowLayout, tau: float, weight: Optional[Tensor] = None,
               avg_factor: Optional[float] = None) -> Tuple[Tensor, Tensor]:
    """``(inter, intra)`` Pearson distances of a :func:`to_rows` layout.

    ``weight`` (one per row) multiplies each row's inter-class distance;
    ``avg_factor`` replaces the number of kept rows as inter's divisor.
    """
    student = layout.student
    shape = (student.shape[0], student.shape[2])
    dtype = compute_dtype(student)
    row_weight = student.new_ones(shape, dtype=dtype)
    if weight is not None:
        if weight.numel() != row_weight.numel():
            raise ValueError(f'weight has {weight.numel()} elements but there are '
                             f'{row_weight.numel()} rows.')
        row_weight = weight.detach().reshape(shape).to(dtype)
    if layout.keep is not None:
        row_weight = row_weight * layout.keep
        kept = int(layout.keep.sum())
    else:
        kept = shape[0] * shape[1]
    inter_norm = float(avg_factor) if avg_factor is not None else float(max(kept, 1))
    return _DISTTerms.apply(student, layout.teacher, layout.keep, row_weight, inter_norm, tau)


def dist_loss_parts(student_logits: Tensor,
                    teacher_logits: Tensor,
                    target: Optional[Tensor] = None,
                    beta: float = 1.0,
                    gamma: float = 1.0,
                    tau: float = 1.0,
                    weight: Optional[Tensor] = None,
                    avg_factor: Optional[float] = None,
                    ignore_index: Optional[int] = 255) -> Dict[str, Tensor]:
    """``dict(loss=tau^2 * (beta*inter + gamma*intra), inter=..., intra=...)``."""
    tau = check_tau(tau)
    layout = to_rows(student_logits, teacher_logits, target, ignore_index)
    inter, intra = dist_terms(layout, tau, weight, avg_factor)
    return dict(loss=tau * tau * (beta * inter + gamma * intra), inter=inter, intra=intra)


def dist_loss(student_logits: Tensor, teacher_logits: Tensor,
              target: Optional[Tensor] = None, **kwargs) -> Tensor:
    """Functional DIST; see :class:`DISTLoss`."""
    return dist_loss_parts(student_logits, teacher_logits, target, **kwargs)['loss']


@MODELS.register_module()
class DISTLoss(nn.Module):
    """DIST loss: inter- plus intra-class Pearson relations.

    Args:
        beta: weight of the inter-class (per row) relation.
        gamma: weight of the intra-class (per class, across rows) relation.
        tau: softmax temperature; the loss is multiplied by ``tau^2``.
        loss_weight: factor on the loss.
        ignore_index: rows with this target are left out of both terms.

    DIST couples all rows of a batch, so its only reduction is the paper's
    (means over rows and classes); ``reduction_override`` accepts ``'mean'``.
    """

    def __init__(self,
                 beta: float = 1.0,
                 gamma: float = 1.0,
                 tau: float = 1.0,
                 loss_weight: float = 1.0,
                 ignore_index: Optional[int] = 255) -> None:
        super().__init__()
        check_non_negative(beta=beta, gamma=gamma, loss_weight=loss_weight)
        self.beta = beta
        self.gamma = gamma
        self.tau = check_tau(tau)
        self.loss_weight = loss_weight
        self.ignore_index = ignore_index

    def forward_parts(self,
                      student_logits: Tensor,
                      teacher_logits: Tensor,
                      target: Optional[Tensor] = None,
                      weight: Optional[Tensor] = None,
                      avg_factor: Optional[float] = None,
                      reduction_override: Optional[str] = None) -> Dict[str, Tensor]:
        """Weighted loss plus the raw ``inter`` and ``intra`` distances."""
        if reduction_override not in (None, 'mean'):
            raise ValueError('DISTLoss correlates rows with each other and has no '
                             f"per-row form: reduction_override='{reduction_override}' "
                             "is not supported (use None or 'mean').")
        parts = dist_loss_parts(student_logits, teacher_logits, target, self.beta,
                                self.gamma, self.tau, weight, avg_factor, self.ignore_index)
        parts['loss'] = self.loss_weight * parts['loss']
        return parts

    def forward(self,
                student_logits: Tensor,
                teacher_logits: Tensor,
                target: Optional[Tensor] = None,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Args: logits ``(N, C)`` or ``(N, C, H, W)``; optional target
        ``(N,)`` or ``(N, H, W)`` to leave out ``ignore_index`` rows."""
        return self.forward_parts(student_logits, teacher_logits, target, weight, avg_factor,
                                  reduction_override)['loss']

    def extra_repr(self) -> str:
        return (f'beta={self.beta}, gamma={self.gamma}, tau={self.tau}, '
                f'loss_weight={self.loss_weight}')
