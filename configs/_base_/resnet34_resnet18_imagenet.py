# Teacher: mmpretrain's ResNet-34 (73.62 top-1). Student: ResNet-18 from
# scratch (mmpretrain's own recipe gives 69.90; the papers' baseline 69.76).
_base_ = './cls_distill_resnet18_imagenet.py'
model = dict(
    teacher=dict(backbone=dict(depth=34)),
    teacher_ckpt='https://download.openmmlab.com/mmclassification/v0/resnet/'
    'resnet34_8xb32_in1k_20210831-f257d4e6.pth')
