# Demo: DIST with the detection settings (beta = gamma = 1, T 1).
_base_ = './_base_/distill_r18_r18w16_shapes.py'
model = dict(
    distill_losses=dict(loss_dist=dict(type='mmkd.DISTLoss', beta=1.0, gamma=1.0, tau=1.0)))
