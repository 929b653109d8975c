# Teacher: Faster R-CNN R50-FPN, multi-scale 3x (box AP 40.3; the DKD paper's
# teacher has 40.22). Student: Faster R-CNN MobileNetV2-FPN from ImageNet
# weights; mmdet's MobileNetV2 out_indices (1, 2, 4, 7) are layer2, layer3, layer5
# and the final 1x1 conv: strides 4/8/16/32 with 24/32/96/1280 channels.
_base_ = './faster_rcnn_distill_coco.py'
model = dict(
    student=dict(
        backbone=dict(
            _delete_=True,
            type='MobileNetV2',
            out_indices=(1, 2, 4, 7),
            norm_cfg=dict(type='BN', requires_grad=True),
            init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://mmdet/mobilenet_v2')),
        neck=dict(in_channels=[24, 32, 96, 1280])),
    teacher=dict(backbone=dict(init_cfg=None)),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/'
    'faster_rcnn_r50_fpn_mstrain_3x_coco/'
    'faster_rcnn_r50_fpn_mstrain_3x_coco_20210524_110822-e10bd31c.pth')
