"""Feature mimic on FPN outputs (the "+ mimic" rows of DIST's COCO table).

Per level ``l`` with student features ``s_l`` and teacher features ``t_l``
(same spatial size: both necks have the same strides),

    mimic = loss_weight * sum_l mean((A_l(s_l) - t_l)^2)

where ``A_l`` is a trainable 1x1 convolution when the channels differ (an
identity otherwise). The adapters belong to the loss module, which the
distiller holds beside the student: they train with it, are saved in the
distiller's checkpoints, and are not part of the exported student.
"""
from typing import List, Sequence, Union

import torch.nn.functional as F
from torch import Tensor, nn

from mmkd.registry import MODELS


def _per_level(channels: Union[int, Sequence[int]], num_levels: int, name: str) -> List[int]:
    if isinstance(channels, int):
        return [channels] * num_levels
    channels = list(channels)
    if len(channels) != num_levels:
        raise ValueError(f'{name} lists {len(channels)} levels but num_levels={num_levels}.')
    return channels


@MODELS.register_module()
class FPNMimicLoss(nn.Module):
    """MSE between (adapted) student and teacher neck outputs, summed over levels.

    Args:
        student_channels: channels of the student's neck outputs (one int for
            every level, or one per level).
        teacher_channels: the same for the teacher.
        num_levels: number of neck outputs (FPN P2-P6: 5; RetinaNet's P3-P7:
            5). Taken from the lists when channels are given per level.
        loss_weight: factor on the summed loss.
    """

    def __init__(self,
                 student_channels: Union[int, Sequence[int]] = 256,
                 teacher_channels: Union[int, Sequence[int]] = 256,
                 num_levels: int = 5,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        for arg in (student_channels, teacher_channels):
            if not isinstance(arg, int):
                num_levels = len(arg)
        s_ch = _per_level(student_channels, num_levels, 'student_channels')
        t_ch = _per_level(teacher_channels, num_levels, 'teacher_channels')
        if loss_weight < 0:
            raise ValueError(f'loss_weight must be >= 0, got {loss_weight}.')
        self.loss_weight = loss_weight
        self.student_channels, self.teacher_channels = s_ch, t_ch
        self.adapters = nn.ModuleList(
            nn.Conv2d(s, t, 1) if s != t else nn.Identity() for s, t in zip(s_ch, t_ch))

    def forward(self, student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor]) -> Tensor:
        """Args: per-level ``(N, C_s, H_l, W_l)`` and ``(N, C_t, H_l, W_l)``."""
        if not (len(student_feats) == len(teacher_feats) == len(self.adapters)):
            raise ValueError(
                f'FPNMimicLoss is set up for {len(self.adapters)} levels but the student has '
                f'{len(student_feats)} neck outputs and the teacher {len(teacher_feats)}: set '
                'num_levels (or the channel lists) to the necks\' number of outputs.')
        total = student_feats[0].new_zeros(())
        for level, (s, t, adapter) in enumerate(zip(student_feats, teacher_feats, self.adapters)):
            if s.shape[1] != self.student_channels[level] or t.shape[1] != self.teacher_channels[level]:
                raise ValueError(
                    f'FPNMimicLoss level {level}: student has {s.shape[1]} channels and teacher '
                    f'{t.shape[1]}, but the loss was set up for {self.student_channels[level]} -> '
                    f'{self.teacher_channels[level]}; set student_channels/teacher_channels to '
                    'the necks\' out_channels.')
            if s.shape[-2:] != t.shape[-2:]:
                raise ValueError(
                    f'FPNMimicLoss level {level}: student map {tuple(s.shape[-2:])} and teacher '
                    f'map {tuple(t.shape[-2:])} differ in size; both necks need the same strides.')
            total = total + F.mse_loss(adapter(s), t.detach())
        return self.loss_weight * total

    def extra_repr(self) -> str:
        return f'loss_weight={self.loss_weight}'
