"""mmdet's private names that mmkd relies on.

Checked against mmdet 3.3.0.
"""
from typing import Sequence

from torch import Tensor, nn


def roi_cls_logits(roi_head: nn.Module, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
    """A ``StandardRoIHead``'s classification logits on ``rois``
    (``(N, 5)`` batch-index + box rows): ``(N, num_classes + 1)``.

    mmdet scores given RoIs only through the private ``_bbox_forward`` (RoI
    extractor + box head, no sampling and no loss).
    """
    return roi_head._bbox_forward(feats, rois)['cls_score']


def cascade_stage_cls_logits(roi_head: nn.Module, stage: int, feats: Sequence[Tensor],
                             rois: Tensor, **extra: Tensor) -> Tensor:
    """One stage of a ``CascadeRoIHead`` (or HTC / SCNet, whose ``extra``
    are ``semantic_feat`` / ``glbctx_feat``) scoring ``rois``."""
    return roi_head._bbox_forward(stage, feats, rois, **extra)['cls_score']
