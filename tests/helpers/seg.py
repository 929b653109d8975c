"""Tiny mmseg segmentors (from mmseg's packaged configs) and batches for CPU tests."""
import copy
import functools

import torch

BN = dict(type='BN', requires_grad=True)
#: mmseg's Cityscapes configs: DeepLabV3 / PSPNet R18-D8 students.
DEEPLABV3 = 'deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py'
PSPNET = 'pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'


def mmseg_model(config: str):
    """The ``model`` of one of mmseg's packaged configs (``mmseg::...``)."""
    return copy.deepcopy(_packaged_model(config))


@functools.lru_cache(maxsize=None)
def _packaged_model(config: str):
    from mmengine.hub import get_config
    return get_config(f'mmseg::{config}').model


def tiny_segmentor(config: str = DEEPLABV3, num_classes: int = 5, width: int = 8,
                   strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4), aux: bool = True) -> dict:
    """An mmseg packaged config shrunk: ResNet-18 (D8 by default) with stage
    widths ``width * (1, 2, 4, 8)``, BN instead of SyncBN, no pretrained
    weights, narrow heads."""
    cfg = mmseg_model(config)
    cfg.pretrained = None
    cfg.data_preprocessor.size = None
    cfg.backbone.update(depth=18, stem_channels=width, base_channels=width, norm_cfg=BN,
                        strides=strides, dilations=dilations, init_cfg=None)
    cfg.decode_head.update(in_channels=8 * width, channels=16, num_classes=num_classes,
                           norm_cfg=BN)
    if cfg.decode_head.type == 'ASPPHead':
        cfg.decode_head.dilations = (1, 2, 3, 4)
    if aux:
        cfg.auxiliary_head.update(in_channels=4 * width, channels=8, num_classes=num_classes,
                                  norm_cfg=BN)
    else:
        cfg.pop('auxiliary_head')
    return cfg.to_dict() if hasattr(cfg, 'to_dict') else copy.deepcopy(cfg)


def seg_batch(batch_size: int = 2, size: int = 64, num_classes: int = 5, ignore=None,
              seed: int = 0):
    """Normalised-looking inputs and SegDataSamples with random label blocks.

    Labels are constant on 8x8 blocks (one block per head pixel of a D8 model),
    so nearest resizing to the head resolution is exact. ``ignore`` is a
    ``(batch_size, size, size)`` bool mask set to 255.
    """
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch_size, 3, size, size, generator=gen)
    blocks = torch.randint(0, num_classes, (batch_size, size // 8, size // 8), generator=gen)
    labels = blocks.repeat_interleave(8, 1).repeat_interleave(8, 2)
    if ignore is not None:
        labels[ignore] = 255
    samples = []
    for i in range(batch_size):
        sample = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                             pad_shape=(size, size)))
        sample.gt_sem_seg = PixelData(data=labels[i:i + 1].clone())
        samples.append(sample)
    return inputs, samples
