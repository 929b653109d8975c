# DIST's COCO row 1: Faster R-CNN R50-FPN student (mmdet 1x) taught by mmdet's
# Cascade Mask R-CNN X101-64x4d-FPN 20e (box AP 45.6, DIST's teacher: 45.6).
# DIST beta = gamma = 1, tau = 1 on the RoI logits; the teacher's three box
# stages score the student's sampled RoIs and their mean teaches (as mmdet's
# cascade inference averages them); no teacher RPN, mask head or loss runs.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
# decomposed terms (dkd_tckd, dist_inter, ...) averaged over the losses' window
log_processor = dict(type='mmkd.DistillLogProcessor')

model = dict(
    _delete_=True,
    type='mmkd.DetectionDistiller',
    student={{_base_.model}},
    teacher='mmdet::cascade_rcnn/cascade-mask-rcnn_x101-64x4d_fpn_20e_coco.py',
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/cascade_rcnn/'
    'cascade_mask_rcnn_x101_64x4d_fpn_20e_coco/'
    'cascade_mask_rcnn_x101_64x4d_fpn_20e_coco_20200512_161033-bdb5126a.pth',
    teacher_stage='mean',
    distill_losses=dict(loss_dist=dict(type='mmkd.DISTLoss', beta=1.0, gamma=1.0, tau=1.0)))
