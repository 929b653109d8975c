# The classification demo's "ImageNet": its backbones are pretrained once on
# a different set than the one the demo distils on, the object crops of the
# detection scenes (mmkd/demo/crops.py: six classes, 32 px, data/demo_crops/),
# then every classification demo run starts from them. tools/run_demo.py
# trains these configs first and caches the result in
# work_dirs/demo_pretrain/. Batch 64, AdamW with cosine decay, 600 steps; the
# classification demo's normalisation.
_base_ = './shapes_pretrain.py'
data_root = 'data/demo_crops/'
data_preprocessor = dict(num_classes=6, mean=[127.5, 127.5, 127.5], std=[64.0, 64.0, 64.0],
                         to_rgb=True)
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
model = dict(head=dict(num_classes=6))
max_iters = 600
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = dict(T_max=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
