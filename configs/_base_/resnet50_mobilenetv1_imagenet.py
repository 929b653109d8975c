# Teacher: mmpretrain's ResNet-50 (76.55 top-1). Student: MobileNetV1 1.0
# (mmkd.MobileNetV1, 4.2M parameters) from scratch, on the same recipe.
_base_ = './cls_distill_resnet50_imagenet.py'
model = dict(
    student=dict(
        backbone=dict(_delete_=True, type='mmkd.MobileNetV1', out_indices=(4, )),
        head=dict(in_channels=1024)),
    teacher_ckpt='https://download.openmmlab.com/mmclassification/v0/resnet/'
    'resnet50_8xb32_in1k_20210831-ea4938fc.pth')
