"""Run mmcv's RoIAlign, NMS, deformable attention and mmdet's sigmoid focal
loss without mmcv's CUDA kernels, for a GPU check whose mmcv was built with
its CPU ops only.

mmcv 2.1.0 predates CUDA 13; when its CUDA ops cannot be built inside the
check's time budget, the check builds the CPU ops and calls
:func:`route_through_torchvision` in every process that runs CUDA tensors
through mmdet: RoIAlign and NMS then run torchvision's CUDA kernels (the same
operations: torchvision's ``roi_align`` with ``aligned``, ``nms`` with
mmcv's ``offset=0``), deformable attention takes mmcv's own pure-torch path
and mmdet's sigmoid focal loss runs in plain torch. The
report says so. Nothing in mmkd's training code calls this.
"""
import importlib
from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor

from . import ENV_FLAG  # noqa: F401 - the flag that asks for this routing


def _roi_align(input: Tensor, rois: Tensor, output_size, spatial_scale: float = 1.0,
               sampling_ratio: int = 0, pool_mode: str = 'avg',
               aligned: bool = True) -> Tensor:
    """mmcv's ``roi_align`` signature, torchvision's kernel (average pooling only)."""
    from torchvision.ops import roi_align
    if pool_mode != 'avg':
        raise NotImplementedError('the GPU check routes RoIAlign through torchvision, which '
                                  f'only average-pools; got pool_mode={pool_mode!r}.')
    # In float32 (as torchvision's own autocast kernel does): bf16 box
    # coordinates would move the sampling points.
    return roi_align(input.float(), rois.float(), output_size, spatial_scale, sampling_ratio,
                     aligned).to(input.dtype)


class _TorchvisionNMS:
    """Stands in for ``mmcv.ops.nms.NMSop`` (called as ``NMSop.apply(...)``)."""

    @staticmethod
    def apply(boxes: Tensor, scores: Tensor, iou_threshold: float, offset: int,
              score_threshold: float, max_num: int) -> Tensor:
        from torchvision.ops import nms
        if offset != 0:
            raise NotImplementedError('torchvision\'s nms has no offset=1 (mmdet 3 uses 0).')
        valid = None
        if score_threshold > 0:  # as mmcv's NMSop: filter, then map indices back
            valid = torch.nonzero(scores > score_threshold).squeeze(1)
            boxes, scores = boxes[valid], scores[valid]
        keep = nms(boxes.float(), scores.float(), float(iou_threshold))
        if max_num > 0:
            keep = keep[:max_num]
        return keep if valid is None else valid[keep]


def _focal_elementwise(pred: Tensor, target: Tensor, gamma: float = 2.0, alpha: float = 0.25,
                       weight=None, reduction: str = 'none') -> Tensor:
    """mmcv's ``sigmoid_focal_loss`` (labels in ``[0, C]``, ``C`` = background)
    written in torch: the per-element loss ``(N, C)``."""
    if weight is not None or reduction != 'none':
        raise NotImplementedError('only the call mmdet makes (weight=None, reduction=none).')
    classes = pred.shape[1]
    onehot = F.one_hot(target, classes + 1)[:, :classes].to(pred.dtype)
    prob = pred.sigmoid()
    pt = (1 - prob) * onehot + prob * (1 - onehot)
    factor = (alpha * onehot + (1 - alpha) * (1 - onehot)) * pt.pow(gamma)
    return F.binary_cross_entropy_with_logits(pred, onehot, reduction='none') * factor


def route_through_torchvision() -> List[str]:
    """Patch mmcv / mmdet in this process; returns what was routed."""
    # The modules, not mmcv.ops' functions of the same names (`import
    # mmcv.ops.nms as m` would give the function).
    mmcv_msda = importlib.import_module('mmcv.ops.multi_scale_deform_attn')
    mmcv_nms = importlib.import_module('mmcv.ops.nms')
    mmcv_roi_align = importlib.import_module('mmcv.ops.roi_align')
    mmcv_roi_align.roi_align = _roi_align  # RoIAlign.forward looks it up per call
    mmcv_nms.NMSop = _TorchvisionNMS  # nms() looks it up per call
    # Deformable attention (DINO, Deformable DETR) takes mmcv's own pure-torch
    # path (grid_sample) when it believes there is no CUDA build.
    mmcv_msda.IS_CUDA_AVAILABLE = False
    routed = ['mmcv.ops.RoIAlign -> torchvision.ops.roi_align',
              'mmcv.ops.nms -> torchvision.ops.nms',
              'mmcv.ops.MultiScaleDeformableAttention -> its pure-torch path']
    try:
        focal = importlib.import_module('mmdet.models.losses.focal_loss')
    except ImportError:
        return routed
    focal._sigmoid_focal_loss = _focal_elementwise
    return routed + ['mmdet sigmoid focal loss -> torch']
