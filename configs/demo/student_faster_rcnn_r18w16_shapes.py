# Demo student (baseline, no distillation): Faster R-CNN with a quarter-width
# R18 (16 base channels) and a 32-channel FPN, 1.2M parameters.
_base_ = './_base_/faster_rcnn_shapes.py'
model = dict(
    backbone=dict(base_channels=16),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=32), bbox_head=dict(in_channels=32)))
