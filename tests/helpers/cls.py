"""Tiny mmpretrain image classifiers and batches for CPU tests."""
import torch

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def tiny_resnet(num_classes: int = 5, width: int = 8, depth: int = 18,
                out_indices=(3, ), mean=MEAN, augments=None) -> dict:
    """An mmpretrain ImageClassifier: narrow ResNet, GAP neck, linear head."""
    model = dict(
        type='ImageClassifier',
        backbone=dict(type='ResNet', depth=depth, stem_channels=width, base_channels=width,
                      out_indices=out_indices),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=8 * width,
                  loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
        data_preprocessor=dict(num_classes=num_classes, mean=mean, std=STD, to_rgb=True))
    if augments is not None:
        model['train_cfg'] = dict(augments=augments)
    return model


def cls_batch(model, labels, size: int = 32, seed: int = 0, training: bool = True):
    """A preprocessed batch (inputs, data_samples) with the given labels."""
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(seed)
    packed = dict(
        inputs=[torch.randint(0, 256, (3, size, size), generator=gen, dtype=torch.uint8)
                for _ in labels],
        data_samples=[DataSample().set_gt_label(int(label)) for label in labels])
    data = model.data_preprocessor(packed, training)
    return data['inputs'], data['data_samples']
