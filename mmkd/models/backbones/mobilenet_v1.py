"""MobileNetV1 (Howard et al., 2017), which mmpretrain lacks (it has V2, V3).

The standard 1.0-width, 224x224 network: a 3x3 stride-2 convolution to 32
channels, then 13 depthwise-separable blocks (3x3 depthwise conv + BN + ReLU,
1x1 pointwise conv + BN + ReLU). The blocks are grouped into five stages at
strides 2, 4, 8, 16 and 32, so ``out_indices`` reads like mmpretrain's ResNet
(stages 1-4 are where ResNet's four stages are):

    stage  blocks (out channels / stride)        output at 224x224
    0      64/1                                  64 x 112 x 112
    1      128/2, 128/1                          128 x 56 x 56
    2      256/2, 256/1                          256 x 28 x 28
    3      512/2, 512/1 x 5                      512 x 14 x 14
    4      1024/2, 1024/1                        1024 x 7 x 7

(The paper's table writes stride 2 for the last block too; its output is 7x7
all the same, so it is stride 1, as in every public implementation.) With
``GlobalAveragePooling`` and a 1000-way ``LinearClsHead`` the model has
4,231,976 parameters (3,206,976 in the backbone).
"""
from typing import Optional, Sequence, Tuple

from mmcv.cnn import ConvModule
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmkd.registry import MODELS


def depthwise_separable(in_channels: int, out_channels: int, stride: int, norm_cfg: dict,
                        act_cfg: dict) -> nn.Sequential:
    """3x3 depthwise conv + norm + act, then 1x1 pointwise conv + norm + act."""
    return nn.Sequential(
        ConvModule(in_channels, in_channels, 3, stride=stride, padding=1, groups=in_channels,
                   norm_cfg=norm_cfg, act_cfg=act_cfg),
        ConvModule(in_channels, out_channels, 1, norm_cfg=norm_cfg, act_cfg=act_cfg))


@MODELS.register_module()
class MobileNetV1(BaseBackbone):
    """MobileNetV1 backbone, ``type='mmkd.MobileNetV1'`` in mmpretrain configs.

    Args:
        out_indices: stages (0-4, see the module docstring) whose outputs are
            returned, as a tuple in this order.
        frozen_stages: stages up to this one (and the stem) are frozen;
            -1 freezes nothing.
        norm_cfg: normalisation after every convolution.
        act_cfg: activation after every normalisation.
        norm_eval: keep the norm layers in eval mode while training.
    """

    #: per stage: (out channels, stride) of each block.
    arch = (((64, 1), ), ((128, 2), (128, 1)), ((256, 2), (256, 1)),
            ((512, 2), ) + ((512, 1), ) * 5, ((1024, 2), (1024, 1)))
    stem_channels = 32

    def __init__(self,
                 out_indices: Sequence[int] = (4, ),
                 frozen_stages: int = -1,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'),
                 norm_eval: bool = False,
                 init_cfg: Optional[list] = [
                     dict(type='Kaiming', layer=['Conv2d']),
                     dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
                 ]) -> None:
        super().__init__(init_cfg)
        num_stages = len(self.arch)
        out_indices = tuple(out_indices)
        if not out_indices or any(i not in range(num_stages) for i in out_indices):
            raise ValueError(f'MobileNetV1: out_indices {out_indices} must be stages in '
                             f'0..{num_stages - 1}.')
        if frozen_stages not in range(-1, num_stages):
            raise ValueError(f'MobileNetV1: frozen_stages={frozen_stages} must be in '
                             f'-1..{num_stages - 1}.')
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.stem = ConvModule(3, self.stem_channels, 3, stride=2, padding=1,
                               norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.stages = nn.ModuleList()
        in_channels = self.stem_channels
        for blocks in self.arch:
            stage = []
            for out_channels, stride in blocks:
                stage.append(depthwise_separable(in_channels, out_channels, stride, norm_cfg,
                                                 act_cfg))
                in_channels = out_channels
            self.stages.append(nn.Sequential(*stage))
        #: output channels of each stage.
        self.stage_channels = tuple(blocks[-1][0] for blocks in self.arch)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        x = self.stem(x)
        outs = []
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        for module in [self.stem, *self.stages[:self.frozen_stages + 1]]:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'MobileNetV1':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self
