# mmpretrain's CIFAR ResNet (3x3 stem, no max-pool: 32x32 -> 4x4) for the
# 12 shape classes; the width is set per model. Convolutions keep PyTorch's
# default init (init_cfg=None, no zero-init residual): with mmpretrain's
# He (fan_out) init and zero-init residual a 1/8-width ResNet-18 stayed near
# chance (13 % top-1) after 600 AdamW steps, against 65 % with this init.
_base_ = './shapes_cls.py'
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=64, base_channels=64,
                  init_cfg=None, zero_init_residual=False),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=12, in_channels=512, topk=(1, ),
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
