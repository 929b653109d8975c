# Demo: ReviewKD on the FPN outputs P2-P6 (student 32 -> teacher 64 channels),
# ABF fusion + HCL with the paper's R101 -> R18 COCO weight, 1.2.
_base_ = './_base_/distill_r18_r18w16_shapes.py'
model = dict(
    reviewkd=dict(
        connector=dict(
            type='mmkd.ABFConnector', in_channels=[32] * 5, out_channels=[64] * 5,
            mid_channels=64),
        loss=dict(type='mmkd.HCLLoss', loss_weight=1.2)))
