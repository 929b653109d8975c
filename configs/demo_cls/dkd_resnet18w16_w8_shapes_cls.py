# DKD with the CIFAR-100 setting of its paper: alpha 1, beta 8, T 4, CE 1,
# and its warm-up (20 of 240 epochs there) as 50 of the 600 iterations.
_base_ = './_base_/distill_resnet18w16_w8_shapes_cls.py'
model = dict(
    distill_losses=dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=8.0, tau=4.0)))
custom_hooks = [dict(type='mmkd.DistillWarmupHook', warmup=50, by_epoch=False)]
