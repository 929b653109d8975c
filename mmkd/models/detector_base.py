"""What the two detector distillers (RoI and dense) share: the neck.

Both may distil the necks' (FPN) outputs beside the logits: ReviewKD
(``reviewkd``, the base's connector) and an FPN feature mimic (``mimic``,
``mmkd.FPNMimicLoss``). This parent builds the mimic with the base's other
parts (under its forked RNG), checks that both detectors have a neck, and
computes both neck terms.
"""
from typing import Dict, Optional, Sequence, Union

from torch import Tensor, nn

from mmkd.registry import MODELS
from .base_distiller import BaseDistiller


class NeckDistiller(BaseDistiller):
    """A detector distiller with optional ReviewKD and FPN mimic on the necks.

    Args:
        mimic: optional ``dict(type='mmkd.FPNMimicLoss', ...)``: MSE between
            the necks' outputs (adapters when channels differ), added as
            ``loss_mimic``.
        Others: as :class:`~mmkd.models.BaseDistiller`.
    """

    scope = 'mmdet'

    def __init__(self,
                 student: Union[dict, str, nn.Module],
                 teacher: Union[dict, str, nn.Module],
                 teacher_ckpt: Optional[str] = None,
                 distill_losses: Optional[dict] = None,
                 reviewkd: Optional[dict] = None,
                 mimic: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        # Read by build_extra during the base's __init__ (a plain attribute
        # may be set before nn.Module's).
        self._mimic_cfg = mimic
        super().__init__(student, teacher, teacher_ckpt, distill_losses, reviewkd, init_cfg,
                         **kwargs)

    def build_extra(self) -> None:
        both = self.student.with_neck and self.teacher.with_neck
        if self.connector is not None and not both:
            raise TypeError('ReviewKD distils neck (FPN) outputs; both detectors need a neck.')
        mimic = self._mimic_cfg
        self.mimic = MODELS.build(mimic) if isinstance(mimic, dict) else mimic
        if self.mimic is not None and not both:
            raise TypeError('the FPN mimic loss compares neck (FPN) outputs; both detectors need '
                            'a neck.')

    def neck_terms(self, student_feats: Sequence[Tensor],
                   teacher_feats: Sequence[Tensor]) -> Dict[str, Tensor]:
        """``loss_reviewkd`` and ``loss_mimic``, where configured."""
        out = self.review(student_feats, teacher_feats)
        if self.mimic is not None:
            out['loss_mimic'] = self.mimic(student_feats, teacher_feats)
        return out
