# Train an ImageNet ResNet-34 teacher with mmpretrain's recipe and keep an
# early-stopped copy of it for ESKD: a second CheckpointHook writes
# early_epoch_30.pth (model weights only) after epoch 30 and never deletes it,
# whatever the default checkpoint hook keeps. Use that file as teacher_ckpt
# (configs/eskd/resnet34_early_resnet18_imagenet.py). save_begin=30 with a
# huge interval saves exactly once; the filename keeps it apart from the
# default hook's epoch_*.pth. priority LOW runs it before the default hook, so
# last_checkpoint (what --resume reads) still names the full epoch_30.pth.
_base_ = 'mmpretrain::resnet/resnet34_8xb32_in1k.py'
custom_hooks = [
    dict(type='CheckpointHook', interval=10**6, save_begin=30, by_epoch=True,
         filename_tmpl='early_epoch_{}.pth', save_optimizer=False, save_param_scheduler=False,
         save_last=False, max_keep_ckpts=-1, priority='LOW')
]
