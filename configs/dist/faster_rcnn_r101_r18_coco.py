# DIST on the RoI classification logits (detection settings: beta = gamma = 1, T 1).
_base_ = '../_base_/faster_rcnn_r101_r18_coco.py'
model = dict(
    distill_losses=dict(loss_dist=dict(type='mmkd.DISTLoss', beta=1.0, gamma=1.0, tau=1.0)))
