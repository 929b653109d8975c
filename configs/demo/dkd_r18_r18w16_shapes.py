# Demo: DKD with the authors' COCO settings (alpha 1, beta 0.25, T 1).
_base_ = './_base_/distill_r18_r18w16_shapes.py'
model = dict(
    distill_losses=dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.25, tau=1.0)))
