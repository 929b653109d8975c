"""A ``Conv2d`` that keeps PyTorch's default initialisation inside mmcv's
``ConvModule`` (which otherwise re-initialises its conv with He fan_out)."""
from torch import nn

from mmkd.registry import MODELS


@MODELS.register_module()
class DefaultInitConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose ``init_weights`` is PyTorch's ``reset_parameters``.

    Use as ``conv_cfg=dict(type='mmkd.DefaultInitConv2d')`` in a backbone or
    head built from ``ConvModule`` / ``build_conv_layer``. mmcv's
    ``ConvModule.init_weights`` leaves a conv that has its own ``init_weights``
    alone, so the layer keeps the init it was built with, PyTorch's default
    (Kaiming-uniform with ``a=sqrt(5)``, fan_in); called directly,
    ``init_weights`` restores that default. An ``init_cfg`` of an enclosing
    module that names ``Conv2d`` still applies (give the backbone an
    equivalent one, as the segmentation demo does).

    Why it exists: the embedded segmentation demo trains narrow DeepLabV3
    models from scratch for a few hundred AdamW steps. With mmcv's He
    (fan_out) init in the ASPP / FCN heads the model did not even fit a single
    batch in 150 steps (all pixels background); with this init it did
    (docs/results.md).
    """

    def init_weights(self) -> None:
        self.reset_parameters()
