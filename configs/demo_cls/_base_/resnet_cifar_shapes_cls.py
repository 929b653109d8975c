# mmpretrain's CIFAR ResNet (3x3 stem, no max-pool: 32x32 -> 4x4) for the
# 12 shape classes; the width is set per model.
_base_ = './shapes_cls.py'
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=64, base_channels=64),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=12, in_channels=512, topk=(1, ),
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
