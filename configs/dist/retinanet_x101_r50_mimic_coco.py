# DIST + mimic (DIST's COCO table, 40.1 AP): the same pair plus an MSE mimic of
# RetinaNet's FPN outputs P3-P7 (256 channels each, no adapter needed). DIST
# does not publish the mimic weight; 1.0 is mmkd's default.
_base_ = './retinanet_x101_r50_coco.py'
model = dict(mimic=dict(type='mmkd.FPNMimicLoss', student_channels=256, teacher_channels=256,
                        num_levels=5, loss_weight=1.0))
