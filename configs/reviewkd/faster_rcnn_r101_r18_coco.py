# ReviewKD on FPN outputs P2-P6 (ABF fusion + HCL), loss weight 1.2 as in the paper.
_base_ = '../_base_/faster_rcnn_r101_r18_coco.py'
model = dict(
    reviewkd=dict(
        connector=dict(
            type='mmkd.ABFConnector', in_channels=[256] * 5, out_channels=[256] * 5,
            mid_channels=256),
        loss=dict(type='mmkd.HCLLoss', loss_weight=1.2)))
