# KD + logit standardization (Sun et al., CVPR 2024), the authors' ImageNet
# setting: github.com/sunshangquan/logit-standardization-KD README, "Training
# on ImageNet": configs/imagenet/r34_r18/kd.yaml with --logit-stand
# --base-temp 2 --kd-weight 9, which tools/train.py turns into
# KD.TEMPERATURE 2 and KD.LOSS.KD_WEIGHT 9; CE_WEIGHT stays 1.0 (kd.yaml).
# Schedule as kd.yaml: 8 GPUs x 64 images (batch 512), lr 0.2, steps at
# 30/60/90, 100 epochs. Reported top-1: 71.42 (paper; KD 71.03 without).
_base_ = '../_base_/resnet34_resnet18_imagenet.py'
model = dict(
    student=dict(head=dict(loss=dict(loss_weight=1.0))),
    distill_losses=dict(loss_kd=dict(
        type='mmkd.KDLoss', tau=2.0, loss_weight=9.0, logit_standardize=True)))
train_dataloader = dict(batch_size=64)
optim_wrapper = dict(optimizer=dict(lr=0.2))
auto_scale_lr = dict(base_batch_size=512)
