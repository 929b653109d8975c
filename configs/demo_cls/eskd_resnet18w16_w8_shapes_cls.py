# ESKD (Cho & Hariharan, ICCV 2019) on the demo's KD row: the same KD losses,
# stopped after the first 200 of the 600 iterations (a third; ESKD stops at 1/4
# to 1/3 of the schedule). From there on the teacher is not run and the student
# trains on its own CE at weight 1 (KD's recipe gives CE 0.1 beside KD's 0.9).
_base_ = './kd_resnet18w16_w8_shapes_cls.py'
custom_hooks = [dict(type='mmkd.EarlyStopDistillHook', stop_iter=200,
                     student_loss_scales=dict(loss_cls=10.0))]
