# The baseline student's run (same data, schedule and seed) wrapped by
# mmkd.ClassificationDistiller with the trained teacher; methods add losses.
_base_ = '../student_resnet18w8_shapes_cls.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='mmkd.ClassificationDistiller',
    student={{_base_.model}},
    teacher=dict(
        type='ImageClassifier',
        backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=16, base_channels=16),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=12, in_channels=128)),
    teacher_ckpt='work_dirs/demo_cls/teacher/teacher.pth',
    distill_losses=dict())
