# Demo teacher: Faster R-CNN R18-FPN at full width (64 base channels, 64-channel
# FPN), 12.3M parameters, trained from scratch: 10x the student's parameters.
_base_ = './_base_/faster_rcnn_shapes.py'
