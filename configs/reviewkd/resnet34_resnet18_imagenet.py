# ReviewKD, mdistiller's ImageNet setting: the four stage outputs plus the
# pooled feature, channels [64, 128, 256, 512, 512] on both sides (mid 512),
# HCL weight 1.0, CE 1; batch 256, lr 0.1, steps at 30/60/90 (mmpretrain's
# schedule). Warm-up 1 epoch as in the YAML: counted from 1 like mdistiller's
# epochs, that is factor 1 from the start. Stage outputs are post-ReLU
# (mmpretrain's ResNet). Reported top-1: 71.61 (student 69.76).
_base_ = '../_base_/resnet34_resnet18_imagenet.py'
model = dict(
    student=dict(backbone=dict(out_indices=(0, 1, 2, 3))),
    teacher=dict(backbone=dict(out_indices=(0, 1, 2, 3))),
    reviewkd=dict(
        connector=dict(
            type='mmkd.ABFConnector', in_channels=[64, 128, 256, 512, 512],
            out_channels=[64, 128, 256, 512, 512], mid_channels=512),
        loss=dict(type='mmkd.HCLLoss', loss_weight=1.0)))
custom_hooks = [dict(type='mmkd.DistillWarmupHook', warmup=1, by_epoch=True)]
