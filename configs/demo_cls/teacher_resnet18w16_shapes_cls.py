# Teacher: CIFAR ResNet-18 at 1/4 width (16 base channels, 0.70M parameters),
# backbone from the demo's pretraining on the scenes' object crops
# (configs/demo_pretrain/resnet_cifar_w16_crops.py), then trained 800
# iterations (the students get 600).
_base_ = './_base_/resnet_cifar_shapes_cls.py'
model = dict(
    backbone=dict(stem_channels=16, base_channels=16,
                  init_cfg=dict(_delete_=True, type='Pretrained', prefix='backbone.',
                                checkpoint='work_dirs/demo_pretrain/resnet_cifar_w16_crops/'
                                'iter_600.pth')),
    head=dict(in_channels=128))
max_iters = 800
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(T_max=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
