# Cityscapes, 512x1024 crops: mmseg's PSPNet R18-D8 student (ImageNet-
# pretrained resnet18_v1c, as in its config) distilled from mmseg's DeepLabV3
# R101-D8 (80k schedule, 80.20 mIoU), with DIST's schedule: 40k iterations,
# 8 GPUs x 2 images (batch 16), SGD lr 0.02 momentum 0.9 wd 5e-4, poly 0.9.
# Method configs add distill_losses (decode head) and aux_distill_losses.
_base_ = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
# decomposed terms (dkd_tckd, dist_inter, ...) averaged over the losses' window
log_processor = dict(type='mmkd.DistillLogProcessor')

model = dict(
    _delete_=True,
    type='mmkd.SegmentationDistiller',
    student={{_base_.model}},
    teacher='mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',
    teacher_ckpt='https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/'
    'deeplabv3_r101-d8_512x1024_80k_cityscapes/'
    'deeplabv3_r101-d8_512x1024_80k_cityscapes_20200606_113503-9e428899.pth',
    distill_losses=dict())
optim_wrapper = dict(optimizer=dict(lr=0.02))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=40000, by_epoch=False)
]
train_cfg = dict(max_iters=40000, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
