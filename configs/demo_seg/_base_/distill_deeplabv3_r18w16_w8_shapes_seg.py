# The baseline student's run (same data, schedule and seed) wrapped by
# mmkd.SegmentationDistiller with the trained teacher; methods add losses.
# teacher_ckpt is where `make demo DEMO_ARGS="--task seg"` leaves the trained
# teacher (its config's 500 steps); tools/run_demo.py passes its own.
_base_ = '../student_deeplabv3_r18w8_shapes_seg.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='mmkd.SegmentationDistiller',
    student={{_base_.model}},
    teacher='{{fileDirname}}/../teacher_deeplabv3_r18w16_shapes_seg.py',
    teacher_ckpt='work_dirs/demo_seg/teacher/iter_500.pth',
    teacher_ckpt_hint='It is the segmentation demo teacher\'s checkpoint: '
    '`make demo DEMO_ARGS="--task seg"` (or `python tools/run_demo.py --task seg`, from the '
    'repository root) trains the teacher and writes it there.',
    distill_losses=dict())
# decomposed terms (dkd_tckd, dist_inter, ...) averaged over the losses' window
log_processor = dict(type='mmkd.DistillLogProcessor')
