# The detection demo teacher's backbone (mmdet's ResNet-18 at 1/2 width, 32
# base channels) pretrained as a 12-class shapes classifier, for 500 steps:
# it costs 2.5x the student's per step and is on the detection demo's
# critical path (pretraining -> teacher -> distilled students).
_base_ = './r18w16_det_shapes.py'
model = dict(backbone=dict(base_channels=32), head=dict(in_channels=256))
max_iters = 500
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(T_max=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
