# Vanilla KD on the RoI classification logits (81-way, background included).
_base_ = '../_base_/faster_rcnn_r101_r18_coco.py'
model = dict(distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss', tau=1.0, loss_weight=1.0)))
