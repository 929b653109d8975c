# KD + DOT (Distillation-Oriented Trainer), mdistiller's
# configs/imagenet/r34_r18/dot.yaml: KD T 1, CE 0.5 + KD 0.5, 8 GPUs x 64
# images (batch 512), SGD lr 0.2, momentum 0.9, weight decay 1e-4,
# DOT.DELTA 0.09 (task-loss momentum 0.81, KD-loss momentum 0.99), steps at
# 30/60/90 of 100 epochs. Reported top-1: 71.72 (KD alone 71.03).
_base_ = '../_base_/resnet34_resnet18_imagenet.py'
model = dict(
    student=dict(head=dict(loss=dict(loss_weight=0.5))),
    distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss', tau=1.0, loss_weight=0.5)))
train_dataloader = dict(batch_size=64)
optim_wrapper = dict(
    type='mmkd.DOTOptimWrapper', delta=0.09,
    optimizer=dict(type='SGD', lr=0.2, momentum=0.9, weight_decay=1e-4))
auto_scale_lr = dict(base_batch_size=512)
