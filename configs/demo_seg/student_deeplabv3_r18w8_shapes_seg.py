# Baseline student: DeepLabV3 R18-D8 at 1/8 width (8 base channels: stages of
# 8/16/32/64 channels) with the teacher's head widths (ASPP 32, aux 16: with
# half of them a seed decided whether whole classes were learned at all,
# docs/results.md), trained on labels alone. Its
# backbone starts from the demo's pretraining (configs/demo_pretrain/
# r18v1c_w8_seg_shapes.py, trained first by `make demo DEMO_ARGS="--task seg"`,
# left in work_dirs/demo_pretrain/), as Cityscapes students start from
# ImageNet; the heads start from random weights.
_base_ = './_base_/deeplabv3_r18_shapes_seg.py'
model = dict(
    backbone=dict(stem_channels=8, base_channels=8,
                  init_cfg=dict(_delete_=True, type='Pretrained', prefix='backbone.',
                                checkpoint='work_dirs/demo_pretrain/r18v1c_w8_seg_shapes/'
                                'iter_1000.pth')),
    decode_head=dict(in_channels=64, channels=32),
    auxiliary_head=dict(in_channels=32, channels=16))
