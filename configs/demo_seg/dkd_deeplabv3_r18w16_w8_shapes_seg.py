# Demo: pixel-wise DKD with the Cityscapes configs' choice (alpha 1, beta 0.25, T 1).
_base_ = './_base_/distill_deeplabv3_r18w16_w8_shapes_seg.py'
model = dict(
    distill_losses=dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.25, tau=1.0)),
    aux_distill_losses=dict(
        loss_dkd_aux=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.25, tau=1.0, loss_weight=0.4)))
