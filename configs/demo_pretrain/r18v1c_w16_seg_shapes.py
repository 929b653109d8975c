# The segmentation demo teacher's backbone (mmseg's ResNetV1c-18 at 1/4 width,
# 16 stem and base channels) pretrained as a 12-class shapes classifier.
_base_ = './r18v1c_w8_seg_shapes.py'
model = dict(backbone=dict(stem_channels=16, base_channels=16), head=dict(in_channels=128))
