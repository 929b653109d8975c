# DIST (decode + auxiliary head, as ./deeplabv3_r101_r18_cityscapes.py) plus
# ReviewKD on the backbone stage outputs. ReviewKD has no published
# segmentation setting; our choice: all four ResNet stages (strides 4, 8, 8, 8
# for these D8 backbones: the last three share one resolution), student
# 64/128/256/512 -> teacher 256/512/1024/2048 channels through ABF fusion of
# width 256, and HCL weight 1.2, the paper's weight for this R101 -> R18 pair
# on COCO. The ABF connector trains with the student and is not exported.
_base_ = './deeplabv3_r101_r18_cityscapes.py'
model = dict(
    reviewkd=dict(
        connector=dict(type='mmkd.ABFConnector', in_channels=[64, 128, 256, 512],
                       out_channels=[256, 512, 1024, 2048], mid_channels=256),
        loss=dict(type='mmkd.HCLLoss', loss_weight=1.2)))
