"""Distillation of single-stage (dense) detectors' per-prior class logits.

The student trains exactly as mmdet trains it (its head's assigner and
losses). While its head runs forward inside its own loss, the distiller
records the neck features and the per-level classification maps; the teacher
runs backbone + neck + head forward under no_grad on the same batch (no
teacher assigner or loss). Rows are *priors* (anchors or points) over all
levels, aligned one to one, so both heads must lay out their priors the same
way (strides, priors per location, anchor shapes): a mismatch stops the build.

Which priors: all of them, as DIST distils every output of its models and
every pixel for segmentation: the intra-class relation then runs over all
priors of the batch, and no assigner decides what the teacher teaches. At
RetinaNet's 1333x800 that is ~120k anchors x 80 classes per image; the
chunked losses keep their memory flat (docs/benchmarks.md).

YOLOX's class logits are distilled without its objectness (which its
inference multiplies in). Most dense heads score classes with sigmoids (no background class): use
``mmkd.KDLoss`` / ``mmkd.DISTLoss`` with ``use_sigmoid=True`` (per-class
binary KL; DIST on sigmoids). Softmax heads (SSD) take the plain losses. DKD
is refused: it splits a softmax into the target class and the rest, which a
sigmoid head does not have, and needs per-prior labels that only the
student's assigner knows.
"""
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from mmdet.models.dense_heads import AnchorFreeHead, AnchorHead, YOLOXHead
from mmdet.models.detectors import SingleStageDetector
from torch import Tensor, nn

from mmkd.registry import MODELS
from .base_distiller import check_same_classes
from .capture import CallRecorder
from .detector_base import NeckDistiller

SUPPORTED = ('single-stage detectors (mmdet SingleStageDetector) whose bbox_head predicts '
             'per-prior class logits on an anchor or point grid: AnchorHead subclasses '
             '(RetinaNet, ATSS, GFL, FSAF, FreeAnchor, PAA, SSD, YOLOF, TOOD, RTMDet, ...), '
             'AnchorFreeHead subclasses (FCOS, FoveaBox, AutoAssign, VFNet, ...) and YOLOXHead. '
             'Two-stage detectors use mmkd.DetectionDistiller')


def _dense_head(model: nn.Module, role: str) -> nn.Module:
    if not isinstance(model, SingleStageDetector):
        raise TypeError(f'DenseDistiller: the {role} is a {type(model).__name__}; supported '
                        f'are {SUPPORTED}.')
    if type(model).__name__ in ('KnowledgeDistillationSingleStageDetector', 'LAD'):
        raise TypeError(f'DenseDistiller: the {role} ({type(model).__name__}) is itself a '
                        'distiller with its own teacher; give its plain detector (the '
                        f'student config without the teacher). Supported are {SUPPORTED}.')
    head = getattr(model, 'bbox_head', None)
    if not isinstance(head, (AnchorHead, AnchorFreeHead, YOLOXHead)) or not hasattr(
            head, 'prior_generator') or not hasattr(head, 'cls_out_channels'):
        raise TypeError(f'DenseDistiller: the {role}\'s bbox_head is {type(head).__name__}; '
                        f'supported are {SUPPORTED}.')
    return head


def _floats(x) -> list:
    return [round(float(v), 6) for v in (x.tolist() if torch.is_tensor(x) else x)]


def prior_layout(head: nn.Module) -> Dict[str, object]:
    """What fixes which prior each row of a dense head's output is."""
    gen = head.prior_generator
    layout = dict(prior_generator=type(gen).__name__,
                  strides=[tuple(int(v) for v in s) for s in gen.strides],
                  priors_per_location=list(gen.num_base_priors))
    if hasattr(gen, 'base_anchors'):  # anchors: their shapes, per level
        layout['anchors'] = [[_floats(box) for box in level] for level in gen.base_anchors]
    if hasattr(gen, 'offset'):  # points
        layout['offset'] = float(gen.offset)
    return layout


def _show(layout: Dict[str, object]) -> str:
    text = {k: v for k, v in layout.items() if k != 'anchors'}
    if 'anchors' in layout:  # width x height of the first level's base anchors
        text['anchor_sizes_level0'] = [(round(b[2] - b[0], 2), round(b[3] - b[1], 2))
                                       for b in layout['anchors'][0]]
    return str(text)


def check_same_priors(student_head: nn.Module, teacher_head: nn.Module) -> None:
    student, teacher = prior_layout(student_head), prior_layout(teacher_head)
    if student != teacher:
        raise ValueError(
            'DenseDistiller aligns the two heads\' outputs prior by prior, so student and '
            'teacher need the same prior layout (prior generator, strides, priors per '
            f'location, anchor shapes).\n  student: {_show(student)}\n  teacher: '
            f'{_show(teacher)}\nGive the teacher\'s anchor_generator / strides to the student '
            '(or pick a teacher with the student\'s).')


def prior_logits(cls_scores: Sequence[Tensor], head: nn.Module) -> Tensor:
    """Per-level ``(B, A_l * C, H_l, W_l)`` class maps as ``(N, C, L)`` rows.

    Every (image, prior) is one row. With the same number ``A`` of priors per
    location on every level this is ``(B * A, C, sum_l H_l W_l)`` (one copy);
    otherwise ``(B, C, sum_l A_l H_l W_l)``. The order of rows is the same
    for student and teacher, which is all the losses need.
    """
    num_cls = head.cls_out_channels
    priors = head.prior_generator.num_base_priors
    if len(cls_scores) != len(priors):
        raise RuntimeError(f'{type(head).__name__} returned {len(cls_scores)} levels of class '
                           f'scores for {len(priors)} prior levels; DenseDistiller supports '
                           f'{SUPPORTED}.')
    levels = []
    for level, (scores, num) in enumerate(zip(cls_scores, priors)):
        b, ch, h, w = scores.shape
        if ch != num * num_cls:
            raise RuntimeError(
                f'{type(head).__name__} level {level}: {ch} class channels, but '
                f'{num} priors per location x {num_cls} classes were expected; this head does '
                f'not output per-prior class logits. DenseDistiller supports {SUPPORTED}.')
        levels.append(scores.reshape(b, num, num_cls, h * w))
    if len(set(priors)) == 1:
        return torch.cat([x.flatten(0, 1) for x in levels], 2)
    return torch.cat([x.transpose(1, 2).flatten(2) for x in levels], 2)


@MODELS.register_module()
class DenseDistiller(NeckDistiller):
    """Single-stage detector distillation on per-prior class logits.

    Args:
        student: mmdet config (or module) of the student detector.
        teacher: mmdet config (or module) of the teacher: the same family of
            head, with the student's prior layout and classes.
        teacher_ckpt: teacher checkpoint, path or URL (``None`` for tests).
        distill_losses: name -> logit loss config, e.g.
            ``dict(loss_dist=dict(type='mmkd.DISTLoss', use_sigmoid=True))``;
            rows are all priors of the batch.
        reviewkd: optional ReviewKD on the neck outputs (``loss_reviewkd``).
        mimic: optional ``dict(type='mmkd.FPNMimicLoss', ...)`` on the neck
            outputs (``loss_mimic``).
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
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(student, teacher, teacher_ckpt, distill_losses, reviewkd, mimic, init_cfg,
                         **kwargs)
        head = self.student.bbox_head
        sigmoid = bool(getattr(head, 'use_sigmoid_cls', False))
        scoring = 'sigmoid' if sigmoid else 'softmax'
        for name, loss in self.distill_losses.items():
            if type(loss).__name__ == 'DKDLoss':
                raise ValueError(
                    f'distill_losses.{name}: DKD is not defined for dense heads here: it splits '
                    'a softmax into the target class and the others, which a sigmoid head does '
                    'not have, and needs per-prior labels that only the student\'s assigner '
                    'knows. Use mmkd.KDLoss or mmkd.DISTLoss'
                    + (' with use_sigmoid=True.' if sigmoid else '.'))
            if hasattr(loss, 'use_sigmoid') and bool(loss.use_sigmoid) != sigmoid:
                raise ValueError(
                    f'distill_losses.{name}: the heads ({type(head).__name__}) score classes '
                    f'with a {scoring}, so set use_sigmoid={sigmoid} in {type(loss).__name__}.')

    def check_models(self, student: nn.Module, teacher: nn.Module) -> None:
        s_head, t_head = _dense_head(student, 'student'), _dense_head(teacher, 'teacher')
        check_same_classes(s_head.num_classes, t_head.num_classes, 'bbox_head')
        s_sig = bool(getattr(s_head, 'use_sigmoid_cls', False))
        t_sig = bool(getattr(t_head, 'use_sigmoid_cls', False))
        if s_sig != t_sig or s_head.cls_out_channels != t_head.cls_out_channels:
            raise ValueError(
                f'student head {type(s_head).__name__} scores {s_head.cls_out_channels} classes '
                f'with a {"sigmoid" if s_sig else "softmax"}, teacher head '
                f'{type(t_head).__name__} {t_head.cls_out_channels} with a '
                f'{"sigmoid" if t_sig else "softmax"}: distil between heads of the same family '
                '(the same loss_cls activation).')
        check_same_priors(s_head, t_head)

    # -- training ------------------------------------------------------------------
    def capture_points(self) -> Dict[str, Tuple[object, str]]:
        return {'bbox_head': (self.student.bbox_head, 'forward')}

    def read_student(self, calls: CallRecorder, inputs: Tensor,
                     data_samples: list) -> Dict[str, Any]:
        if not calls.calls['bbox_head']:
            raise RuntimeError('the student\'s bbox_head never ran forward in its loss; '
                               f'DenseDistiller supports {SUPPORTED}.')
        call = calls.first('bbox_head')  # the head's own forward inside its loss
        return dict(feats=call.arg(0, 'x'),
                    logits=prior_logits(call.output[0], self.student.bbox_head))

    def teacher_forward(self, inputs: Tensor, student: Dict[str, Any]) -> Dict[str, Any]:
        feats = self.teacher.extract_feat(inputs)
        maps = self.teacher.bbox_head(feats)[0]
        return dict(feats=feats, logits=prior_logits(maps, self.teacher.bbox_head))

    def distill_terms(self, student: Dict[str, Any], teacher: Dict[str, Any],
                      data_samples: list) -> Dict[str, Tensor]:
        distilled = self.distill(student['logits'], teacher['logits'], None)
        distilled['kd_agreement'] = self.agreement(student['logits'], teacher['logits'])
        distilled.update(self.neck_terms(student['feats'], teacher['feats']))
        return distilled
