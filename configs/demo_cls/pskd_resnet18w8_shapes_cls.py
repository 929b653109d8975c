# PS-KD (Kim et al., ICCV 2021) on the baseline student, no teacher: target
# (1 - a_t) onehot(y) + a_t P_{t-1}(x), a_t = 0.8 (t + 1) / 4 over the run's 4
# passes of 150 iterations (4800 images / batch 32); a_T 0.8 is the paper's
# CIFAR-100 value. The head's CE takes the soft target.
_base_ = './student_resnet18w8_shapes_cls.py'
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
model = dict(head=dict(loss=dict(type='CrossEntropyLoss', loss_weight=1.0, use_soft=True),
                       cal_acc=False))
custom_hooks = [dict(type='mmkd.PSKDHook', alpha_T=0.8, interval=150)]
