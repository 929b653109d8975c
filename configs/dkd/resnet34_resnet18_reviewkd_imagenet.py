# DKD (alpha 1, beta 0.5, T 1) combined with ReviewKD (weight 1.0; the
# warm-up hook scales both) on ReviewKD's schedule (batch 256, lr 0.1).
_base_ = ['../reviewkd/resnet34_resnet18_imagenet.py']
model = dict(
    distill_losses=dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.5, tau=1.0)))
