"""Distillation of query-based (DETR-family) detectors' class logits.

The rule that makes the RoI distiller right holds here too: the teacher
scores what the student scores, and runs no more than it must. A student
query is defined by its *initial reference box* (the box its decoder starts
from); only those boxes cross between the models, so backbones, necks, embed
dims, feature levels and decoder depths may differ.

1. The student trains exactly as mmdet trains it (its top-k query selection,
   denoising queries, matcher, auxiliary layers and every loss). From that
   forward the distiller records the decoder's inputs (``pre_decoder``: the
   reference boxes, DINO's ``dn_meta``) and the head's per-layer class logits
   (``bbox_head.forward``); the denoising rows are dropped, so only the
   student's *matching* queries are distilled.
2. The teacher runs backbone, neck, encoder, then its decoder on queries it
   builds from the student's (detached) boxes, then its class branch, under
   no_grad in eval mode: no top-k selection, no denoising, no matcher, no
   loss. DINO builds its queries from its own content embedding (the first
   ``N`` rows, so its ``num_queries`` must be >= the student's) with the
   student's boxes as reference points; two-stage Deformable DETR embeds the
   boxes through its ``pos_trans`` path, as it embeds its own proposals;
   DAB-DETR takes them as its anchor queries (zero content queries), as it
   takes its own learned anchors.
3. Row ``q`` of the teacher's logits therefore scores the student's query
   ``q``: with the student's own weights it reproduces the student's logits.

Supported: DINO, two-stage Deformable DETR and DAB-DETR, as student and as
teacher in any pairing (a DAB-DETR student's boxes are its learned anchors,
the same for every image). Refused before the first step, with what is
supported: heads whose queries are learned embeddings rather than boxes
(DETR, Conditional DETR, single-stage Deformable DETR; see
docs/query_distillation.md), subclasses that select queries their own way
(DDQ-DETR), and Grounding DINO (text queries).

Losses: the heads score classes with per-class sigmoids, so ``mmkd.KDLoss``
and ``mmkd.DISTLoss`` run with ``use_sigmoid=True``. ``weighting=
'teacher_max_score'`` weighs each query's row by the teacher's highest class
probability (KD-DETR's weighting for background-heavy query sets). DKD is
refused: it splits a softmax into the target class and the rest.
"""
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from mmdet.models.detectors import (DABDETR, DINO, DeformableDETR, DetectionTransformer,
                                     GroundingDINO)
from torch import Tensor, nn

from mmkd.registry import MODELS
from .base_distiller import BaseDistiller, check_same_classes
from .capture import CallRecorder

SUPPORTED = ('query-based detectors whose decoder starts from per-query reference boxes that a '
             'teacher can decode: DINO, two-stage Deformable DETR (DeformableDETR with '
             'as_two_stage=True) and DAB-DETR (4-d anchors, num_patterns=0), as student or '
             'teacher in any pairing (a DINO teacher needs num_queries >= the student\'s). '
             'Two-stage detectors use mmkd.DetectionDistiller, single-stage ones '
             'mmkd.DenseDistiller')
LAYERS = ('last', 'all')
WEIGHTINGS = (None, 'teacher_max_score')


def query_family(model: nn.Module, role: str) -> str:
    """``'dino'``, ``'ddetr_two_stage'`` or ``'dab_detr'``; a TypeError
    naming what is supported for any other model."""
    name = type(model).__name__
    if isinstance(model, GroundingDINO):
        raise TypeError(f'QueryDistiller: the {role} is a {name}, whose queries depend on text '
                        f'prompts; supported are {SUPPORTED}.')
    # Exact types: a subclass (DDQ-DETR, ...) selects and decodes its queries
    # its own way, which the teacher could not reproduce from boxes alone.
    if type(model) is DINO:
        return 'dino'
    if type(model) is DeformableDETR and model.as_two_stage:
        return 'ddetr_two_stage'
    if type(model) is DABDETR and model.num_patterns == 0 and model.query_dim == 4:
        return 'dab_detr'
    if isinstance(model, (DINO, DABDETR)) or (isinstance(model, DeformableDETR)
                                               and model.as_two_stage):
        raise TypeError(f'QueryDistiller: the {role} is a {name} that selects or decodes its '
                        'queries its own way (a subclass of DINO / Deformable DETR / DAB-DETR, '
                        'or DAB-DETR with num_patterns > 0 or 2-d anchor points); supported are '
                        f'{SUPPORTED}.')
    if isinstance(model, DetectionTransformer):
        raise TypeError(
            f'QueryDistiller: the {role} is a {name} whose decoder starts from one learned, '
            'image-independent query set of embeddings (DETR, Conditional DETR, single-stage '
            'Deformable DETR): there are no query boxes for a teacher to decode, and '
            'aligning two such models would need Hungarian matching of their predictions, '
            f'which mmkd does not do; supported are {SUPPORTED}.')
    raise TypeError(f'QueryDistiller: the {role} is a {name}; supported are {SUPPORTED}.')


def _check_sigmoid_head(model: nn.Module, role: str) -> None:
    if not getattr(getattr(model.bbox_head, 'loss_cls', None), 'use_sigmoid', False):
        raise TypeError(f'QueryDistiller: the {role}\'s bbox_head scores classes with a softmax; '
                        'supported are per-class sigmoid (focal loss) heads of '
                        f'{SUPPORTED}.')


def decode_boxes(teacher: nn.Module, family: str, inputs: Tensor, data_samples: list,
                 boxes: Tensor) -> Tensor:
    """The teacher's decoder states ``(layers, B, N, dim)`` for queries built
    from ``boxes`` (``(B, N, 4)`` normalised cx, cy, w, h): backbone, neck,
    encoder and decoder, nothing else (call under no_grad)."""
    feats = teacher.extract_feat(inputs)
    encoder_inputs, decoder_inputs = teacher.pre_transformer(feats, data_samples)
    memory = teacher.forward_encoder(**encoder_inputs)['memory']
    batch, num = boxes.shape[:2]
    if family == 'dino':  # its own content queries, the student's boxes as anchors
        queries = dict(query=teacher.query_embedding.weight[:num].unsqueeze(0).repeat(batch, 1, 1))
    elif family == 'dab_detr':  # the boxes as its anchor queries, zero content (num_patterns=0)
        queries = dict(query=memory.new_zeros(batch, num, memory.shape[-1]),
                       query_pos=torch.logit(boxes))
    else:  # as mmdet embeds its top-k proposals; logit() undoes the boxes' sigmoid
        embed = teacher.pos_trans_norm(teacher.pos_trans_fc(
            teacher.get_proposal_pos_embed(torch.logit(boxes))))
        query_pos, query = torch.split(embed, memory.shape[-1], dim=2)
        queries = dict(query=query, query_pos=query_pos)
    if family != 'dab_detr':
        queries['reference_points'] = boxes
    decoder_inputs.update(queries, memory=memory)
    return teacher.forward_decoder(**decoder_inputs)['hidden_states']


def class_logits(model: nn.Module, hidden_states: Tensor, layer: int) -> Tensor:
    """Decoder layer ``layer``'s class logits (DAB-DETR shares one branch)."""
    head = model.bbox_head
    if hasattr(head, 'cls_branches'):
        return head.cls_branches[layer](hidden_states[layer])
    return head.fc_cls(hidden_states[layer])


def initial_boxes(family: str, decoder_inputs: Dict[str, Tensor]) -> Tensor:
    """The (sigmoid) boxes the student's decoder starts from, detached."""
    if family == 'dab_detr':  # its anchors, kept before the sigmoid
        return decoder_inputs['query_pos'].sigmoid().detach()
    return decoder_inputs['reference_points'].detach()


@MODELS.register_module()
class QueryDistiller(BaseDistiller):
    """Query-based detector distillation on the student's matching queries.

    Args:
        student: mmdet config (or module): DINO, two-stage Deformable DETR or
            DAB-DETR.
        teacher: mmdet config (or module): DINO (``num_queries`` >= the
            student's), two-stage Deformable DETR or DAB-DETR, same classes.
        teacher_ckpt: teacher checkpoint, path or URL (``None`` for tests).
        distill_losses: name -> logit loss config with ``use_sigmoid=True``,
            e.g. ``dict(loss_kd=dict(type='mmkd.KDLoss', use_sigmoid=True))``;
            rows are the matching queries of the batch.
        decoder_layers: ``'last'`` (default) distils the last decoder layer's
            logits; ``'all'`` pairs layer ``i`` with layer ``i`` (both
            decoders need the same depth), keys ``d{i}.<name>`` for the
            auxiliary layers as mmdet names its own.
        weighting: ``None`` (every query counts 1) or
            ``'teacher_max_score'``: each query's row weighs the teacher's
            highest class probability on it (KD-DETR).
        **kwargs: the base's teacher options (``teacher_ckpt_hint``,
            ``teacher_precision``): see :class:`~mmkd.models.BaseDistiller`.
    """

    scope = 'mmdet'

    def __init__(self,
                 student: Union[dict, nn.Module],
                 teacher: Union[dict, nn.Module],
                 teacher_ckpt: Optional[str] = None,
                 distill_losses: Optional[dict] = None,
                 decoder_layers: str = 'last',
                 weighting: Optional[str] = None,
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        if decoder_layers not in LAYERS:
            raise ValueError(f'decoder_layers must be one of {LAYERS}, got {decoder_layers!r}.')
        if weighting not in WEIGHTINGS:
            raise ValueError(f'weighting must be one of {WEIGHTINGS}, got {weighting!r}.')
        super().__init__(student, teacher, teacher_ckpt, distill_losses, None, init_cfg, **kwargs)
        self.decoder_layers = decoder_layers
        self.weighting = weighting
        self.families = (query_family(self.student, 'student'),
                         query_family(self.teacher, 'teacher'))
        depths = (self.student.decoder.num_layers, self.teacher.decoder.num_layers)
        if decoder_layers == 'all' and depths[0] != depths[1]:
            raise ValueError(f"decoder_layers='all' pairs decoder layer i with layer i, but the "
                             f'student has {depths[0]} decoder layers and the teacher '
                             f"{depths[1]}; use decoder_layers='last'.")
        self._check_losses()

    def _check_losses(self) -> None:
        for name, loss in self.distill_losses.items():
            if type(loss).__name__ == 'DKDLoss':
                raise ValueError(
                    f'distill_losses.{name}: DKD is not defined for query-based heads here: it '
                    'splits a softmax into the target class and the others, which per-class '
                    'sigmoid (focal loss) heads do not have, and a query\'s target class exists '
                    'only for the few queries the student\'s matcher assigns. Use mmkd.KDLoss or '
                    'mmkd.DISTLoss with use_sigmoid=True.')
            if hasattr(loss, 'use_sigmoid') and not loss.use_sigmoid:
                raise ValueError(f'distill_losses.{name}: query-based heads score classes with '
                                 f'per-class sigmoids: set use_sigmoid=True in '
                                 f'{type(loss).__name__}.')
        # no targets are passed: every matching query is a row
        self.set_ignore_index(None)

    def check_models(self, student: nn.Module, teacher: nn.Module) -> None:
        families = query_family(student, 'student'), query_family(teacher, 'teacher')
        for model, role in ((student, 'student'), (teacher, 'teacher')):
            _check_sigmoid_head(model, role)
        check_same_classes(student.bbox_head.num_classes, teacher.bbox_head.num_classes,
                           'bbox_head')
        wanted = student.num_queries
        if families[1] == 'dino' and teacher.num_queries < wanted:
            raise ValueError(
                f'QueryDistiller: the DINO teacher decodes the student\'s {wanted} matching '
                f'queries with its own content embeddings, but it has num_queries='
                f'{teacher.num_queries}: use a teacher with num_queries >= {wanted} (or '
                'a student with fewer queries).')

    # -- training ------------------------------------------------------------------
    def capture_points(self) -> Dict[str, Tuple[object, str]]:
        return {'pre_decoder': (self.student, 'pre_decoder'),
                'bbox_head': (self.student.bbox_head, 'forward')}

    def layer_indices(self) -> List[int]:
        """The decoder layers distilled (the student's numbering)."""
        last = self.student.decoder.num_layers - 1
        return list(range(last + 1)) if self.decoder_layers == 'all' else [last]

    def read_student(self, calls: CallRecorder, inputs: Tensor,
                     data_samples: list) -> Dict[str, Any]:
        decoder_inputs, head_inputs = calls.only('pre_decoder').output
        dn_meta = head_inputs.get('dn_meta')
        num_dn = int(dn_meta['num_denoising_queries']) if dn_meta else 0
        # (layers, B, dn + matching, C): the denoising queries come first
        logits = calls.only('bbox_head').output[0][:, :, num_dn:]
        boxes = initial_boxes(self.families[0], decoder_inputs)[:, num_dn:]
        return dict(logits=logits[self.layer_indices()], boxes=boxes, num_denoising=num_dn,
                    data_samples=data_samples)

    def teacher_forward(self, inputs: Tensor, student: Dict[str, Any]) -> Dict[str, Any]:
        hidden = decode_boxes(self.teacher, self.families[1], inputs, student['data_samples'],
                              student['boxes'])
        last = self.teacher.decoder.num_layers - 1
        layers = range(last + 1) if self.decoder_layers == 'all' else [last]
        return dict(logits=torch.stack([class_logits(self.teacher, hidden, i) for i in layers]))

    def distill_terms(self, student: Dict[str, Any], teacher: Dict[str, Any],
                      data_samples: list) -> Dict[str, Tensor]:
        student_logits = student['logits'].flatten(1, 2)  # (layers, B * N, C)
        teacher_logits, scale, offset = self.teacher_faults.guard(
            teacher['logits'].flatten(1, 2))
        out = {}
        indices = self.layer_indices()
        for k, layer in enumerate(indices):
            prefix = '' if k == len(indices) - 1 else f'd{layer}.'
            out.update(self.query_losses(student_logits[k], teacher_logits[k], prefix))
        if scale is not None:  # in a training loop: NaN (zero gradient) if not finite
            out = {key: value * scale + offset for key, value in out.items()}
        out['kd_agreement'] = self.agreement(student_logits[-1], teacher_logits[-1])
        return out

    def query_losses(self, student_logits: Tensor, teacher_logits: Tensor,
                     prefix: str) -> Dict[str, Tensor]:
        """Every configured loss on ``(rows, C)`` logits of one decoder layer
        (with the KD-DETR row weights when ``weighting`` asks), keys
        ``<prefix><name>``, plus their decomposed terms (detached)."""
        weight = None
        if self.weighting == 'teacher_max_score':
            weight = teacher_logits.sigmoid().amax(-1)
        out = {}
        for name, loss in self.distill_losses.items():
            parts = loss.forward_parts(student_logits, teacher_logits, None, weight)
            out[prefix + name] = parts.pop('loss')
            base = name.replace('loss_', '').replace('loss', '') or 'distill'
            for term, value in parts.items():
                out[f'{prefix}{base}_{term}'] = value.detach()
        return out
