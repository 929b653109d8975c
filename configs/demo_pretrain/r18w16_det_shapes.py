# The detection demo student's backbone (mmdet's ResNet-18 at 1/4 width, 16
# base channels, as configs/demo/student_faster_rcnn_r18w16_shapes.py builds
# it) pretrained as a 12-class shapes classifier.
_base_ = './_base_/shapes_pretrain.py'
model = dict(
    backbone=dict(type='mmdet.ResNet', depth=18, base_channels=16, norm_eval=False,
                  frozen_stages=-1, conv_cfg=dict(type='mmkd.DefaultInitConv2d'),
                  zero_init_residual=False,
                  init_cfg=dict(type='Kaiming', layer='Conv2d', a=5**0.5, mode='fan_in',
                                nonlinearity='leaky_relu', distribution='uniform')),
    head=dict(in_channels=128))
