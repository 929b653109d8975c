# mmseg's DeepLabV3 R18-D8 (ResNetV1c, dilated: 1/8-resolution logits) for the
# 7 shape classes, trained from scratch with BN; widths are set per model.
_base_ = ['mmseg::_base_/models/deeplabv3_r50-d8.py', './shapes_seg.py']
bn = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=None, size_divisor=8),
    pretrained=None,
    backbone=dict(depth=18, stem_channels=64, base_channels=64, norm_cfg=bn),
    decode_head=dict(in_channels=512, channels=128, dilations=(1, 2, 4, 6), num_classes=7,
                     norm_cfg=bn),
    auxiliary_head=dict(in_channels=256, channels=64, num_classes=7, norm_cfg=bn))
