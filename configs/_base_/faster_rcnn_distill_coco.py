# Distillation of mmdet's Faster R-CNN (R50-FPN, 1x, COCO, 8 GPUs x 2 images):
# student and teacher both start as mmdet's model; pair configs change their
# backbones, the teacher checkpoint and the distillation losses.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
# decomposed terms (dkd_tckd, dist_inter, ...) averaged over the losses' window
log_processor = dict(type='mmkd.DistillLogProcessor')

model = dict(
    _delete_=True,
    type='mmkd.DetectionDistiller',
    student={{_base_.model}},
    teacher={{_base_.model}},
    teacher_ckpt=None,
    distill_losses=dict())
