"""ReviewKD's attention-based fusion (ABF) of student features.

Levels are given shallow to deep (FPN P2..P6, or backbone stages) and fused
deepest first: each ABF maps its student level to ``mid_channels`` (1x1 conv +
BN); every level but the deepest mixes in the fused map of the level below it
(resized by nearest neighbour where its size differs: a dilated backbone's
last stages share one resolution, and a pooled feature is a 1x1 map),
with two sigmoid attention maps from a 1x1 conv over both; a 3x3 conv + BN
then maps the result to the teacher's channels. The fused map, not the output,
is passed on. ABF modules train with the student but are not part of it.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmkd.registry import MODELS


class ABF(nn.Module):
    """One attention-based fusion step."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int,
                 fuse: bool) -> None:
        super().__init__()
        self.reduce = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, 1, bias=False), nn.BatchNorm2d(mid_channels))
        self.project = nn.Sequential(
            nn.Conv2d(mid_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels))
        self.attention = nn.Sequential(nn.Conv2d(2 * mid_channels, 2, 1), nn.Sigmoid()) if fuse else None

    def init_weights(self) -> None:
        for conv in (self.reduce[0], self.project[0]):
            nn.init.kaiming_uniform_(conv.weight, a=1)

    def forward(self, x: Tensor, deeper: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Returns ``(output in teacher channels, fused map in mid channels)``."""
        x = self.reduce(x)
        if self.attention is not None:
            if deeper is None:
                raise ValueError('a fusing ABF needs the fused map of the deeper level')
            if deeper.shape[-2:] != x.shape[-2:]:
                deeper = F.interpolate(deeper, size=x.shape[-2:], mode='nearest')
            att = self.attention(torch.cat([x, deeper], dim=1))
            x = x * att[:, 0:1] + deeper * att[:, 1:2]
        return self.project(x), x


@MODELS.register_module()
class ABFConnector(BaseModule):
    """ABF modules over a list of student feature levels (shallow to deep).

    Args:
        in_channels: student channels per level (e.g. ``[256] * 5`` for FPN).
        out_channels: teacher channels per level.
        mid_channels: channels of the fused maps.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int],
                 mid_channels: int = 256, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        if len(in_channels) != len(out_channels):
            raise ValueError(f'ABFConnector: {len(in_channels)} student levels but '
                             f'{len(out_channels)} teacher levels.')
        deepest = len(in_channels) - 1
        self.abfs = nn.ModuleList(
            ABF(cin, mid_channels, cout, fuse=level != deepest)
            for level, (cin, cout) in enumerate(zip(in_channels, out_channels)))

    def init_weights(self) -> None:
        super().init_weights()
        for abf in self.abfs:
            abf.init_weights()

    def forward(self, feats: Sequence[Tensor]) -> List[Tensor]:
        if len(feats) != len(self.abfs):
            raise ValueError(f'ABFConnector built for {len(self.abfs)} levels got {len(feats)}.')
        outs: List[Optional[Tensor]] = [None] * len(feats)
        fused = None
        for level in reversed(range(len(feats))):
            outs[level], fused = self.abfs[level](feats[level], fused)
        return outs
