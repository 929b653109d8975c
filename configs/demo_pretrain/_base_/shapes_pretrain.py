# The demos' "ImageNet": backbones are pretrained once as mmpretrain image
# classifiers on a seeded single-object shapes set, then every demo run that
# uses them starts from the same weights (tools/run_demo.py trains these
# configs first, caches the result in work_dirs/demo_pretrain/ and shares it
# between seeds, methods and demos). Set here: the data (64 px, the 12 shape
# classes of mmkd/demo/shapes_cls.py, `easy` preset, generator seed 1, 400 /
# 50 images per class, in data/demo_pretrain/: not the classification demo's
# seed-0 images), batch 64, AdamW with cosine decay, 1000 steps. Each file
# beside this one sets the backbone exactly as the detector / segmentor that
# loads it builds it, and that model's normalisation.
_base_ = 'mmpretrain::_base_/default_runtime.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
data_root = 'data/demo_pretrain/'
data_preprocessor = dict(num_classes=12, mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], to_rgb=True)
train_pipeline = [dict(type='LoadImageFromFile'), dict(type='RandomFlip', prob=0.5),
                  dict(type='PackInputs')]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=64, num_workers=0, sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=100, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='val',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
model = dict(type='ImageClassifier', neck=dict(type='GlobalAveragePooling'),
             head=dict(type='LinearClsHead', num_classes=12, topk=(1, ),
                       loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
max_iters = 1000
train_cfg = dict(by_epoch=False, max_iters=max_iters, val_interval=max_iters)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
param_scheduler = dict(type='CosineAnnealingLR', by_epoch=False, T_max=max_iters)
default_hooks = dict(logger=dict(type='LoggerHook', interval=100),
                     checkpoint=dict(type='CheckpointHook', by_epoch=False,
                                     interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
