# Demo: DKD (alpha 1, beta 0.25, T 1) + ReviewKD (weight 1.2), the DKD paper's
# strongest COCO row.
_base_ = './reviewkd_r18_r18w16_shapes.py'
model = dict(
    distill_losses=dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.25, tau=1.0)))
