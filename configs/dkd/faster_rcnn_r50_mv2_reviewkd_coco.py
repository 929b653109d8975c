# DKD (alpha 1, beta 0.25, T 1) combined with ReviewKD (weight 2.0): the
# paper's DKD+ReviewKD row.
_base_ = ['../reviewkd/faster_rcnn_r50_mv2_coco.py']
model = dict(
    distill_losses=dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.25, tau=1.0)))
