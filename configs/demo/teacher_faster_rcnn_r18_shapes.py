# Demo teacher: Faster R-CNN R18-FPN at half width (32 base channels) with a
# 64-channel FPN and RoI head, 3.9M parameters (the student has 1.2M). Its
# backbone starts from the demo's pretraining (configs/demo_pretrain/
# r18w32_det_shapes.py, which `make demo` trains first and leaves in
# work_dirs/demo_pretrain/); then 300 steps with the students' warm-up share
# (38 steps) and cosine decay. `make demo` writes its checkpoint to
# work_dirs/demo/teacher/iter_300.pth, which the distillation configs load.
_base_ = './_base_/faster_rcnn_shapes.py'
model = dict(
    backbone=dict(base_channels=32,
                  init_cfg=dict(_delete_=True, type='Pretrained', prefix='backbone.',
                                checkpoint='work_dirs/demo_pretrain/r18w32_det_shapes/'
                                'iter_500.pth')),
    neck=dict(in_channels=[32, 64, 128, 256]))
max_iters = 300
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=38),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=38, end=max_iters, eta_min=1e-6),
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
