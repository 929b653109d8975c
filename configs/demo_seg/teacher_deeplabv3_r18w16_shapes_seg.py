# Teacher: DeepLabV3 R18-D8 at 1/4 width (16 base channels: stages of
# 16/32/64/128 channels), ASPP of 32 channels; backbone from the demo's
# pretraining (configs/demo_pretrain/r18v1c_w16_seg_shapes.py), then trained
# 500 iterations (the students get 350).
_base_ = './_base_/deeplabv3_r18_shapes_seg.py'
model = dict(
    backbone=dict(stem_channels=16, base_channels=16,
                  init_cfg=dict(_delete_=True, type='Pretrained', prefix='backbone.',
                                checkpoint='work_dirs/demo_pretrain/r18v1c_w16_seg_shapes/'
                                'iter_1000.pth')),
    decode_head=dict(in_channels=128, channels=32),
    auxiliary_head=dict(in_channels=64, channels=16))
max_iters = 500
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=max_iters))
