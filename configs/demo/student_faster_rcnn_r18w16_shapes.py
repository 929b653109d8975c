# Demo student (baseline, no distillation): Faster R-CNN with a quarter-width
# R18 (16 base channels) and a 32-channel FPN, 1.2M parameters. Its backbone
# starts from the demo's pretraining (configs/demo_pretrain/r18w16_det_shapes.py,
# trained first by `make demo`, left in work_dirs/demo_pretrain/), as COCO
# students start from ImageNet; the FPN and heads start from random weights.
_base_ = './_base_/faster_rcnn_shapes.py'
model = dict(
    backbone=dict(base_channels=16,
                  init_cfg=dict(_delete_=True, type='Pretrained', prefix='backbone.',
                                checkpoint='work_dirs/demo_pretrain/r18w16_det_shapes/'
                                'iter_1000.pth')),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=32), bbox_head=dict(in_channels=32)))
