# Demo: pixel-wise KD (T 1) on the decode head, 0.4 on the auxiliary head.
_base_ = './_base_/distill_deeplabv3_r18w16_w8_shapes_seg.py'
model = dict(
    distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss', tau=1.0)),
    aux_distill_losses=dict(loss_kd_aux=dict(type='mmkd.KDLoss', tau=1.0, loss_weight=0.4)))
