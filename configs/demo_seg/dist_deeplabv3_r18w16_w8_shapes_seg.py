# Demo: DIST with its segmentation settings (beta = gamma = 1, T 1; aux head 0.4).
_base_ = './_base_/distill_deeplabv3_r18w16_w8_shapes_seg.py'
model = dict(
    distill_losses=dict(loss_dist=dict(type='mmkd.DISTLoss', beta=1.0, gamma=1.0, tau=1.0)),
    aux_distill_losses=dict(loss_dist_aux=dict(type='mmkd.DISTLoss', loss_weight=0.4)))
