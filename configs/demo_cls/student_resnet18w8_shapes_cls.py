# Baseline student: CIFAR ResNet-18 at 1/8 width (8 base channels, 0.18M
# parameters), trained on labels alone. Its backbone starts from the demo's
# pretraining on another set (configs/demo_pretrain/resnet_cifar_w8_crops.py:
# the detection scenes' object crops, six classes; trained first by
# `make demo DEMO_ARGS="--task cls"`, left in work_dirs/demo_pretrain/).
_base_ = './_base_/resnet_cifar_shapes_cls.py'
model = dict(
    backbone=dict(stem_channels=8, base_channels=8,
                  init_cfg=dict(_delete_=True, type='Pretrained', prefix='backbone.',
                                checkpoint='work_dirs/demo_pretrain/resnet_cifar_w8_crops/'
                                'iter_600.pth')),
    head=dict(in_channels=64))
