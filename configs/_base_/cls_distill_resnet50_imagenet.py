# Distillation of mmpretrain's ResNet-50 ImageNet recipe (8 GPUs x 32 images,
# SGD lr 0.1, steps at 30/60/90, 100 epochs): student and teacher both start
# as its model; pair configs change the student and the teacher checkpoint.
_base_ = 'mmpretrain::resnet/resnet50_8xb32_in1k.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
# decomposed terms (dkd_tckd, dist_inter, ...) averaged over the losses' window
log_processor = dict(type='mmkd.DistillLogProcessor')

model = dict(
    _delete_=True,
    type='mmkd.ClassificationDistiller',
    student={{_base_.model}},
    teacher={{_base_.model}},
    teacher_ckpt=None,
    distill_losses=dict())
