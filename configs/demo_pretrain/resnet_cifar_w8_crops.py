# The classification demo student's backbone (mmpretrain's CIFAR ResNet-18 at
# 1/8 width, as configs/demo_cls/student_resnet18w8_shapes_cls.py builds it)
# pretrained on the scenes' object crops.
_base_ = './_base_/crops_pretrain.py'
model = dict(
    backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=8, base_channels=8,
                  init_cfg=None, zero_init_residual=False),
    head=dict(in_channels=64))
