# PS-KD on segmentation: mmseg's DeepLabV3 R18-D8 (Cityscapes, 80k iterations,
# 4 GPUs x 2 images) taught by its own snapshot from one "epoch" earlier:
# interval 372 iterations = one pass over the 2975 training images at batch 8.
# decode.loss_ce and aux.loss_ce are scaled by 1 - a_t, pixel KL to the
# snapshot by a_t (decode weight 1, aux 0.4 as their CE weights). mmseg's CE
# runs at label resolution and the KD at head resolution, so the gradient is
# the soft-target CE's up to that resampling. a_T = 0.8, the paper's default.
_base_ = 'mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
# decomposed terms (dkd_tckd, dist_inter, ...) averaged over the losses' window
log_processor = dict(type='mmkd.DistillLogProcessor')
model = dict(
    _delete_=True,
    type='mmkd.SegmentationDistiller',
    student={{_base_.model}},
    teacher={{_base_.model}},
    teacher_ckpt=None,
    distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss', tau=1.0, loss_weight=1.0)),
    aux_distill_losses=dict(loss_kd_aux=dict(type='mmkd.KDLoss', tau=1.0, loss_weight=0.4)))
custom_hooks = [
    dict(type='mmkd.PSKDSnapshotHook', alpha_T=0.8, interval=372,
         cls_loss_keys=['decode.loss_ce', 'aux.loss_ce'])
]
