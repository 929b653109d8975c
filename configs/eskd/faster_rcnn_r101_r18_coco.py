# ESKD on detection: the KD recipe of ../kd/ (R101 -> R18 RoI logits, 1x
# schedule, lr steps at epochs 8 and 11) with distillation stopped after
# epoch 8, the first learning-rate step (ESKD has no detection setting; this
# is the same rule as configs/eskd/resnet34_resnet18_imagenet.py). Epochs 9-12
# train the student alone: no teacher forward.
_base_ = '../kd/faster_rcnn_r101_r18_coco.py'
custom_hooks = [dict(type='mmkd.EarlyStopDistillHook', stop_epoch=8)]
