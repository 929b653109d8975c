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

``use_sigmoid=True`` (DIST's switch for sigmoid-scored heads, e.g. dense
detectors): ``y = sigmoid(z / tau)`` per class instead of the softmax. Rows no
longer sum to 1, so each row is centred on its own mean; everything else is
the same.

``logit_standardize=True`` (Sun et al., CVPR 2024; softmax only): ``z`` in
``y`` is replaced by its row's z-score ``(z - mean_c z) / (std_c z + 1e-7)``
(Bessel-corrected std), for both models; ``tau`` is the base temperature and
the ``tau^2`` factor stays. See docs/logit_standardization.md.
"""
from typing import Dict, Optional, Tuple, Union

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from mmkd.registry import MODELS
from .base import (LogitLoss, check_non_negative, check_standardizable, check_standardize,
                   check_tau)
from .utils import (RowLayout, chunks, compute_dtype, full_precision, kept_rows, scores_plus,
                    shifted_scores, stacked, to_rows, zscore_backward_, zscore_stats)

EPS = 1e-8


def _cos_coefs(coef: Tensor, dot: Tensor, nx: Tensor, ny: Tensor):
    """``(p, q)`` with ``coef * d/dx [<x, y> / (|x||y| + eps)] = p * y - q * x``
    for centred ``x``, ``y``. ``x == 0`` (a uniform row, or a column with no
    kept rows) has ``dot == 0`` too: its ``q`` is 0, not 0/0."""
    den = nx * ny + EPS
    p = coef / den
    q = torch.where(nx > 0, p * dot * ny / (nx * den), torch.zeros_like(p))
    return p, q


def _col_sum(x: Tensor, weight: Optional[Tensor]) -> Tensor:
    """Per-class sums over the rows of stacked chunks ``(s, b, C, l)``, with
    optional row weights ``(s or 1, b, l)``: ``(s, C)``."""
    if weight is None:
        return x.sum((1, 3))
    # One einsum per model: a batched matrix-vector product is far slower.
    weight = weight.expand(x.shape[0], -1, -1)
    return torch.stack([torch.einsum('bcl,bl->c', x[i], weight[i]) for i in range(x.shape[0])])


#: A count or divisor: a Python number when known on the host, else a 0-dim
#: float64 tensor on the device (a count of kept rows), never read back.
Count = Union[int, float, Tensor]


def _at_least_one(count: Count) -> Count:
    """``max(count, 1)``, on the device for a tensor (``count`` is a number of
    rows: only 0 is below 1; a Python count here is never 0)."""
    return count.clamp(min=1) if isinstance(count, Tensor) else count


def _like(count: Count, x: Tensor) -> Count:
    """``count`` in ``x``'s dtype when a tensor: a 0-dim float64 tensor would
    otherwise promote a 0-dim float32 result to float64."""
    return count.to(x.dtype) if isinstance(count, Tensor) else count


def _zero_unless_kept(x: Tensor, kept: Count) -> Tensor:
    """``x``, or ``x * 0`` (still in the graph) when no row is kept."""
    if isinstance(kept, Tensor):
        return x * (kept > 0)
    return x if kept else x * 0


class _PearsonStats:
    """The statistics of DIST's two Pearson distances, accumulated chunk by
    chunk; shared by the softmax and the sigmoid kernels.

    * per row: ``<a, b>``, ``|a|^2``, ``|b|^2`` of the row-centred scores
      ``a`` (student) and ``b`` (teacher);
    * per class, over kept rows: count, means of ``y_s``, ``y_t`` and centred
      co-moments ``M_uv``, ``M_uu``, ``M_vv``. Each chunk's are centred on the
      chunk's own means and merged exactly (Chan et al.):
      ``M_uv = M_uv' + M_uv'' + (mu_u'' - mu_u')(mu_v'' - mu_v') n' n'' / n``,
      so there is neither an ``E[uv] - E[u]E[v]`` cancellation nor a second
      pass.
    """

    def __init__(self, student: Tensor, keep: Optional[Tensor], dtype: torch.dtype) -> None:
        n_cls = student.shape[1]
        self.keep = keep
        self.weight = None if keep is None else keep.to(dtype)
        self.row = student.new_empty((3, student.shape[0], 1, student.shape[2]), dtype=dtype)
        self.mean = student.new_zeros((2, n_cls), dtype=dtype)
        self.moment = student.new_zeros((3, n_cls), dtype=dtype)
        self.kept = 0

    def add(self, r: slice, c: slice, ab: Tensor, y: Tensor,
            scale: Optional[Tensor] = None) -> None:
        """Add one chunk ``[r, :, c]``.

        Args:
            ab: ``(2, b, C, l)``, the chunk's rows centred on their own means
                (``[a, b]``); its buffer is reused.
            y: ``(2, b, C, l)``, the scores, times ``scale`` when given.
            scale: ``(2, b, 1, l)`` per-row factor of ``y`` (the softmax's
                ``1 / Z``, folded in here rather than materialised).
        """
        torch.sum(ab[0] * ab[1], 1, keepdim=True, out=self.row[0, r, :, c])
        torch.sum(ab.mul_(ab), 2, keepdim=True, out=self.row[1:, r, :, c])
        if self.weight is None:
            w, n = None, y.shape[1] * y.shape[3]
        else:
            # Kept rows of the chunk, counted on the device (no sync); there
            # may be none: every sum below is then 0 and so is every update.
            w = self.weight[r, c].unsqueeze(0)
            n = self.keep[r, c].sum().to(torch.float64)
        if scale is None:
            chunk_mean = _col_sum(y, w).div_(_at_least_one(n))
            # [u, v] = y - (the chunk's mean of y), in ab's buffer.
            uv = torch.sub(y, chunk_mean.unsqueeze(1).unsqueeze(3), out=ab)
        else:
            col_w = scale.squeeze(2) if w is None else scale.squeeze(2) * w
            chunk_mean = _col_sum(y, col_w).div_(_at_least_one(n))
            uv = torch.addcmul(chunk_mean.neg().unsqueeze(1).unsqueeze(3), y, scale, out=ab)
        chunk_moment = torch.cat((_col_sum((uv[0] * uv[1]).unsqueeze(0), w),
                                  _col_sum(uv.mul_(uv), w)))
        # Chan et al.'s exact merge of (kept, mean, moment) with the chunk's.
        delta = chunk_mean.sub_(self.mean)
        total = self.kept + n
        self.moment += chunk_moment
        self.moment[0] += delta[0] * delta[1] * (self.kept * n / _at_least_one(total))
        self.moment[1:] += delta * delta * (self.kept * n / _at_least_one(total))
        self.mean += delta * (n / _at_least_one(total))
        self.kept = total

    def terms(self, row_weight: Tensor, inter_norm: Count) -> Tuple[Tensor, Tensor]:
        """``(inter, intra)``; then :attr:`dot`, :attr:`norms` (per row) and
        :attr:`col_dot`, :attr:`col_norms` (per class) are set for backward."""
        self.dot, self.norms = self.row[0], self.row[1:].sqrt()
        inter = ((1 - self.dot / (self.norms[0] * self.norms[1] + EPS)).squeeze(1) *
                 row_weight).sum()
        inter = inter / _like(inter_norm, inter)
        self.col_dot, self.col_norms = self.moment[0], self.moment[1:].sqrt()
        intra = (1 - self.col_dot / (self.col_norms[0] * self.col_norms[1] + EPS)).mean()
        return inter, _zero_unless_kept(intra, self.kept)

    def save(self, ctx, row_weight: Tensor, inter_norm: Count, tau: float,
             *extra: Optional[Tensor]) -> None:
        """Save what :func:`_grad_coefs` needs (and ``extra``) on ``ctx``."""
        ctx.save_for_backward(row_weight, self.dot, self.norms, self.mean, self.col_dot,
                              self.col_norms, *extra)
        ctx.inter_norm, ctx.tau, ctx.kept = inter_norm, tau, self.kept


def _grad_coefs(ctx, grad_inter: Tensor, grad_intra: Tensor, scale: float):
    """Cosine coefficients ``(alpha, beta)`` per row and ``(gamma, delta)``
    per class (see :func:`_cos_coefs`) of ``dLoss/dy_s / scale``, from what
    :meth:`_PearsonStats.save` saved; returns them, the class means and the
    ``extra`` tensors."""
    row_weight, dot, norms, mean, col_dot, col_norms, *extra = ctx.saved_tensors
    n_cls = mean.shape[1]
    # The loss *decreases* with correlation: d(1 - r) = -dr.
    coef = _like(-1 / (ctx.inter_norm * scale), grad_inter)
    row_coef = (grad_inter * coef) * row_weight.unsqueeze(1)
    alpha, beta = _cos_coefs(row_coef, dot, norms[0], norms[1])
    col_coef = _zero_unless_kept(grad_intra * (-1 / (n_cls * scale)), ctx.kept)
    gamma, delta = _cos_coefs(col_coef, col_dot, col_norms[0], col_norms[1])
    return alpha, beta, gamma, delta, mean, extra


class _DISTTerms(torch.autograd.Function):
    """(inter, intra) Pearson distances with a closed-form backward.

    One pass over the rows, chunk by chunk, the student and the teacher
    stacked on a leading dim so one op serves both. With ``x = z / tau``,
    ``e = exp(x - max_c x)``, ``Z = sum_c e`` and ``y = e / Z`` (the softmax,
    never stored: ``1 / Z`` is folded into the centring), it accumulates
    (:class:`_PearsonStats`) the per-row statistics of ``a = y_s - 1/C``,
    ``b = y_t - 1/C`` (a softmax row's mean is exactly ``1/C``) and the
    per-class ones over kept rows.

    Backward recomputes ``y = exp(x - lse)`` per chunk. With ``G = dLoss/dy_s``
    it returns ``(y_s * (G - <G, y_s>)) / tau`` (softmax backward), where for a
    kept row

        G = kappa_c + (alpha_i + gamma_c) y_t - (beta_i + delta_c) y_s

    (``alpha``, ``beta`` from the row's cosine, ``gamma``, ``delta`` from the
    class's, ``kappa = delta mu_s - gamma mu_t``; terms constant along a row
    are dropped, the softmax backward removes them). Ignored rows get
    ``lse = +inf``, so their recomputed ``y_s`` and gradient are exactly 0.
    Only the logits and per-row / per-class statistics are saved.

    ``standardize``: ``x`` is the row's z-score over ``tau``
    (:func:`~mmkd.losses.utils.stacked_standardized`) and the gradient is
    carried through it (:func:`~mmkd.losses.utils.zscore_backward_`).
    """

    @staticmethod
    def forward(ctx, student: Tensor, teacher: Tensor, keep: Optional[Tensor],
                row_weight: Tensor, inter_norm: Count, tau: float,
                standardize: bool = False) -> Tuple[Tensor, Tensor]:
        dtype = compute_dtype(student)
        zscore = zscore_stats(student, dtype) if standardize else None
        # Per row, [student, teacher]: max of x and Z.
        shape = (2, student.shape[0], 1, student.shape[2])
        peak, z = student.new_empty(shape, dtype=dtype), student.new_empty(shape, dtype=dtype)
        stats = _PearsonStats(student, keep, dtype)
        minus_inv_c = student.new_full((), -1.0 / student.shape[1], dtype=dtype)
        for r, c in chunks(student):
            e = shifted_scores(student[r, :, c], teacher[r, :, c], tau, dtype, peak[:, r, :, c],
                               None if zscore is None else zscore[:, :, r, :, c]).exp_()
            inv_z = torch.sum(e, 2, keepdim=True, out=z[:, r, :, c]).reciprocal()
            # [a, b] = e / Z - 1/C, in one pass.
            stats.add(r, c, torch.addcmul(minus_inv_c, e, inv_z), e, inv_z)
        inter, intra = stats.terms(row_weight, inter_norm)
        neg_lse = z.log_().add_(peak).neg_()
        if keep is not None:  # exp(x - inf) = 0: ignored rows' y_s in backward
            neg_lse[0].masked_fill_(~keep.unsqueeze(1), float('-inf'))
        stats.save(ctx, row_weight, inter_norm, tau, student, teacher, neg_lse, zscore)
        return inter, intra

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_inter: Tensor, grad_intra: Tensor):
        tau = ctx.tau
        # d(z / tau)/dz = 1 / tau, folded into the coefficients.
        alpha, beta, gamma, delta, mean, (student, teacher, neg_lse, zscore) = _grad_coefs(
            ctx, grad_inter, grad_intra, tau)
        dtype = compute_dtype(student)
        kappa = (delta * mean[0] - gamma * mean[1]).view(1, -1, 1)
        gamma, neg_delta, neg_beta = gamma.view(1, -1, 1), delta.neg().view(1, -1, 1), beta.neg_()
        grad = torch.empty_like(student)
        direct = grad.dtype == dtype  # else compute in a buffer and cast
        for r, c in chunks(student):
            zs = (None, None) if zscore is None else zscore[:, :, r, :, c].unbind(1)
            # y = exp(x - lse), as -lse + (1 / tau) * z: one pass (unstandardized).
            ys = scores_plus(neg_lse[0, r, :, c], student[r, :, c], tau, zs[0]).exp_()
            yt = scores_plus(neg_lse[1, r, :, c], teacher[r, :, c], tau, zs[1]).exp_()
            g = torch.addcmul(kappa, yt, gamma, out=grad[r, :, c] if direct else None)
            g.addcmul_(yt, alpha[r, :, c]).addcmul_(ys, neg_delta).addcmul_(ys, neg_beta[r, :, c])
            g.mul_(ys)  # softmax backward: y_s * G - y_s * <G, y_s>
            g.addcmul_(ys, g.sum(1, keepdim=True), value=-1)
            if zscore is not None:
                zscore_backward_(g, student[r, :, c], zs[0])
            if not direct:
                grad[r, :, c] = g
        return grad, None, None, None, None, None, None


class _SigmoidDISTTerms(torch.autograd.Function):
    """(inter, intra) on ``y = sigmoid(z / tau)``, with a closed-form backward.

    Chunk by chunk as :class:`_DISTTerms`; a chunk always holds whole rows
    (all C classes), so each row is centred on its exact mean ``m`` there:
    ``a = y_s - m_s``, ``b = y_t - m_t``. Backward, with ``G = dLoss/dy_s``
    on a kept row ``i`` and class ``c``:

        G = alpha_i (y_t - m_t,i) - beta_i (y_s - m_s,i)
            + gamma_c (y_t - mu_t,c) - delta_c (y_s - mu_s,c)

    (the derivative of a cosine of centred vectors is already centred, so
    the centring's own derivative drops out), and ``dLoss/dz_s =
    G * y_s (1 - y_s) / tau``; ignored rows get 0. Nothing is dropped here as
    in the softmax case: the sigmoid's Jacobian is diagonal.
    """

    @staticmethod
    def forward(ctx, student: Tensor, teacher: Tensor, keep: Optional[Tensor],
                row_weight: Tensor, inter_norm: Count, tau: float) -> Tuple[Tensor, Tensor]:
        dtype = compute_dtype(student)
        row_mean = student.new_empty((2, student.shape[0], 1, student.shape[2]), dtype=dtype)
        stats = _PearsonStats(student, keep, dtype)
        for r, c in chunks(student):
            y = stacked(student[r, :, c], teacher[r, :, c], tau, dtype).sigmoid_()
            stats.add(r, c, y - torch.mean(y, 2, keepdim=True, out=row_mean[:, r, :, c]), y)
        inter, intra = stats.terms(row_weight, inter_norm)
        stats.save(ctx, row_weight, inter_norm, tau, student, teacher, row_mean, keep)
        return inter, intra

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_inter: Tensor, grad_intra: Tensor):
        tau = ctx.tau
        alpha, beta, gamma, delta, mean, (student, teacher, row_mean, keep) = _grad_coefs(
            ctx, grad_inter, grad_intra, 1.0)
        dtype = compute_dtype(student)
        # G = (alpha + gamma) y_t - (beta + delta) y_s + shift, with
        # shift = beta m_s - alpha m_t + delta mu_s - gamma mu_t.
        col_shift = (delta * mean[0] - gamma * mean[1]).view(1, -1, 1)
        row_shift = beta * row_mean[0] - alpha * row_mean[1]
        gamma, delta = gamma.view(1, -1, 1), delta.view(1, -1, 1)
        grad = torch.empty_like(student)
        for r, c in chunks(student):
            ys = torch.sigmoid(student[r, :, c].to(dtype) / tau)
            yt = torch.sigmoid(teacher[r, :, c].to(dtype) / tau)
            g = (alpha[r, :, c] + gamma) * yt - (beta[r, :, c] + delta) * ys
            g += row_shift[r, :, c] + col_shift
            g *= ys * (1 - ys) / tau  # sigmoid backward
            if keep is not None:
                g *= keep[r, c].unsqueeze(1)
            grad[r, :, c] = g
        return grad, None, None, None, None, None


def dist_terms(layout: RowLayout, tau: float, weight: Optional[Tensor] = None,
               avg_factor: Optional[float] = None, use_sigmoid: bool = False,
               logit_standardize: bool = False) -> Tuple[Tensor, Tensor]:
    """``(inter, intra)`` Pearson distances of a :func:`to_rows` layout
    (on per-class sigmoids when ``use_sigmoid``; on z-scored rows when
    ``logit_standardize``, softmax only).

    ``weight`` (one per row) multiplies each row's inter-class distance;
    ``avg_factor`` replaces the number of kept rows as inter's divisor.
    """
    student = layout.student
    check_standardizable(student.shape[1], check_standardize(logit_standardize, use_sigmoid))
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
    if avg_factor is None:
        inter_norm = kept_rows(layout, torch.float64)
        inter_norm = inter_norm if isinstance(inter_norm, Tensor) else float(inter_norm)
    else:  # mmdet passes it as a tensor at times: no float() of it here
        inter_norm = (avg_factor.detach().to(torch.float64) if isinstance(avg_factor, Tensor)
                      else float(avg_factor))
    kernel = _SigmoidDISTTerms if use_sigmoid else _DISTTerms
    args = (student, layout.teacher, layout.keep, row_weight, inter_norm, tau)
    with full_precision(student):
        return kernel.apply(*args, True) if logit_standardize else kernel.apply(*args)


def dist_loss_parts(student_logits: Tensor,
                    teacher_logits: Tensor,
                    target: Optional[Tensor] = None,
                    beta: float = 1.0,
                    gamma: float = 1.0,
                    tau: float = 1.0,
                    weight: Optional[Tensor] = None,
                    avg_factor: Optional[float] = None,
                    ignore_index: Optional[int] = 255,
                    use_sigmoid: bool = False,
                    check_target: bool = True,
                    logit_standardize: bool = False) -> Dict[str, Tensor]:
    """``dict(loss=tau^2 * (beta*inter + gamma*intra), inter=..., intra=...)``.
    ``check_target``: check that kept targets lie in ``[0, C)`` (one
    host-device sync); ``logit_standardize``: z-score the rows first."""
    tau = check_tau(tau)
    layout = to_rows(student_logits, teacher_logits, target, ignore_index, check_target)
    inter, intra = dist_terms(layout, tau, weight, avg_factor, use_sigmoid, logit_standardize)
    return dict(loss=tau * tau * (beta * inter + gamma * intra), inter=inter, intra=intra)


def dist_loss(student_logits: Tensor, teacher_logits: Tensor,
              target: Optional[Tensor] = None, **kwargs) -> Tensor:
    """Functional DIST; see :class:`DISTLoss`."""
    return dist_loss_parts(student_logits, teacher_logits, target, **kwargs)['loss']


@MODELS.register_module()
class DISTLoss(LogitLoss):
    """DIST loss: inter- plus intra-class Pearson relations.

    Args:
        beta: weight of the inter-class (per row) relation.
        gamma: weight of the intra-class (per class, across rows) relation.
        tau: softmax temperature; the loss is multiplied by ``tau^2``.
        loss_weight: factor on the loss.
        ignore_index: rows with this target are left out of both terms.
        use_sigmoid: score classes with ``sigmoid(z / tau)`` instead of a
            softmax (DIST's switch; for sigmoid-scored detection heads).
        logit_standardize: z-score each row of both models' logits before
            the softmax (Sun et al., CVPR 2024); ``tau`` is then the base
            temperature. Not with ``use_sigmoid``.

    DIST couples all rows of a batch, so its only reduction is the paper's
    (means over rows and classes); ``reduction_override`` accepts ``'mean'``.
    """

    per_row = False

    def __init__(self,
                 beta: float = 1.0,
                 gamma: float = 1.0,
                 tau: float = 1.0,
                 loss_weight: float = 1.0,
                 ignore_index: Optional[int] = 255,
                 use_sigmoid: bool = False,
                 logit_standardize: bool = False) -> None:
        check_non_negative(beta=beta, gamma=gamma, loss_weight=loss_weight)
        check_standardize(logit_standardize, use_sigmoid)
        super().__init__(tau, loss_weight, 'mean', ignore_index, logit_standardize)
        self.use_sigmoid = bool(use_sigmoid)
        self.beta = beta
        self.gamma = gamma

    def loss_parts(self, student_logits: Tensor, teacher_logits: Tensor,
                   target: Optional[Tensor], weight: Optional[Tensor],
                   avg_factor: Optional[float], reduction: str,
                   check_target: bool) -> Dict[str, Tensor]:
        """``tau^2 * (beta * inter + gamma * intra)`` plus the raw ``inter``
        and ``intra`` distances."""
        return dist_loss_parts(student_logits, teacher_logits, target, self.beta, self.gamma,
                               self.tau, weight, avg_factor, self.ignore_index, self.use_sigmoid,
                               check_target, self.logit_standardize)

    def extra_repr(self) -> str:
        return (f'beta={self.beta}, gamma={self.gamma}, tau={self.tau}, '
                f'loss_weight={self.loss_weight}, use_sigmoid={self.use_sigmoid}, '
                f'logit_standardize={self.logit_standardize}')
