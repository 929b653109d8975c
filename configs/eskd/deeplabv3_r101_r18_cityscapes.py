# ESKD on segmentation: the pixel-wise KD recipe of ../kd/ (DeepLabV3 R101 ->
# R18, 40k iterations, poly lr) with distillation and the teacher stopped
# after 12k iterations (0.3 of the schedule, a multiple of the 4k checkpoint
# interval; ESKD has no segmentation setting, so this is our choice). The
# last 28k iterations train the student alone.
_base_ = '../kd/deeplabv3_r101_r18_cityscapes.py'
custom_hooks = [dict(type='mmkd.EarlyStopDistillHook', stop_iter=12000)]
