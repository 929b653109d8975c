"""The loss-module interface shared by mmkd's logit losses (KD, DKD, DIST).

:class:`LogitLoss` holds the settings every logit loss has (temperature,
loss weight, reduction, ignored label), checks them once at construction, and
writes ``forward`` / ``forward_parts`` once: a subclass only says how to
compute its unweighted terms (:meth:`LogitLoss.loss_parts`).
"""
import os
from typing import Dict, Optional

from torch import Tensor, nn

REDUCTIONS = ('none', 'mean', 'sum')

#: Check target values on every call, not only a module's first one (each
#: check waits for the device once). ``MMKD_CHECK_TARGETS=1`` in the
#: environment sets it; read at call time (tests patch it).
CHECK_TARGETS_EVERY_CALL = os.environ.get('MMKD_CHECK_TARGETS', '0') not in ('', '0')


def check_tau(tau: float) -> float:
    """Return ``tau`` as a float.

    Raises:
        ValueError: if ``tau`` is not positive.
    """
    if not tau > 0:
        raise ValueError(f'tau (the softmax temperature) must be > 0, got {tau}.')
    return float(tau)


def check_non_negative(**values: float) -> None:
    """Raise ``ValueError`` naming the first of ``values`` that is negative."""
    for name, value in values.items():
        if value < 0:
            raise ValueError(f'{name} must be >= 0, got {value}.')


def check_reduction(reduction: str) -> str:
    """Return ``reduction`` if it is one of :data:`REDUCTIONS`, else raise
    ``ValueError``."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got '{reduction}'.")
    return reduction


def check_standardize(logit_standardize: bool, use_sigmoid: bool = False) -> bool:
    """Return ``logit_standardize`` as a bool.

    Raises:
        ValueError: if it is combined with ``use_sigmoid``: the z-score rests
            on the softmax's invariance to adding a constant to a row (only
            the row's scale, its "temperature", is changed), while
            independent per-class sigmoids change under such a shift, so
            z-scoring would alter the teacher's own probabilities.
    """
    if logit_standardize and use_sigmoid:
        raise ValueError(
            'logit_standardize=True is defined for softmax scores only: a per-row z-score '
            'shifts each row by its mean, which leaves a softmax unchanged but changes every '
            'per-class sigmoid probability (use_sigmoid=True), so it would change what the '
            'teacher predicts rather than only its temperature. Use one or the other.')
    return bool(logit_standardize)


def check_standardizable(num_classes: int, logit_standardize: bool) -> None:
    """Raise ``ValueError`` if rows of ``num_classes`` logits cannot be
    z-scored (a standard deviation with Bessel's correction needs 2)."""
    if logit_standardize and num_classes < 2:
        raise ValueError('logit_standardize=True needs at least 2 classes (a row\'s standard '
                         f'deviation), got {num_classes}.')


class LogitLoss(nn.Module):
    """mmdet's loss-module interface shared by KD, DKD and DIST.

    Subclasses implement :meth:`loss_parts`, returning the *unweighted*
    ``dict(loss=<loss>, **decomposed_terms)``. :meth:`forward_parts` scales
    its ``loss`` by ``loss_weight``; :meth:`forward` returns that weighted
    ``loss`` alone, so the module fits wherever an mmdet loss does.

    Args:
        tau: temperature of the scores (checked > 0).
        loss_weight: factor on the reduced loss (checked >= 0).
        reduction: default reduction, one of :data:`REDUCTIONS`.
        ignore_index: rows whose target equals it are left out; ``None``
            keeps every row.
        logit_standardize: z-score each row of both models' logits before
            the temperature (Sun et al., CVPR 2024; ``tau`` is then their
            "base temperature"): ``softmax((z - mean) / (std + 1e-7) / tau)``,
            mean and std (Bessel-corrected) over the row's classes. Softmax
            scores only (see :func:`check_standardize`).

    A loss whose rows are coupled (DIST) sets :attr:`per_row` to ``False``:
    its only reduction is ``'mean'``.

    No call waits for the device (no host-device sync) except the target
    check: whether every kept target lies in ``[0, C)`` can only be known on
    the host, so it runs on the module's first call with a target and then
    only when :data:`CHECK_TARGETS_EVERY_CALL` is set (``MMKD_CHECK_TARGETS=1``).
    A later out-of-range target is not reported clearly: KD and DIST use
    targets only to find ignored rows, so such a row simply counts; DKD's
    gather of it fails (an index error on the CPU, a device-side assert on
    CUDA).
    """

    #: Whether the loss has a per-row form (``'none'`` / ``'sum'`` reductions).
    per_row = True

    def __init__(self,
                 tau: float,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 ignore_index: Optional[int] = 255,
                 logit_standardize: bool = False) -> None:
        super().__init__()
        self.tau = check_tau(tau)
        check_non_negative(loss_weight=loss_weight)
        self.loss_weight = loss_weight
        self.reduction = check_reduction(reduction)
        self.ignore_index = ignore_index
        self.logit_standardize = check_standardize(logit_standardize)
        self.targets_checked = False

    def loss_parts(self, student_logits: Tensor, teacher_logits: Tensor,
                   target: Optional[Tensor], weight: Optional[Tensor],
                   avg_factor: Optional[float], reduction: str,
                   check_target: bool) -> Dict[str, Tensor]:
        """The unweighted ``dict(loss=..., **terms)``; see :meth:`forward`.
        ``check_target``: whether to check the target's values (one sync)."""
        raise NotImplementedError

    def forward_parts(self,
                      student_logits: Tensor,
                      teacher_logits: Tensor,
                      target: Optional[Tensor] = None,
                      weight: Optional[Tensor] = None,
                      avg_factor: Optional[float] = None,
                      reduction_override: Optional[str] = None) -> Dict[str, Tensor]:
        """Like :meth:`forward`, but returns ``dict(loss=<weighted loss>,
        **terms)``: the decomposed terms (DKD's ``tckd`` / ``nckd``, DIST's
        ``inter`` / ``intra``) stay unweighted, for logging."""
        if not self.per_row and reduction_override not in (None, 'mean'):
            raise ValueError(f'{type(self).__name__} correlates rows with each other and has '
                             f"no per-row form: reduction_override='{reduction_override}' "
                             "is not supported (use None or 'mean').")
        check = target is not None and (CHECK_TARGETS_EVERY_CALL or not self.targets_checked)
        parts = self.loss_parts(student_logits, teacher_logits, target, weight, avg_factor,
                                reduction_override or self.reduction, check)
        # Only once the check has passed: a module keeps raising on bad
        # targets until it has seen good ones.
        self.targets_checked = self.targets_checked or check
        parts['loss'] = self.loss_weight * parts['loss']
        return parts

    def forward(self,
                student_logits: Tensor,
                teacher_logits: Tensor,
                target: Optional[Tensor] = None,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """The weighted, reduced loss.

        Args:
            student_logits: ``(N, C)`` or ``(N, C, H, W)`` logits.
            teacher_logits: the teacher's, same shape (no gradient flows).
            target: ``(N,)`` or ``(N, H, W)`` class indices (required by DKD;
                otherwise only used to leave out ``ignore_index`` rows).
            weight: one factor per row.
            avg_factor: divisor of ``'mean'`` instead of the kept-row count.
            reduction_override: overrides ``reduction`` for this call.
        """
        return self.forward_parts(student_logits, teacher_logits, target, weight, avg_factor,
                                  reduction_override)['loss']
