# A Faster R-CNN sized for 128x128 scenes whose objects are 9-75 px: anchors
# of 16-256 px (scale 4 on strides 4-64), fewer proposals and RoIs than COCO.
_base_ = ['mmdet::_base_/models/faster-rcnn_r50_fpn.py', './shapes_detection.py']

def_channels = 64
model = dict(
    backbone=dict(depth=18, init_cfg=None, norm_eval=False, frozen_stages=-1),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=def_channels),
    rpn_head=dict(
        in_channels=def_channels,
        feat_channels=def_channels,
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=def_channels),
        bbox_head=dict(in_channels=def_channels, fc_out_channels=256, num_classes=6)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100)))
