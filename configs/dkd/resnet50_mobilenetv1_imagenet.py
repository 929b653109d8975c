# DKD, mdistiller's ImageNet setting for ResNet-50 -> MobileNetV1: alpha 1,
# beta 2, T 1, CE 1, 8 GPUs x 64 images (batch 512), lr 0.2, steps at
# 30/60/90. Reported top-1: 72.05 (student 68.87).
_base_ = '../_base_/resnet50_mobilenetv1_imagenet.py'
model = dict(
    distill_losses=dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=2.0, tau=1.0)))
train_dataloader = dict(batch_size=64)
optim_wrapper = dict(optimizer=dict(lr=0.2))
auto_scale_lr = dict(base_batch_size=512)
