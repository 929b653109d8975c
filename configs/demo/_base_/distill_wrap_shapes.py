# Wrap the demo student in a DetectionDistiller whose teacher starts as a copy
# of the student's model dict; distill_r18_r18w16_shapes.py widens the teacher.
_base_ = '../student_faster_rcnn_r18w16_shapes.py'
model = dict(
    _delete_=True,
    type='mmkd.DetectionDistiller',
    student={{_base_.model}},
    teacher={{_base_.model}},
    teacher_ckpt=None,
    distill_losses=dict())
# decomposed terms (dkd_tckd, dist_inter, ...) averaged over the losses' window
log_processor = dict(type='mmkd.DistillLogProcessor')
