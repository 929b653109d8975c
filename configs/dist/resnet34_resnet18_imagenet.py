# DIST's own ImageNet recipe: beta = gamma = 1 with loss weight 2 (= beta =
# gamma = 2), T 1, CE 1; batch 256, lr 0.1, /10 every 30 epochs, 100 epochs
# (mmpretrain's ResNet-18 schedule already). Reported top-1: 72.07 (student
# 69.76).
_base_ = '../_base_/resnet34_resnet18_imagenet.py'
model = dict(
    distill_losses=dict(
        loss_dist=dict(type='mmkd.DISTLoss', beta=1.0, gamma=1.0, tau=1.0, loss_weight=2.0)))
