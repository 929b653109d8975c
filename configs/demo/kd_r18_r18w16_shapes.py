# Demo: vanilla KD (T 1) on the RoI logits.
_base_ = './_base_/distill_r18_r18w16_shapes.py'
model = dict(distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss', tau=1.0, loss_weight=1.0)))
