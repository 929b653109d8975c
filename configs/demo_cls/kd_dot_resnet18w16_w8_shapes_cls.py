# The demo's KD row (T 4, CE 0.1 + KD 0.9) with DOT (Zhao et al., ICCV 2023),
# which is defined for SGD only: kd_sgd's SGD (lr 0.025, momentum 0.9, weight
# decay 5e-4) with DOT's delta 0.09 of mdistiller's ImageNet dot.yaml (task
# momentum 0.81, KD momentum 0.99). Compare with kd_sgd, not with the AdamW rows.
_base_ = './kd_sgd_resnet18w16_w8_shapes_cls.py'
optim_wrapper = dict(type='mmkd.DOTOptimWrapper', delta=0.09)
