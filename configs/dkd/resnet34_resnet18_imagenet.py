# DKD, mdistiller's ImageNet setting: alpha 1 (the paper says 0.5 and that
# ImageNet is insensitive to it, mdistiller#32), beta 0.5, T 1, CE 1,
# 8 GPUs x 64 images (batch 512), lr 0.2, steps at 30/60/90. Reported top-1:
# 71.70 (student 69.76).
_base_ = '../_base_/resnet34_resnet18_imagenet.py'
model = dict(
    distill_losses=dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.5, tau=1.0)))
train_dataloader = dict(batch_size=64)
optim_wrapper = dict(optimizer=dict(lr=0.2))
auto_scale_lr = dict(base_batch_size=512)
