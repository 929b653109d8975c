# Demo distillation: the half-width R18 teacher (teacher_faster_rcnn_r18_shapes.py)
# into the quarter-width R18 student. teacher_ckpt is where `make demo` leaves
# the trained teacher (paths relative to the repository root); tools/run_demo.py
# passes its own work dir's checkpoint as model.teacher_ckpt.
_base_ = './distill_wrap_shapes.py'
model = dict(
    teacher=dict(
        backbone=dict(base_channels=32, init_cfg=None),  # its weights: teacher_ckpt
        neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
        rpn_head=dict(in_channels=64, feat_channels=64),
        roi_head=dict(bbox_roi_extractor=dict(out_channels=64), bbox_head=dict(in_channels=64))),
    teacher_ckpt='work_dirs/demo/teacher/iter_300.pth',
    teacher_ckpt_hint='It is the detection demo teacher\'s checkpoint: `make demo` (or '
    '`python tools/run_demo.py`, from the repository root) trains the teacher and writes it '
    'there.')
