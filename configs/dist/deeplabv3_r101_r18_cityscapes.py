# DIST with its Cityscapes settings (DIST_KD's segmentation code): beta =
# gamma = 1, tau = 1 on the decode head's logits, and the same loss at 0.4 of
# that weight on the auxiliary head's. Unlike that code, pixels labelled 255
# are left out.
_base_ = '../_base_/deeplabv3_r101_r18_cityscapes.py'
model = dict(
    distill_losses=dict(loss_dist=dict(type='mmkd.DISTLoss', beta=1.0, gamma=1.0, tau=1.0)),
    aux_distill_losses=dict(
        loss_dist_aux=dict(type='mmkd.DISTLoss', beta=1.0, gamma=1.0, tau=1.0, loss_weight=0.4)))
