"""ReviewKD's hierarchical context loss (Chen et al., CVPR 2021).

Per level: ``MSE(f_s, f_t)`` on the full map with weight 1, plus the MSE after
adaptive average pooling to 4x4, 2x2 and 1x1, whose weights halve at each size
that is used (0.5, 0.25, 0.125 when the map is larger than 4); a size not
smaller than the map's height is skipped. Each level's sum is divided by its
total weight; levels are summed.

Under ``torch.use_deterministic_algorithms(True)`` (mmengine's
``randomness=dict(deterministic=True)``) the pooling runs as two matrix
products with the pooling windows' weights, because CUDA has no
deterministic backward for ``adaptive_avg_pool2d``; the windows are
PyTorch's (``floor(i * H / s)`` to ``ceil((i + 1) * H / s)``), so both paths
compute the same means.
"""
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmkd.registry import MODELS
from .utils import check_non_negative


def pooling_matrix(length: int, size: int, like: Tensor) -> Tensor:
    """``(size, length)`` weights of adaptive average pooling along one axis."""
    weights = like.new_zeros(size, length)
    for i in range(size):
        start, end = (i * length) // size, -((-(i + 1) * length) // size)
        weights[i, start:end] = 1.0 / (end - start)
    return weights


def adaptive_avg_pool(x: Tensor, size: int) -> Tensor:
    """``F.adaptive_avg_pool2d(x, size)``, or the same means as matrix
    products when deterministic algorithms are requested."""
    if not torch.are_deterministic_algorithms_enabled():
        return F.adaptive_avg_pool2d(x, size)
    rows = pooling_matrix(x.shape[-2], size, x)
    cols = pooling_matrix(x.shape[-1], size, x)
    return rows @ x @ cols.t()


def hcl_level(student: Tensor, teacher: Tensor, pool_sizes: Sequence[int] = (4, 2, 1)) -> Tensor:
    """HCL of one level, (N, C, H, W) each."""
    loss = F.mse_loss(student, teacher)
    weight, total = 1.0, 1.0
    for size in pool_sizes:
        if size >= student.shape[2]:
            continue
        weight /= 2
        loss = loss + weight * F.mse_loss(
            adaptive_avg_pool(student, size), adaptive_avg_pool(teacher, size))
        total += weight
    return loss / total


@MODELS.register_module()
class HCLLoss(nn.Module):
    """Hierarchical context loss summed over feature levels.

    Args:
        loss_weight: factor on the sum (1.2 for R101->R18, 2.0 for R50->MV2
            Faster R-CNN in the paper).
        pool_sizes: pooled sizes after the full-resolution term.
    """

    def __init__(self, loss_weight: float = 1.0, pool_sizes: Sequence[int] = (4, 2, 1)) -> None:
        super().__init__()
        check_non_negative(loss_weight=loss_weight)
        self.loss_weight = loss_weight
        self.pool_sizes = tuple(pool_sizes)

    def forward(self, student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor]) -> Tensor:
        if len(student_feats) != len(teacher_feats):
            raise ValueError(f'HCLLoss got {len(student_feats)} student levels and '
                             f'{len(teacher_feats)} teacher levels.')
        total = 0
        for level, (fs, ft) in enumerate(zip(student_feats, teacher_feats)):
            if fs.shape != ft.shape:
                raise ValueError(f'level {level}: student feature {tuple(fs.shape)} vs teacher '
                                 f'{tuple(ft.shape)}; the ABF connector must output the '
                                 "teacher's channels at the teacher's resolution.")
            total = total + hcl_level(fs, ft.detach(), self.pool_sizes)
        return self.loss_weight * total
