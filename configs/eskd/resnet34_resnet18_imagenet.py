# ESKD (Cho & Hariharan, ICCV 2019): the KD recipe of ../kd/ (R34 -> R18, T 1,
# CE 0.5 + KD 0.5, 100 epochs, lr steps at 30/60/90), with the KD term and the
# teacher stopped after epoch 30; epochs 31-100 train on CE alone (the teacher
# does not run). The paper (no official code) shows KD helping early and
# hurting later (its figure 3) but gives no stop epoch we could check; we stop
# at the first learning-rate step, about 1/3 of the schedule (our choice).
# Its ImageNet R18 top-1 error: full KD from R34 30.79, ESKD 29.16. After the
# stop the CE (logged as loss_cls, weight 0.5 in the KD recipe) is scaled by 2:
# the student finishes on CE with weight 1.
_base_ = '../kd/resnet34_resnet18_imagenet.py'
custom_hooks = [
    dict(type='mmkd.EarlyStopDistillHook', stop_epoch=30, student_loss_scales=dict(loss_cls=2.0))
]
