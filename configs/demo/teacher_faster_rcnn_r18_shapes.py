# Demo teacher: Faster R-CNN R18-FPN at half width (32 base channels) with a
# 64-channel FPN and RoI head, 3.9M parameters (the student has 1.2M), trained
# from scratch. tools/run_demo.py trains it for more steps than the students.
_base_ = './_base_/faster_rcnn_shapes.py'
model = dict(backbone=dict(base_channels=32), neck=dict(in_channels=[32, 64, 128, 256]))
