# The demos' "ImageNet": backbones are pretrained once as mmpretrain image
# classifiers on a seeded single-object shapes set, then every demo run that
# uses them starts from the same weights (tools/run_demo.py trains these
# configs first, caches the result in work_dirs/demo_pretrain/ and shares it
# between seeds, methods and demos). The classification demo's recipe
# (mmpretrain's CustomDataset and Accuracy, AdamW with cosine decay) on other
# data: 64 px, the 12 shape classes of mmkd/demo/shapes_cls.py, `easy` preset,
# generator seed 1, 400 / 50 images per class, in data/demo_pretrain/ (not
# the classification demo's seed-0 images); batch 64, 1000 steps. Each file
# beside this one sets the backbone exactly as the detector / segmentor that
# loads it builds it, and that model's normalisation.
_base_ = '../../demo_cls/_base_/shapes_cls.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
data_root = 'data/demo_pretrain/'
data_preprocessor = dict(num_classes=12, mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], to_rgb=True)
train_dataloader = dict(batch_size=64, dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
model = dict(type='ImageClassifier', neck=dict(type='GlobalAveragePooling'),
             head=dict(type='LinearClsHead', num_classes=12, topk=(1, ),
                       loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
max_iters = 1000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(T_max=max_iters)
default_hooks = dict(logger=dict(interval=100), checkpoint=dict(interval=max_iters))
