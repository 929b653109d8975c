# PS-KD on detection: mmdet's Faster R-CNN R50-FPN 1x, taught by its own
# snapshot from the end of the previous epoch (the teacher is the student's
# model with teacher_ckpt=None; PSKDSnapshotHook copies the weights at each
# epoch boundary, epoch 1 trains alone). The RoI head's loss_cls is scaled by
# 1 - a_t and KL(snapshot || student) on the student's sampled RoIs by a_t:
# exactly the gradient of CE with the target (1 - a_t) onehot + a_t P_{t-1}.
# a_T = 0.8, the paper's default (it reports no COCO setting).
_base_ = '../_base_/faster_rcnn_distill_coco.py'
model = dict(distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss', tau=1.0, loss_weight=1.0)))
custom_hooks = [dict(type='mmkd.PSKDSnapshotHook', alpha_T=0.8, cls_loss_keys=['loss_cls'])]
