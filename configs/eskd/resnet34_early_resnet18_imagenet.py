# ESKD's second remedy, an early-stopped teacher: the ESKD student recipe with
# a ResNet-34 teacher taken at epoch 30 of its own 100-epoch training (about
# 1/3 of its schedule, as ESKD advises). Train that teacher with
# configs/eskd/resnet34_imagenet_teacher.py, which keeps
# early_epoch_30.pth next to its usual checkpoints.
_base_ = './resnet34_resnet18_imagenet.py'
model = dict(teacher_ckpt='work_dirs/resnet34_imagenet_teacher/early_epoch_30.pth')
