# Vanilla KD on DINO's class logits: mmdet's DINO R50 4-scale 12e student
# (49.0 box AP) taught by mmdet's DINO Swin-L 5-scale 12e (57.2 box AP).
# The teacher decodes the student's 900 matching-query reference boxes with
# its own content queries (QueryDistiller); the heads score classes with
# per-class sigmoids, so KD is the per-class binary KL (use_sigmoid=True),
# tau = 1, weight 1 (mmkd's defaults: no published setting to follow).
_base_ = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'
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
    distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss', tau=1.0, loss_weight=1.0,
                                     use_sigmoid=True)))
