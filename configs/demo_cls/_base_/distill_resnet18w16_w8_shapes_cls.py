# The baseline student's run (same data, schedule and seed) wrapped by
# mmkd.ClassificationDistiller with the trained teacher; methods add losses.
# teacher_ckpt is where `make demo DEMO_ARGS="--task cls"` leaves the trained
# teacher (its config's 800 steps); tools/run_demo.py passes its own.
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
    teacher_ckpt='work_dirs/demo_cls/teacher/iter_800.pth',
    teacher_ckpt_hint='It is the classification demo teacher\'s checkpoint: '
    '`make demo DEMO_ARGS="--task cls"` (or `python tools/run_demo.py --task cls`, from the '
    'repository root) trains the teacher and writes it there.',
    distill_losses=dict())
# decomposed terms (dkd_tckd, dist_inter, ...) averaged over the losses' window
log_processor = dict(type='mmkd.DistillLogProcessor')
