"""The loss-module interface shared by mmkd's logit losses (KD, DKD, DIST).

:class:`LogitLoss` holds the settings every logit loss has (temperature,
loss weight, reduction, ignored label), checks them once at construction, and
writes ``forward`` / ``forward_parts`` once: a subclass only says how to
compute its unweighted terms (:meth:`LogitLoss.loss_parts`).
"""
from typing import Dict, Optional

from torch import Tensor, nn

REDUCTIONS = ('none', 'mean', 'sum')


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

    A loss whose rows are coupled (DIST) sets :attr:`per_row` to ``False``:
    its only reduction is ``'mean'``.
    """

    #: Whether the loss has a per-row form (``'none'`` / ``'sum'`` reductions).
    per_row = True

    def __init__(self,
                 tau: float,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 ignore_index: Optional[int] = 255) -> None:
        super().__init__()
        self.tau = check_tau(tau)
        check_non_negative(loss_weight=loss_weight)
        self.loss_weight = loss_weight
        self.reduction = check_reduction(reduction)
        self.ignore_index = ignore_index

    def loss_parts(self, student_logits: Tensor, teacher_logits: Tensor,
                   target: Optional[Tensor], weight: Optional[Tensor],
                   avg_factor: Optional[float], reduction: str) -> Dict[str, Tensor]:
        """The unweighted ``dict(loss=..., **terms)``; see :meth:`forward`."""
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
        parts = self.loss_parts(student_logits, teacher_logits, target, weight, avg_factor,
                                reduction_override or self.reduction)
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
