# Vanilla KD, mdistiller's ImageNet setting: T 1, CE 0.5 + KD 0.5, 8 GPUs x 64
# images (batch 512), lr 0.2, steps at 30/60/90. Reported top-1: 71.03
# (student 69.76).
_base_ = '../_base_/resnet34_resnet18_imagenet.py'
model = dict(
    student=dict(head=dict(loss=dict(loss_weight=0.5))),
    distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss', tau=1.0, loss_weight=0.5)))
train_dataloader = dict(batch_size=64)
optim_wrapper = dict(optimizer=dict(lr=0.2))
auto_scale_lr = dict(base_batch_size=512)
