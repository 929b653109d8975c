# Teacher: DeepLabV3 R18-D8 at half width (32 base channels: stages of
# 32/64/128/256 channels), ASPP of 64 channels.
_base_ = './_base_/deeplabv3_r18_shapes_seg.py'
model = dict(
    backbone=dict(stem_channels=32, base_channels=32),
    decode_head=dict(in_channels=256, channels=64),
    auxiliary_head=dict(in_channels=128, channels=32))
