# DIST + mimic (DIST's COCO table, 41.8 AP): the same pair plus an MSE mimic of
# the FPN outputs P2-P6. Both necks have 256 channels, so no adapter is
# needed. DIST does not publish the mimic weight; 1.0 is mmkd's default.
_base_ = './faster_rcnn_x101_cascade_r50_coco.py'
model = dict(mimic=dict(type='mmkd.FPNMimicLoss', student_channels=256, teacher_channels=256,
                        num_levels=5, loss_weight=1.0))
