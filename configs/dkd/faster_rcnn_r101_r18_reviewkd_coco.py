# DKD (alpha 1, beta 0.25, T 1) combined with ReviewKD (weight 1.2): the
# paper's DKD+ReviewKD row.
_base_ = ['../reviewkd/faster_rcnn_r101_r18_coco.py']
model = dict(
    distill_losses=dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.25, tau=1.0)))
