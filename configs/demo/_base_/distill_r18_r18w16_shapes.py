# Demo distillation: the half-width R18 teacher (teacher_faster_rcnn_r18_shapes.py)
# into the quarter-width R18 student. tools/run_demo.py passes the teacher's
# checkpoint with --cfg-options model.teacher_ckpt=...
_base_ = './distill_wrap_shapes.py'
model = dict(
    teacher=dict(
        backbone=dict(base_channels=32),
        neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
        rpn_head=dict(in_channels=64, feat_channels=64),
        roi_head=dict(bbox_roi_extractor=dict(out_channels=64), bbox_head=dict(in_channels=64))),
    teacher_ckpt='work_dirs/demo/teacher/iter_400.pth')
