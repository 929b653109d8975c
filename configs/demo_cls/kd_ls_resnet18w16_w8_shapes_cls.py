# KD + logit standardization (Sun et al., CVPR 2024) on the demo's KD row with
# the LS authors' flags (their README: --logit-stand --base-temp 2 --kd-weight 9,
# the same on CIFAR-100 and ImageNet): base temperature 2, CE 1 + KD 9
# (CE_WEIGHT stays 1.0 there). Not tuned on this benchmark.
_base_ = './_base_/distill_resnet18w16_w8_shapes_cls.py'
model = dict(
    distill_losses=dict(loss_kd=dict(
        type='mmkd.KDLoss', tau=2.0, loss_weight=9.0, logit_standardize=True)))
