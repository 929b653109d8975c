# DKD on the RoI classification logits with the authors' COCO settings
# (alpha 1, beta 0.25, T 1, no warm-up).
_base_ = '../_base_/faster_rcnn_r101_r18_coco.py'
model = dict(
    distill_losses=dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.25, tau=1.0)))
