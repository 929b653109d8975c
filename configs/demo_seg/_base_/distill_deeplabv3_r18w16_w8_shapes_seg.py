# The baseline student's run (same data, schedule and seed) wrapped by
# mmkd.SegmentationDistiller with the trained teacher; methods add losses.
_base_ = '../student_deeplabv3_r18w8_shapes_seg.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='mmkd.SegmentationDistiller',
    student={{_base_.model}},
    teacher='{{fileDirname}}/../teacher_deeplabv3_r18w16_shapes_seg.py',
    teacher_ckpt='work_dirs/demo_seg/teacher/teacher.pth',
    distill_losses=dict())
