# The embedded 12-class shapes classification set (mmkd/demo/shapes_cls.py,
# its `easy` preset, 400 train / 150 val images per class, generated into
# data/demo_cls/), 32x32 images, mmpretrain's CustomDataset and Accuracy.
# Batch 32 on one process (tools/run_demo.py) or 2 processes x 16 with
# tools/dist_train.sh; iteration-based schedule, AdamW with cosine decay.
_base_ = 'mmpretrain::_base_/default_runtime.py'
data_root = 'data/demo_cls/'
data_preprocessor = dict(num_classes=12, mean=[127.5, 127.5, 127.5], std=[64.0, 64.0, 64.0],
                         to_rgb=True)
train_pipeline = [dict(type='LoadImageFromFile'), dict(type='RandomFlip', prob=0.5),
                  dict(type='PackInputs')]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=32, num_workers=0, sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=100, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='val',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
max_iters = 600
train_cfg = dict(by_epoch=False, max_iters=max_iters, val_interval=max_iters)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
param_scheduler = dict(type='CosineAnnealingLR', by_epoch=False, T_max=max_iters)
default_hooks = dict(logger=dict(type='LoggerHook', interval=50),
                     checkpoint=dict(type='CheckpointHook', by_epoch=False,
                                     interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
