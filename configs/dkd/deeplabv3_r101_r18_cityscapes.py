# Pixel-wise DKD. No published Cityscapes setting: we take the DKD authors'
# setting for their only dense-prediction model, Faster R-CNN on COCO (alpha
# 1, beta 0.25, T 1, no warm-up), untuned. Auxiliary head at 0.4 of the
# decode head's weight, as DIST does.
_base_ = '../_base_/deeplabv3_r101_r18_cityscapes.py'
model = dict(
    distill_losses=dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.25, tau=1.0)),
    aux_distill_losses=dict(
        loss_dkd_aux=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.25, tau=1.0, loss_weight=0.4)))
