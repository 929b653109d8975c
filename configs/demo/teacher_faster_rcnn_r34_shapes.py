# Demo teacher: Faster R-CNN R34-FPN (64 channels), 22M parameters, from scratch.
_base_ = './_base_/faster_rcnn_shapes.py'
model = dict(backbone=dict(depth=34))
