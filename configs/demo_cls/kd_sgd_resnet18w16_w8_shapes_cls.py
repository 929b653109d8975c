# The demo's KD row (T 4, CE 0.1 + KD 0.9) trained with plain SGD instead of
# AdamW: the reference kd_dot is read against (same lr, momentum, weight decay
# and schedule; paired by seed). lr 0.025 is mdistiller's CIFAR-100 lr (0.05 at
# batch 64) scaled linearly to the demo's batch 32, weight decay its 5e-4,
# momentum 0.9; not tuned on this benchmark.
_base_ = './kd_resnet18w16_w8_shapes_cls.py'
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.025, momentum=0.9, weight_decay=5e-4))
