# Baseline student: DeepLabV3 R18-D8 at 1/8 width (8 base channels: stages of
# 8/16/32/64 channels), ASPP of 16 channels, trained on labels alone.
_base_ = './_base_/deeplabv3_r18_shapes_seg.py'
model = dict(
    backbone=dict(stem_channels=8, base_channels=8),
    decode_head=dict(in_channels=64, channels=16),
    auxiliary_head=dict(in_channels=32, channels=8))
