"""What the GPU tests share: the device they run on, the CUDA-only skips and
one small distiller per task (the query distiller too) with a batch (from
tests/helpers)."""
import copy
import os

import pytest
import torch

from tests.helpers.cls import cls_batch, tiny_resnet
from tests.helpers.det import SIGMOID_LOSSES, det_batch, tiny, tiny_faster_rcnn
from tests.helpers.detr import query_distiller as detr_distiller
from tests.helpers.seg import seg_batch, tiny_segmentor


def check_device() -> str:
    """``'cuda'`` or ``'cpu'``: CUDA when torch sees a GPU, unless
    ``MMKD_GPU_CHECK_DEVICE`` names one."""
    forced = os.environ.get('MMKD_GPU_CHECK_DEVICE')
    if forced:
        return forced
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def cuda_only(reason: str) -> None:
    """Skip the rest of a test on the CPU, naming the CUDA-only assertion."""
    if check_device() != 'cuda':
        pytest.skip(f'CUDA only: {reason}')


KD = dict(type='mmkd.KDLoss', tau=2.0)
DKD = dict(type='mmkd.DKDLoss', alpha=1.0, beta=2.0, tau=2.0)
DIST = dict(type='mmkd.DISTLoss', tau=1.0)


def det_distiller(precision):
    from mmkd.registry import MODELS
    model = MODELS.build(dict(type='mmkd.DetectionDistiller', student=tiny_faster_rcnn(),
                              teacher=tiny_faster_rcnn(), teacher_precision=precision,
                              distill_losses=dict(loss_dkd=DKD, loss_dist=DIST)))
    return model, det_batch(model.student)


def dense_distiller(precision):
    from mmkd.registry import MODELS
    model = MODELS.build(dict(type='mmkd.DenseDistiller', student=tiny(), teacher=tiny(),
                              teacher_precision=precision,
                              distill_losses=copy.deepcopy(SIGMOID_LOSSES)))
    return model, det_batch(model.student)


def seg_distiller(precision):
    from mmkd.registry import MODELS
    model = MODELS.build(dict(type='mmkd.SegmentationDistiller', student=tiny_segmentor(),
                              teacher=tiny_segmentor(width=16), teacher_precision=precision,
                              distill_losses=dict(loss_dist=DIST, loss_kd=KD),
                              aux_distill_losses=dict(loss_dist_aux=dict(DIST, loss_weight=0.4))))
    ignore = torch.zeros(2, 64, 64, dtype=torch.bool)
    ignore[:, :8] = True  # ignored pixels, as Cityscapes has
    return model, seg_batch(ignore=ignore)


def cls_distiller(precision):
    from mmkd.registry import MODELS
    model = MODELS.build(dict(type='mmkd.ClassificationDistiller', student=tiny_resnet(),
                              teacher=tiny_resnet(width=16), teacher_precision=precision,
                              distill_losses=dict(loss_dkd=DKD, loss_dist=DIST)))
    return model, cls_batch(model.student, [0, 1, 2, 3])


def query_distiller(precision):
    model = detr_distiller('dino', teacher_precision=precision)
    return model, det_batch(model.student)


#: task -> builder(teacher_precision) -> (distiller, (inputs, data_samples))
DISTILLERS = {'detection': det_distiller, 'dense': dense_distiller,
              'segmentation': seg_distiller, 'classification': cls_distiller,
              'query': query_distiller}
