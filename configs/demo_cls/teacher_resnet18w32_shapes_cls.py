# Teacher: CIFAR ResNet-18 at half width (32 base channels, 2.8M parameters).
_base_ = './_base_/resnet_cifar_shapes_cls.py'
model = dict(backbone=dict(stem_channels=32, base_channels=32), head=dict(in_channels=256))
