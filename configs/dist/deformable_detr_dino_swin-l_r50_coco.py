# DIST from a DINO teacher into a two-stage Deformable DETR: mmdet's
# Deformable DETR R50 (box refinement, two-stage, 50e; 47.0 box AP) taught
# by mmdet's DINO Swin-L 5-scale 12e (57.2 box AP). Only boxes cross: the
# DINO teacher decodes the student's 300 top-k proposal boxes with its own
# content queries (it has 900 >= 300). DIST on per-class sigmoids, beta =
# gamma = 1, tau = 1, as in dino_swin-l_r50_coco.py.
_base_ = 'mmdet::deformable_detr/deformable-detr-refine-twostage_r50_16xb2-50e_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
log_processor = dict(type='mmkd.DistillLogProcessor')

model = dict(
    _delete_=True,
    type='mmkd.QueryDistiller',
    student={{_base_.model}},
    teacher='mmdet::dino/dino-5scale_swin-l_8xb2-12e_coco.py',
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v3.0/dino/'
    'dino-5scale_swin-l_8xb2-12e_coco/'
    'dino-5scale_swin-l_8xb2-12e_coco_20230228_072924-a654145f.pth',
    distill_losses=dict(loss_dist=dict(
        type='mmkd.DISTLoss', beta=1.0, gamma=1.0, tau=1.0, use_sigmoid=True)))
