"""Distillation of two-stage detectors' RoI classification logits.

The student trains exactly as mmdet trains it (RPN, assigner, sampler and all
its losses). While its RoI head computes the box loss, the distiller records
the features, the sampled RoIs and their classification logits; the teacher
then runs backbone + neck + its RoI box head on *those* RoIs, under no_grad,
so the two models' logits are aligned row by row. Targets are the sampled
RoIs' labels (background = num_classes). This is the DKD paper's detectron2
recipe; no teacher RPN, assigner, sampler or loss runs.

The teacher may be a cascade (Cascade R-CNN, Cascade Mask R-CNN, HTC, SCNet):
its box-head stages score the student's RoIs, and ``teacher_stage`` says
which logits teach. The default, ``'mean'``, averages the stages' logits, as
mmdet's cascade inference averages its stages' scores: that average is what
the teacher's reported AP is measured with. (mmdet refines the boxes between
stages at inference; here every stage scores the student's own RoIs, so that
rows stay aligned with the student's.) ``'last'`` or a stage index picks one
stage.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from mmdet.models.detectors import TwoStageDetector
from mmdet.models.roi_heads import CascadeRoIHead, SparseRoIHead, StandardRoIHead
import torch
from mmdet.structures.bbox import bbox2roi
from torch import Tensor, nn

from mmkd.hosts.mmdet import cascade_stage_cls_logits, roi_cls_logits
from mmkd.registry import MODELS
from .base_distiller import build_model, check_same_classes
from .capture import CallRecorder
from .detector_base import NeckDistiller
from .teacher_precision import to_float32

SUPPORTED = ('two-stage detectors (mmdet TwoStageDetector: Faster R-CNN, Mask R-CNN, ...) '
             'whose roi_head is a StandardRoIHead or a subclass with a single softmax '
             'bbox_head; teachers may also be cascades (CascadeRoIHead: Cascade R-CNN, '
             'Cascade Mask R-CNN, HTC, SCNet) with softmax stages. Single-stage detectors '
             '(RetinaNet, FCOS, ATSS, GFL, ...) use mmkd.DenseDistiller')


def build_detector(cfg: Union[dict, nn.Module]) -> nn.Module:
    """Build an mmdet model from a config dict (a module passes through)."""
    return build_model(cfg, 'mmdet')


def _check_softmax(bbox_head: nn.Module, role: str) -> None:
    if getattr(bbox_head, 'custom_cls_channels', False) or getattr(
            getattr(bbox_head, 'loss_cls', None), 'use_sigmoid', False):
        raise TypeError(f'DetectionDistiller: the {role}\'s bbox_head '
                        f'({type(bbox_head).__name__}) scores classes with a sigmoid or a '
                        'custom activation (e.g. Seesaw loss); RoI logit distillation needs '
                        'softmax scores over num_classes + 1 (background last): supported are '
                        f'{SUPPORTED}.')


def _box_heads(model: nn.Module, role: str, allow_cascade: bool) -> List[nn.Module]:
    """The RoI box heads of a supported two-stage detector (one, or a cascade's stages)."""
    if not isinstance(model, TwoStageDetector):
        raise TypeError(f'DetectionDistiller: the {role} is a {type(model).__name__}; '
                        f'supported are {SUPPORTED}.')
    head = getattr(model, 'roi_head', None)
    if isinstance(head, CascadeRoIHead) and not isinstance(head, SparseRoIHead):
        if not allow_cascade:
            raise TypeError(
                f'DetectionDistiller: the student\'s roi_head is {type(head).__name__}; a cascade '
                'student is not supported (its stages score different, refined RoIs). Distil '
                'into a two-stage student with a StandardRoIHead (Faster / Mask R-CNN); '
                f'cascades are supported as teachers. Supported are {SUPPORTED}.')
        heads = list(head.bbox_head)
    elif isinstance(head, StandardRoIHead) and isinstance(
            getattr(head, 'bbox_head', None), nn.Module) and not isinstance(
                head.bbox_head, nn.ModuleList):
        heads = [head.bbox_head]
    else:
        raise TypeError(f'DetectionDistiller: the {role}\'s roi_head is '
                        f'{type(head).__name__}; supported are {SUPPORTED}.')
    if type(head).__name__ == 'TridentRoIHead':
        raise TypeError(f'DetectionDistiller: the {role} is a TridentNet, whose branches see '
                        'the image three times in training but once at inference, so a teacher '
                        f'cannot score its RoIs; supported are {SUPPORTED}.')
    for bbox_head in heads:
        if getattr(bbox_head, 'num_instance', 1) != 1:  # CrowdDet: K boxes per RoI
            raise TypeError(f'DetectionDistiller: the {role}\'s bbox_head '
                            f'({type(bbox_head).__name__}) predicts {bbox_head.num_instance} '
                            f'instances per RoI; supported are {SUPPORTED}.')
        _check_softmax(bbox_head, role)
    return heads


def cascade_logits(roi_head: nn.Module, feats: Sequence[Tensor], rois: Tensor,
                   stages: Sequence[int]) -> Tensor:
    """Mean of the given cascade stages' classification logits on ``rois``.

    HTC's semantic branch and SCNet's global context feed the box heads as
    at mmdet's inference.
    """
    extra = {}
    if getattr(roi_head, 'with_semantic', False):
        extra['semantic_feat'] = roi_head.semantic_head(feats)[1]
    if getattr(roi_head, 'with_glbctx', False):
        extra['glbctx_feat'] = roi_head.glbctx_head(feats)[1]
    total = None
    for stage in stages:
        logits = cascade_stage_cls_logits(roi_head, stage, feats, rois, **extra)
        total = logits if total is None else total + logits
    return total / len(stages)


@MODELS.register_module()
class DetectionDistiller(NeckDistiller):
    """Two-stage detector distillation on RoI logits, optionally with ReviewKD
    and an FPN feature mimic.

    Args:
        student: mmdet config (or module) of the student detector.
        teacher: mmdet config (or module) of the teacher detector; a
            two-stage detector or a cascade.
        teacher_ckpt: teacher checkpoint, path or URL (``None`` for tests).
        distill_losses: name -> logit loss config, e.g.
            ``dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1, beta=0.25, tau=1))``.
        reviewkd: optional ``dict(connector=dict(type='mmkd.ABFConnector', ...),
            loss=dict(type='mmkd.HCLLoss', loss_weight=...))``; distils the
            neck outputs (FPN P2-P6) through ABF fusion, added as
            ``loss_reviewkd``.
        mimic: optional ``dict(type='mmkd.FPNMimicLoss', ...)``: MSE between
            the necks' outputs (adapters when channels differ), added as
            ``loss_mimic``.
        teacher_stage: a cascade teacher's logits: ``'mean'`` of its stages
            (default, as mmdet's cascade inference), ``'last'``, or a stage
            index. Ignored for a single-stage RoI head.
        **kwargs: the base's teacher options (``teacher_ckpt_hint``,
            ``teacher_precision``): see :class:`~mmkd.models.BaseDistiller`.
    """

    scope = 'mmdet'

    def __init__(self,
                 student: Union[dict, nn.Module],
                 teacher: Union[dict, nn.Module],
                 teacher_ckpt: Optional[str] = None,
                 distill_losses: Optional[dict] = None,
                 reviewkd: Optional[dict] = None,
                 mimic: Optional[dict] = None,
                 teacher_stage: Union[str, int] = 'mean',
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(student, teacher, teacher_ckpt, distill_losses, reviewkd, mimic, init_cfg,
                         **kwargs)
        self.num_classes = self.student.roi_head.bbox_head.num_classes
        # Every sampled RoI has a real label (background = num_classes), so
        # no RoI row is ever ignored: a large vocabulary (LVIS, 1203 classes)
        # must not collide with the losses' default ignore_index=255.
        self.set_ignore_index(None)
        for loss in self.distill_losses.values():
            if getattr(loss, 'use_sigmoid', False):
                raise ValueError(f'{type(loss).__name__} has use_sigmoid=True, but RoI heads '
                                 'score classes with a softmax: drop use_sigmoid.')
        self.teacher_stages = self._stages(teacher_stage)
        self.teacher_stage = teacher_stage

    def _stages(self, teacher_stage: Union[str, int]) -> Optional[List[int]]:
        """Cascade stages whose mean teaches (None: not a cascade)."""
        num = getattr(self.teacher.roi_head, 'num_stages', None)
        if num is None:
            return None
        if teacher_stage == 'mean':
            return list(range(num))
        if teacher_stage == 'last':
            return [num - 1]
        if isinstance(teacher_stage, int) and not isinstance(teacher_stage, bool) and (
                -num <= teacher_stage < num):
            return [teacher_stage % num]
        raise ValueError(f"teacher_stage must be 'mean', 'last' or a stage index in "
                         f'[0, {num}) of the cascade teacher; got {teacher_stage!r}.')

    def check_models(self, student: nn.Module, teacher: nn.Module) -> None:
        student_heads = _box_heads(student, 'student', allow_cascade=False)
        for stage, head in enumerate(_box_heads(teacher, 'teacher', allow_cascade=True)):
            check_same_classes(student_heads[0].num_classes, head.num_classes,
                               'bbox_head' if stage == 0 else f'bbox_head (cascade stage {stage})')

    def teacher_roi_logits(self, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
        """The teacher's classification logits on ``rois`` (call under no_grad)."""
        head = self.teacher.roi_head
        if self.teacher_stages is None:
            return roi_cls_logits(head, feats, rois)
        return cascade_logits(head, feats, rois, self.teacher_stages)

    # -- training ------------------------------------------------------------------
    def capture_points(self) -> Dict[str, Tuple[object, str]]:
        return {'RoI box loss': (self.student.roi_head, 'bbox_loss')}

    def read_student(self, calls: CallRecorder, inputs: Tensor,
                     data_samples: list) -> Dict[str, Any]:
        if not calls.calls['RoI box loss']:
            raise RuntimeError('the student\'s roi_head never computed its box loss; '
                               'DetectionDistiller needs a RoI head with a bbox branch.')
        call = calls.last('RoI box loss')
        feats, sampling_results = call.arg(0, 'x'), call.arg(1, 'sampling_results')
        roi_head = self.student.roi_head
        labels = roi_head.bbox_head.get_targets(sampling_results, roi_head.train_cfg,
                                                concat=True)[0]
        return dict(logits=call.output['cls_score'], labels=labels, feats=feats,
                    rois=bbox2roi([res.priors for res in sampling_results]))

    def teacher_forward(self, inputs: Tensor, student: Dict[str, Any]) -> Dict[str, Any]:
        feats = self.teacher.extract_feat(inputs)  # in teacher_precision: the bulk of the cost
        # mmcv's RoIAlign has no bf16 kernel (and no half one on the CPU): the
        # box head scores the RoIs in float32, a small part of the cost.
        with torch.autocast(inputs.device.type, enabled=False):
            logits = self.teacher_roi_logits(to_float32(feats), student['rois'])
        return dict(feats=feats, logits=logits)

    def distill_terms(self, student: Dict[str, Any], teacher: Dict[str, Any],
                      data_samples: list) -> Dict[str, Tensor]:
        distilled = self.distill(student['logits'], teacher['logits'], student['labels'])
        distilled['kd_agreement'] = self.agreement(student['logits'], teacher['logits'])
        distilled.update(self.neck_terms(student['feats'], teacher['feats']))
        return distilled
