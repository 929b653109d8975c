"""Distillation of two-stage detectors' RoI classification logits.

The student trains exactly as mmdet trains it (RPN, assigner, sampler and all
its losses). While its RoI head computes the box loss, the distiller records
the features, the sampled RoIs and their classification logits; the teacher
then runs backbone + neck + its RoI box head on *those* RoIs, under no_grad,
so the two models' logits are aligned row by row. Targets are the sampled
RoIs' labels (background = num_classes). This is the DKD paper's detectron2
recipe; no teacher RPN, assigner, sampler or loss runs.
"""
import contextlib
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.structures import BaseDataElement
from torch import Tensor, nn

from mmkd.registry import MODELS
from .base_distiller import BaseDistiller, build_model, check_same_classes

SUPPORTED = ('two-stage detectors (mmdet TwoStageDetector: Faster R-CNN, Mask R-CNN, ...) '
             'whose roi_head is a StandardRoIHead or a subclass with a single softmax '
             'bbox_head')


def build_detector(cfg: Union[dict, nn.Module]) -> nn.Module:
    """Build an mmdet model from a config dict (a module passes through)."""
    return build_model(cfg, 'mmdet')


def _check_supported(model: nn.Module, role: str) -> None:
    from mmdet.models.detectors import TwoStageDetector
    from mmdet.models.roi_heads import StandardRoIHead
    if not isinstance(model, TwoStageDetector):
        raise TypeError(f'DetectionDistiller: the {role} is a {type(model).__name__}; '
                        f'supported are {SUPPORTED}.')
    head = getattr(model, 'roi_head', None)
    if not isinstance(head, StandardRoIHead) or not isinstance(
            getattr(head, 'bbox_head', None), nn.Module) or isinstance(head.bbox_head, nn.ModuleList):
        raise TypeError(f'DetectionDistiller: the {role}\'s roi_head is '
                        f'{type(head).__name__}; supported are {SUPPORTED}.')
    if getattr(head.bbox_head, 'custom_cls_channels', False) or getattr(
            getattr(head.bbox_head, 'loss_cls', None), 'use_sigmoid', False):
        raise TypeError(f'DetectionDistiller: the {role}\'s bbox_head scores classes with a '
                        'sigmoid; logit distillation needs softmax scores over num_classes + 1 '
                        '(background last).')


class _RoICapture:
    """Records what the student's RoI head saw while computing its box loss."""

    def __init__(self) -> None:
        self.feats: Optional[Tuple[Tensor, ...]] = None
        self.sampling_results = None
        self.cls_score: Optional[Tensor] = None

    @contextlib.contextmanager
    def around(self, roi_head: nn.Module):
        original = roi_head.bbox_loss

        def bbox_loss(x, sampling_results, *args, **kwargs):
            results = original(x, sampling_results, *args, **kwargs)
            self.feats, self.sampling_results = x, sampling_results
            self.cls_score = results['cls_score']
            return results

        roi_head.bbox_loss = bbox_loss  # this call only; restored below
        try:
            yield self
        finally:
            del roi_head.bbox_loss


@MODELS.register_module()
class DetectionDistiller(BaseDistiller):
    """Two-stage detector distillation on RoI logits, optionally with ReviewKD.

    Args:
        student: mmdet config (or module) of the student detector.
        teacher: mmdet config (or module) of the teacher detector.
        teacher_ckpt: teacher checkpoint, path or URL (``None`` for tests).
        distill_losses: name -> logit loss config, e.g.
            ``dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1, beta=0.25, tau=1))``.
        reviewkd: optional ``dict(connector=dict(type='mmkd.ABFConnector', ...),
            loss=dict(type='mmkd.HCLLoss', loss_weight=...))``; distils the
            neck outputs (FPN P2-P6) through ABF fusion, added as
            ``loss_reviewkd``.
    """

    scope = 'mmdet'

    def __init__(self,
                 student: Union[dict, nn.Module],
                 teacher: Union[dict, nn.Module],
                 teacher_ckpt: Optional[str] = None,
                 distill_losses: Optional[dict] = None,
                 reviewkd: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(student, teacher, teacher_ckpt, distill_losses, reviewkd, init_cfg)
        self.num_classes = self.student.roi_head.bbox_head.num_classes
        # Every sampled RoI has a real label (background = num_classes), so
        # no RoI row is ever ignored: a large vocabulary (LVIS, 1203 classes)
        # must not collide with the losses' default ignore_index=255.
        for loss in self.distill_losses.values():
            if hasattr(loss, 'ignore_index'):
                loss.ignore_index = None

    def check_models(self, student: nn.Module, teacher: nn.Module) -> None:
        _check_supported(student, 'student')
        _check_supported(teacher, 'teacher')
        check_same_classes(student.roi_head.bbox_head.num_classes,
                           teacher.roi_head.bbox_head.num_classes, 'bbox_head')

    def build_extra(self) -> None:
        if self.connector is not None and not (self.student.with_neck and self.teacher.with_neck):
            raise TypeError('ReviewKD distils neck (FPN) outputs; both detectors need a neck.')

    # -- training ------------------------------------------------------------------
    def distill_losses_of(self, inputs: Tensor, data_samples: List[BaseDataElement]
                          ) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
        capture = _RoICapture()
        with capture.around(self.student.roi_head):
            losses = self.student.loss(inputs, data_samples)
        if capture.sampling_results is None:
            raise RuntimeError('the student\'s roi_head never computed its box loss; '
                               'DetectionDistiller needs a RoI head with a bbox branch.')
        from mmdet.structures.bbox import bbox2roi
        rois = bbox2roi([res.priors for res in capture.sampling_results])
        labels = self.student.roi_head.bbox_head.get_targets(
            capture.sampling_results, self.student.roi_head.train_cfg, concat=True)[0]
        with torch.no_grad():
            teacher_feats = self.teacher.extract_feat(inputs)
            teacher_logits = self.teacher.roi_head._bbox_forward(teacher_feats, rois)['cls_score']
        student_logits = capture.cls_score
        distilled = self.distill(student_logits, teacher_logits, labels)
        distilled['kd_agreement'] = self.agreement(student_logits, teacher_logits)
        distilled.update(self.review(capture.feats, teacher_feats))
        return losses, distilled
