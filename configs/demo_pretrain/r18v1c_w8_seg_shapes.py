# The segmentation demo student's backbone (mmseg's ResNetV1c-18 at 1/8 width,
# 8 stem and base channels) pretrained as a 12-class shapes classifier. Here
# it runs undilated (strides 1, 2, 2, 2); the D8 segmentor dilates the same
# weights (strides 1, 2, 1, 1, dilations 1, 1, 2, 4), as ImageNet-pretrained
# ResNetV1c backbones are used by mmseg.
_base_ = './_base_/shapes_pretrain.py'
model = dict(
    backbone=dict(type='mmseg.ResNetV1c', depth=18, stem_channels=8, base_channels=8,
                  norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                  conv_cfg=dict(type='mmkd.DefaultInitConv2d'), zero_init_residual=False,
                  init_cfg=dict(type='Kaiming', layer='Conv2d', a=5**0.5, mode='fan_in',
                                nonlinearity='leaky_relu', distribution='uniform')),
    head=dict(in_channels=64))
