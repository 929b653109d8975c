# The classification demo teacher's backbone (CIFAR ResNet-18 at 1/4 width)
# pretrained on the scenes' object crops.
_base_ = './resnet_cifar_w8_crops.py'
model = dict(backbone=dict(stem_channels=16, base_channels=16), head=dict(in_channels=128))
