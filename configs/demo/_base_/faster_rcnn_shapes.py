# A Faster R-CNN sized for 128x128 scenes whose objects are 16-77 px: anchors
# of 16-256 px (scale 4 on strides 4-64). On a CPU the RoI stage, not the
# backbone, dominates a step: 64 sampled RoIs per image (1-4 objects each) and
# 300 pre-NMS proposals per level instead of COCO's 512 and 2000, and
# torchvision's RoIAlign (several times faster than mmcv's on a CPU). From
# scratch with small batches the FPN gets BN too. Every conv and linear layer
# keeps PyTorch's default init (mmkd.DefaultInitConv2d, the same
# Kaiming-uniform for the backbone, no init_cfg on the heads): the teacher
# reached 25.0 bbox mAP in 400 steps against 14.6 with mmdet's inits.
_base_ = ['mmdet::_base_/models/faster-rcnn_r50_fpn.py', './shapes_detection.py']
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

def_channels = 64
conv = dict(type='mmkd.DefaultInitConv2d')
model = dict(
    backbone=dict(depth=18, norm_eval=False, frozen_stages=-1, conv_cfg=conv,
                  zero_init_residual=False,
                  init_cfg=dict(_delete_=True, type='Kaiming', layer='Conv2d', a=5**0.5,
                                mode='fan_in', nonlinearity='leaky_relu',
                                distribution='uniform')),
    neck=dict(
        in_channels=[64, 128, 256, 512], out_channels=def_channels, norm_cfg=dict(type='BN'),
        conv_cfg=conv, init_cfg=None),
    rpn_head=dict(
        init_cfg=None,
        in_channels=def_channels,
        feat_channels=def_channels,
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(
            roi_layer=dict(use_torchvision=True), out_channels=def_channels),
        bbox_head=dict(in_channels=def_channels, fc_out_channels=256, num_classes=6,
                       init_cfg=[])),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=300, max_per_img=150),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100)))
