# mmseg's DeepLabV3 R18-D8 (ResNetV1c, dilated: 1/8-resolution logits) for the
# 7 shape classes, trained from scratch with BN; widths are set per model.
# Every conv keeps PyTorch's default init (mmkd.DefaultInitConv2d in the
# heads' ConvModules, init_cfg=None for the heads' classifier convs, the same
# Kaiming-uniform for the backbone, no zero-init residual): with mmcv's He
# (fan_out) init and mmseg's std-0.01 classifier init these narrow models did
# not fit even one batch in 150 AdamW steps (docs/results.md).
_base_ = ['mmseg::_base_/models/deeplabv3_r50-d8.py', './shapes_seg.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
bn = dict(type='BN', requires_grad=True)
conv = dict(type='mmkd.DefaultInitConv2d')
model = dict(
    data_preprocessor=dict(size=None, size_divisor=8),
    pretrained=None,
    backbone=dict(depth=18, stem_channels=64, base_channels=64, norm_cfg=bn, conv_cfg=conv,
                  zero_init_residual=False,
                  init_cfg=dict(type='Kaiming', layer='Conv2d', a=5**0.5, mode='fan_in',
                                nonlinearity='leaky_relu', distribution='uniform')),
    decode_head=dict(in_channels=512, channels=128, dilations=(1, 2, 4, 6), num_classes=7,
                     norm_cfg=bn, conv_cfg=conv, init_cfg=None),
    auxiliary_head=dict(in_channels=256, channels=64, num_classes=7, norm_cfg=bn,
                        conv_cfg=conv, init_cfg=None))
