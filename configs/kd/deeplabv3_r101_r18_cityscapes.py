# Pixel-wise KD. No published Cityscapes setting for this pair: we use DIST's
# segmentation temperature and weights (tau 1, weight 1 on the decode head,
# 0.4 on the auxiliary head), so KD, DKD and DIST differ only in the loss.
# KD sums the KL over classes per pixel and averages over kept pixels.
_base_ = '../_base_/deeplabv3_r101_r18_cityscapes.py'
model = dict(
    distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss', tau=1.0)),
    aux_distill_losses=dict(loss_kd_aux=dict(type='mmkd.KDLoss', tau=1.0, loss_weight=0.4)))
