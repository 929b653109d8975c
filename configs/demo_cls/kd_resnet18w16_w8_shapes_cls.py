# KD with mdistiller's CIFAR-100 setting: T 4, CE 0.1 + KD 0.9.
_base_ = './_base_/distill_resnet18w16_w8_shapes_cls.py'
model = dict(
    student=dict(head=dict(loss=dict(loss_weight=0.1))),
    distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss', tau=4.0, loss_weight=0.9)))
