"""Distillation of mmpretrain image classifiers' class logits.

The student trains exactly as mmpretrain trains it: its own loss (label
smoothing, Mixup / CutMix soft targets and all), logged as ``loss_cls``
because mmengine logs the total under mmpretrain's key ``loss``. Its logits are read from
that same forward (a hook on its head for the duration of the call), not from
a second one. The teacher runs backbone + neck + head on the same augmented,
normalised batch under no_grad; no teacher loss or label handling runs.

DKD needs a target class per image: ``gt_label``, or, when batch augments
(Mixup, CutMix) replaced the labels by soft ``gt_score`` rows, the class with
the largest score (the dominant image of the mix; ``argmax`` picks the lower
class index on an exact tie). KD and DIST use no target.

With ``reviewkd``, the student's backbone stage outputs plus its pooled
feature (the head's input, as a 1x1 map) are fused deepest first by
``mmkd.ABFConnector`` into the teacher's channels and compared with the
teacher's stage outputs and pooled feature by ``mmkd.HCLLoss``. Both
backbones must return those stages (``out_indices=(0, 1, 2, 3)`` for
mmpretrain's ResNet). mmpretrain's ResNet applies its last ReLU in place, so
pre-activation maps (which ReviewKD's ImageNet code distils) are not
recoverable without changing the backbone: both sides use the post-ReLU
stage outputs.
"""
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from mmpretrain.models import ImageClassifier
from mmpretrain.models.heads import ArcFaceClsHead, ClsHead, ConformerHead
from torch import Tensor, nn

from mmkd.registry import MODELS
from .base_distiller import BaseDistiller, check_same_classes, with_default_preprocessor
from .capture import CallRecorder

SUPPORTED = ('mmpretrain ImageClassifier models whose head is a single-label softmax ClsHead '
             'with num_classes (LinearClsHead, StackedLinearClsHead, VisionTransformerClsHead, '
             'VigClsHead, ...); multi-label, margin (ArcFaceClsHead) and two-output '
             '(ConformerHead) heads are not supported')


def _check_supported(model: nn.Module, role: str) -> None:
    if not isinstance(model, ImageClassifier):
        raise TypeError(f'ClassificationDistiller: the {role} is a {type(model).__name__}; '
                        f'supported are {SUPPORTED}.')
    head = getattr(model, 'head', None)
    if (not isinstance(head, ClsHead) or isinstance(head, (ArcFaceClsHead, ConformerHead))
            or not isinstance(getattr(head, 'num_classes', None), int)):
        raise TypeError(f'ClassificationDistiller: the {role}\'s head is '
                        f'{type(head).__name__}; supported are {SUPPORTED}.')


def dkd_target(data_samples: list) -> Tensor:
    """One class per image: ``gt_label``, or the argmax of a soft ``gt_score``
    (Mixup / CutMix) when batch augments wrote one."""
    if 'gt_score' in data_samples[0]:
        return torch.stack([sample.gt_score for sample in data_samples]).argmax(1)
    labels = torch.cat([sample.gt_label.reshape(-1) for sample in data_samples])
    if labels.numel() != len(data_samples):
        raise ValueError('ClassificationDistiller: expected one gt_label per image (single-label '
                         f'classification), got {labels.numel()} labels for '
                         f'{len(data_samples)} images.')
    return labels


def _as_levels(stages, pooled: Tensor) -> List[Tensor]:
    """Backbone stage maps plus the pooled feature as a 1x1 map."""
    if pooled.dim() == 2:
        pooled = pooled[:, :, None, None]
    return [*stages, pooled]


@MODELS.register_module()
class ClassificationDistiller(BaseDistiller):
    """Image classifier distillation on class logits, optionally with ReviewKD.

    Args:
        student: mmpretrain config (or module) of the student classifier.
        teacher: mmpretrain config (or module) of the teacher classifier.
        teacher_ckpt: teacher checkpoint, path or URL (``None`` for tests).
        distill_losses: name -> logit loss config, e.g.
            ``dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1, beta=0.5, tau=1))``.
        reviewkd: optional ``dict(connector=dict(type='mmkd.ABFConnector', ...),
            loss=dict(type='mmkd.HCLLoss', loss_weight=...))`` over the
            backbone stages plus the pooled feature, added as ``loss_reviewkd``.
        data_preprocessor: mmpretrain configs keep it at the top level and
            mmengine's Runner passes it to the model: it becomes the
            preprocessor of a student or teacher config that has none of its
            own (the student's is the distiller's).
        **kwargs: the base's teacher options (``teacher_ckpt_hint``,
            ``teacher_precision``): see :class:`~mmkd.models.BaseDistiller`.
    """

    scope = 'mmpretrain'

    def __init__(self,
                 student: Union[dict, nn.Module],
                 teacher: Union[dict, nn.Module],
                 teacher_ckpt: Optional[str] = None,
                 distill_losses: Optional[dict] = None,
                 reviewkd: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        student, teacher = (with_default_preprocessor(m, data_preprocessor)
                            for m in (student, teacher))
        super().__init__(student, teacher, teacher_ckpt, distill_losses, reviewkd, init_cfg,
                         **kwargs)
        # Every image has a real class: with 1000 classes, class 255 must not
        # be taken for the losses' default ignore_index.
        self.set_ignore_index(None)

    def check_models(self, student: nn.Module, teacher: nn.Module) -> None:
        _check_supported(student, 'student')
        _check_supported(teacher, 'teacher')
        check_same_classes(student.head.num_classes, teacher.head.num_classes, 'head')

    def build_extra(self) -> None:
        if self.connector is None:
            return
        levels = len(self.connector.abfs)
        for role, model in (('student', self.student), ('teacher', self.teacher)):
            stages = getattr(model.backbone, 'out_indices', None)
            if stages is not None and len(tuple(stages)) != levels - 1:
                raise ValueError(
                    f'ReviewKD: the connector has {levels} levels (backbone stages + the pooled '
                    f'feature), but the {role} backbone returns {len(tuple(stages))} stage(s) '
                    f'(out_indices={tuple(stages)}). Set its out_indices to {levels - 1} '
                    'stages, e.g. out_indices=(0, 1, 2, 3) for ResNet or (1, 2, 3, 4) for '
                    'mmkd.MobileNetV1.')

    # -- training ------------------------------------------------------------------
    def student_loss(self, inputs: Tensor, data_samples: list) -> Dict[str, Tensor]:
        """mmpretrain names its loss "loss", the key mmengine writes the total
        under: it is logged as ``loss_cls``, with or without distillation."""
        losses = self.student.loss(inputs, data_samples)
        return {('loss_cls' if key == 'loss' else key): value for key, value in losses.items()}

    def capture_points(self) -> Dict[str, Tuple[object, str]]:
        points = {'head': (self.student.head, 'forward')}
        if self.connector is not None:
            points['backbone'] = (self.student.backbone, 'forward')
        return points

    def read_student(self, calls: CallRecorder, inputs: Tensor,
                     data_samples: list) -> Dict[str, Any]:
        num_classes = self.student.head.num_classes
        head = calls.calls['head'][-1] if calls.calls['head'] else None
        logits = head.output if head is not None else None
        if not (torch.is_tensor(logits) and logits.dim() == 2 and logits.shape[1] == num_classes):
            raise RuntimeError(
                'ClassificationDistiller: the student\'s head did not produce (N, '
                f'{num_classes}) logits during its loss (got '
                f'{getattr(logits, "shape", type(logits).__name__)}); '
                f'supported are {SUPPORTED}.')
        levels = None
        if self.connector is not None:
            pooled = head.arg(0, 'feats')
            pooled = pooled[-1] if isinstance(pooled, (tuple, list)) else pooled
            levels = _as_levels(calls.last('backbone').output, pooled)
        return dict(logits=logits, levels=levels)

    def teacher_forward(self, inputs: Tensor, student: Dict[str, Any]) -> Dict[str, Any]:
        """Teacher logits, and its ReviewKD levels when configured."""
        stages = self.teacher.backbone(inputs)
        feats = self.teacher.neck(stages) if self.teacher.with_neck else stages
        logits = self.teacher.head(feats)
        levels = None
        if self.connector is not None:
            levels = _as_levels(stages, feats[-1] if isinstance(feats, (tuple, list)) else feats)
        return dict(logits=logits, levels=levels)

    def distill_terms(self, student: Dict[str, Any], teacher: Dict[str, Any],
                      data_samples: list) -> Dict[str, Tensor]:
        distilled = self.distill(student['logits'], teacher['logits'], dkd_target(data_samples))
        distilled['kd_agreement'] = self.agreement(student['logits'], teacher['logits'])
        if self.connector is not None:
            distilled.update(self.review(student['levels'], teacher['levels']))
        return distilled
