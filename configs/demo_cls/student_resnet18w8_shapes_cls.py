# Baseline student: CIFAR ResNet-18 at 1/8 width (8 base channels, 0.18M
# parameters), trained on labels alone.
_base_ = './_base_/resnet_cifar_shapes_cls.py'
model = dict(backbone=dict(stem_channels=8, base_channels=8), head=dict(in_channels=64))
