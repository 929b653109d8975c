"""Distillation of mmseg encoder-decoder segmentors' per-pixel logits.

The student trains exactly as mmseg trains it (``decode.*`` / ``aux.*``
losses unchanged). Its logits are read from that same forward: its decode
head's (and auxiliary heads', when they are distilled) ``forward`` is wrapped
for the duration of the call to record the output, so there is no second
student forward.
The teacher runs backbone + neck + decode head (+ auxiliary heads only when
``aux_distill_losses`` is set) on the same preprocessed batch under no_grad;
no teacher loss or label handling runs.

Logits are compared at the **student's head resolution** (1/8 of the crop for
D8 models, as DIST's code does). Teacher logits of another size are resized
bilinearly to it with the student head's ``align_corners``. The target of a
pixel is ``gt_sem_seg`` resized by nearest neighbour to that resolution; pixels
labelled the student decode head's ``ignore_index`` (255 by default, also the
preprocessor's padding value) are left out of every distillation loss and of
the agreement.

With ``reviewkd``, the student's backbone stage outputs are fused deepest
first by ``mmkd.ABFConnector`` into the teacher's channels and compared with
the teacher's backbone stage outputs by ``mmkd.HCLLoss``. D8 backbones give
stages 2-4 one resolution; the fusion resizes only where sizes differ.
"""
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.segmentors import CascadeEncoderDecoder, EncoderDecoder
from torch import Tensor, nn

from mmkd.registry import MODELS
from .base_distiller import (BaseDistiller, build_loss_dict, check_same_classes,
                             with_default_preprocessor)
from .capture import CallRecorder

SUPPORTED = ('mmseg EncoderDecoder segmentors (a decode head plus optional auxiliary head or '
             'list of auxiliary heads, e.g. DeepLabV3, PSPNet, FCN, UPerNet, SegFormer) whose '
             'heads score num_classes classes with a softmax; CascadeEncoderDecoder (OCRNet, '
             'PointRend), depth estimators and single-channel sigmoid heads are not supported')


def aux_heads(model: nn.Module) -> List[nn.Module]:
    """A segmentor's auxiliary heads as a list (empty when it has none)."""
    if not getattr(model, 'with_auxiliary_head', False):
        return []
    head = model.auxiliary_head
    return list(head) if isinstance(head, nn.ModuleList) else [head]


def _check_head(head: nn.Module, what: str) -> None:
    if not isinstance(head, BaseDecodeHead):
        raise TypeError(f'SegmentationDistiller: {what} is a {type(head).__name__}, not an mmseg '
                        f'decode head; supported are {SUPPORTED}.')
    losses = head.loss_decode if isinstance(head.loss_decode, nn.ModuleList) else [head.loss_decode]
    if head.out_channels != head.num_classes or any(
            getattr(loss, 'use_sigmoid', False) for loss in losses):
        raise TypeError(f'SegmentationDistiller: {what} scores classes with a sigmoid '
                        f'(out_channels={head.out_channels}, num_classes={head.num_classes}); '
                        'logit distillation needs softmax scores over num_classes channels.')


def _check_supported(model: nn.Module, role: str, with_aux: bool) -> None:
    if not isinstance(model, EncoderDecoder) or isinstance(model, CascadeEncoderDecoder) or (
            type(model).__name__ == 'DepthEstimator'):
        raise TypeError(f'SegmentationDistiller: the {role} is a {type(model).__name__}; '
                        f'supported are {SUPPORTED}.')
    if not isinstance(getattr(model, 'decode_head', None), nn.Module) or isinstance(
            model.decode_head, nn.ModuleList):
        raise TypeError(f'SegmentationDistiller: the {role} needs a single decode head; '
                        f'supported are {SUPPORTED}.')
    _check_head(model.decode_head, f'the {role}\'s decode head')
    if with_aux:
        if not aux_heads(model):
            raise ValueError(f'aux_distill_losses distils the auxiliary head, but the {role} has '
                             'none: give both models an auxiliary_head or drop aux_distill_losses.')
        for i, head in enumerate(aux_heads(model)):
            _check_head(head, f'the {role}\'s auxiliary head {i}')


def _logits(out, what: str) -> Tensor:
    if not torch.is_tensor(out) or out.dim() != 4:
        raise TypeError(f'SegmentationDistiller: {what} returned '
                        f'{type(out).__name__ if not torch.is_tensor(out) else tuple(out.shape)}; '
                        'a (N, num_classes, H, W) logit map is needed.')
    return out


@MODELS.register_module()
class SegmentationDistiller(BaseDistiller):
    """Per-pixel logit distillation of mmseg segmentors, optionally with ReviewKD.

    Args:
        student: mmseg config (or module) of the student segmentor.
        teacher: mmseg config (or module) of the teacher segmentor.
        teacher_ckpt: teacher checkpoint, path or URL (``None`` for tests).
        distill_losses: name -> logit loss config for the decode-head logits,
            e.g. ``dict(loss_dist=dict(type='mmkd.DISTLoss'))``.
        aux_distill_losses: the same for the auxiliary head's logits (DIST:
            ``loss_weight=0.4``); keys distinct from ``distill_losses``. With a
            list of auxiliary heads, head ``i`` adds ``<key>_<i>``. ``None``:
            the teacher's auxiliary head never runs.
        reviewkd: optional ``dict(connector=dict(type='mmkd.ABFConnector', ...),
            loss=dict(type='mmkd.HCLLoss', loss_weight=...))`` over the
            backbone stage outputs, added as ``loss_reviewkd``.
        data_preprocessor: mmseg configs also keep one at the top level (often
            just ``dict(size=crop_size)``) and mmengine's Runner passes it to
            the model. As for a plain mmseg model, it is used only by a
            student or teacher config that has none of its own; the
            distiller's preprocessor is the student's.
        **kwargs: the base's teacher options (``teacher_ckpt_hint``,
            ``teacher_precision``): see :class:`~mmkd.models.BaseDistiller`.

    Every pixel of the student's head resolution is a row of the logit
    losses; the losses' ``ignore_index`` is set to the student decode head's.
    """

    scope = 'mmseg'

    def __init__(self,
                 student: Union[dict, nn.Module],
                 teacher: Union[dict, nn.Module],
                 teacher_ckpt: Optional[str] = None,
                 distill_losses: Optional[dict] = None,
                 aux_distill_losses: Optional[dict] = None,
                 reviewkd: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        student, teacher = (with_default_preprocessor(m, data_preprocessor)
                            for m in (student, teacher))
        # Read by check_models / build_extra during the base's __init__ (a
        # plain attribute may be set before nn.Module's).
        self._aux_cfg = aux_distill_losses
        super().__init__(student, teacher, teacher_ckpt, distill_losses, reviewkd, init_cfg,
                         **kwargs)

    def check_models(self, student: nn.Module, teacher: nn.Module) -> None:
        with_aux = self._aux_cfg is not None
        _check_supported(student, 'student', with_aux)
        _check_supported(teacher, 'teacher', with_aux)
        check_same_classes(student.decode_head.num_classes, teacher.decode_head.num_classes,
                           'decode_head')
        if with_aux:
            s_aux, t_aux = aux_heads(student), aux_heads(teacher)
            if len(s_aux) != len(t_aux):
                raise ValueError(f'the student has {len(s_aux)} auxiliary heads and the teacher '
                                 f'{len(t_aux)}: aux_distill_losses pairs them one to one.')
            for i, (s, t) in enumerate(zip(s_aux, t_aux)):
                check_same_classes(s.num_classes, t.num_classes, f'auxiliary head {i}')

    def build_extra(self) -> None:
        head = self.student.decode_head
        self.ignore_index = head.ignore_index
        self.align_corners = head.align_corners
        self.aux_distill_losses = None
        if self._aux_cfg is not None:
            self.aux_distill_losses = build_loss_dict(self._aux_cfg, 'aux_distill_losses',
                                                      taken=set(self.distill_losses))
            self._check_aux_keys()
        self.set_ignore_index(self.ignore_index, self.distill_losses,
                              self.aux_distill_losses or {})
        if self.connector is not None:
            self._check_reviewkd_levels()

    def _check_aux_keys(self) -> None:
        """With several auxiliary heads, head ``i`` logs ``<key>_<i>``."""
        count = len(aux_heads(self.student))
        used = [name if count == 1 else f'{name}_{i}'
                for name in self.aux_distill_losses for i in range(count)]
        clash = sorted(set(used) & set(self.distill_losses))
        if clash:
            raise ValueError(f'aux_distill_losses keys {clash} (one per auxiliary head) clash '
                             'with distill_losses keys: rename them.')

    def _check_reviewkd_levels(self) -> None:
        """Probe both backbones once on a small input: the connector must map
        the student's stages to the teacher's channels at equal resolutions."""
        modes = {m: m.training for m in self.student.backbone.modules()}
        self.student.backbone.eval()
        try:
            with torch.no_grad():
                probe = torch.zeros(1, 3, 64, 64)
                student = list(self.student.backbone(probe))
                teacher = list(self.teacher.backbone(probe))
        finally:
            for module, mode in modes.items():
                module.training = mode
        abfs = self.connector.abfs
        problem = None
        if not len(student) == len(teacher) == len(abfs):
            problem = (f'the student\'s backbone returns {len(student)} stages, the teacher\'s '
                       f'{len(teacher)} and the connector has {len(abfs)} levels')
        else:
            for level, (s, t, abf) in enumerate(zip(student, teacher, abfs)):
                cin, cout = abf.reduce[0].in_channels, abf.project[0].out_channels
                if (s.shape[1], t.shape[1]) != (cin, cout) or s.shape[-2:] != t.shape[-2:]:
                    problem = (f'stage {level}: student {tuple(s.shape[1:])}, teacher '
                               f'{tuple(t.shape[1:])} (channels, H, W) for a 64x64 input, but '
                               f'the connector maps {cin} -> {cout} channels')
                    break
        if problem:
            raise ValueError(f'reviewkd: {problem}. Set the connector\'s in_channels / '
                             'out_channels to the backbones\' stage channels, and give both '
                             'backbones the same out_indices and strides / dilations.')

    # -- training ------------------------------------------------------------------
    def capture_points(self) -> Dict[str, Tuple[object, str]]:
        # mmseg's heads call self.forward directly (no __call__, no hooks).
        points = {'decode head': (self.student.decode_head, 'forward')}
        if self.aux_distill_losses is not None:
            for i, head in enumerate(aux_heads(self.student)):
                points[f'auxiliary head {i}'] = (head, 'forward')
        if self.connector is not None:
            points['backbone'] = (self.student.backbone, 'forward')
        return points

    def read_student(self, calls: CallRecorder, inputs: Tensor,
                     data_samples: list) -> Dict[str, Any]:
        heads = [calls.only('decode head').output]
        if self.aux_distill_losses is not None:
            heads += [calls.only(f'auxiliary head {i}').output
                      for i in range(len(aux_heads(self.student)))]
        stages = list(calls.only('backbone').output) if self.connector is not None else None
        return dict(logits=heads, stages=stages)

    def teacher_forward(self, inputs: Tensor, student: Dict[str, Any]) -> Dict[str, Any]:
        stages = self.teacher.backbone(inputs)
        feats = self.teacher.neck(stages) if self.teacher.with_neck else stages
        logits = [self.teacher.decode_head(feats)]
        if self.aux_distill_losses is not None:
            logits += [head(feats) for head in aux_heads(self.teacher)]
        return dict(logits=logits, stages=list(stages))

    def distill_terms(self, student: Dict[str, Any], teacher: Dict[str, Any],
                      data_samples: list) -> Dict[str, Tensor]:
        gt = torch.stack([sample.gt_sem_seg.data for sample in data_samples])  # (N, 1, H, W)
        (s_decode, *s_aux), (t_decode, *t_aux) = student['logits'], teacher['logits']
        distilled = self._dense(s_decode, t_decode, gt, self.distill_losses, 'decode head',
                                'kd_agreement')
        for i, (s_logits, t_logits) in enumerate(zip(s_aux, t_aux)):
            part = self._dense(s_logits, t_logits, gt, self.aux_distill_losses,
                               f'auxiliary head {i}', 'aux_kd_agreement')
            for key, value in part.items():
                key = key if len(t_aux) == 1 else f'{key}_{i}'
                if key in distilled:
                    raise ValueError(f'aux_distill_losses and distill_losses both log {key!r}: '
                                     'give the auxiliary losses names of their own.')
                distilled[key] = value
        if self.connector is not None:
            distilled.update(self.review(student['stages'], teacher['stages']))
        return distilled

    def _dense(self, student_logits, teacher_logits, gt: Tensor, losses: nn.ModuleDict,
               what: str, agreement_key: str) -> Dict[str, Tensor]:
        """The losses of one head pair at the student head's resolution."""
        student_logits = _logits(student_logits, f'the student\'s {what}')
        teacher_logits = _logits(teacher_logits, f'the teacher\'s {what}')
        size = student_logits.shape[-2:]
        if teacher_logits.shape[-2:] != size:
            teacher_logits = F.interpolate(teacher_logits, size=size, mode='bilinear',
                                           align_corners=self.align_corners)
        target = self.head_target(gt, size)
        out = self.distill(student_logits, teacher_logits, target, losses)
        keep = target != self.ignore_index if self.ignore_index is not None else None
        out[agreement_key] = self.agreement(student_logits, teacher_logits, keep)
        return out

    @staticmethod
    def head_target(gt: Tensor, size) -> Tensor:
        """``gt_sem_seg`` ``(N, 1, H, W)`` resized by nearest neighbour to
        ``size``: ``(N, h, w)`` int64 labels."""
        if tuple(gt.shape[-2:]) != tuple(size):
            gt = F.interpolate(gt.float(), size=tuple(size), mode='nearest')
        return gt[:, 0].long()
