# Teacher: Faster R-CNN R101-FPN, multi-scale 3x (box AP 41.8 in mmdet's metafile; the DKD paper's
# teacher has 42.04). Student: Faster R-CNN R18-FPN from ImageNet weights.
_base_ = './faster_rcnn_distill_coco.py'
model = dict(
    student=dict(
        backbone=dict(
            depth=18, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
        neck=dict(in_channels=[64, 128, 256, 512])),
    teacher=dict(backbone=dict(depth=101, init_cfg=None)),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/'
    'faster_rcnn_r101_fpn_mstrain_3x_coco/'
    'faster_rcnn_r101_fpn_mstrain_3x_coco_20210524_110822-4d4d2ca8.pth')
