# DIST's COCO row 2: RetinaNet R50-FPN student (mmdet 1x) taught by mmdet's
# RetinaNet X101-64x4d-FPN 1x (box AP 41.0, DIST's teacher: 41.0). Both heads
# score classes with sigmoids, so DIST runs on sigmoid scores (DIST's
# use_sigmoid switch), beta = gamma = 1, tau = 1, over all anchors of the
# batch; the teacher runs backbone + neck + head forward only.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
# decomposed terms (dkd_tckd, dist_inter, ...) averaged over the losses' window
log_processor = dict(type='mmkd.DistillLogProcessor')

model = dict(
    _delete_=True,
    type='mmkd.DenseDistiller',
    student={{_base_.model}},
    teacher='mmdet::retinanet/retinanet_x101-64x4d_fpn_1x_coco.py',
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/retinanet/'
    'retinanet_x101_64x4d_fpn_1x_coco/retinanet_x101_64x4d_fpn_1x_coco_20200130-366f5af1.pth',
    distill_losses=dict(loss_dist=dict(
        type='mmkd.DISTLoss', beta=1.0, gamma=1.0, tau=1.0, use_sigmoid=True)))
