# DIST with its CIFAR setting: beta = gamma = 1 (weight 2 as on ImageNet), T 4.
_base_ = './_base_/distill_resnet18w16_w8_shapes_cls.py'
model = dict(
    distill_losses=dict(
        loss_dist=dict(type='mmkd.DISTLoss', beta=1.0, gamma=1.0, tau=4.0, loss_weight=2.0)))
