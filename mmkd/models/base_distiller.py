"""What every mmkd distiller shares: a trainable student, a frozen teacher.

The teacher is an ordinary submodule (so ``.to()``/``.cuda()`` move it), but:

- it is loaded from ``teacher_ckpt`` when the distiller is built, so a missing
  file or mismatched keys stop the run before the first step;
- its parameters never require grad, it stays in eval mode through
  ``train()``, and :meth:`parameters` leaves it out, so it is neither in the
  optimizer nor in DDP's gradient sync;
- it is not in :meth:`state_dict`: checkpoints hold the student and the
  connectors, and a resumed run reloads the teacher from ``teacher_ckpt``;
- :meth:`init_weights` never touches it (the runner calls ``init_weights``
  after building, which would otherwise re-initialise the loaded teacher);
- it runs only in :meth:`BaseDistiller.run_teacher` (no_grad, eval mode).

The student is built first and everything else (teacher, connectors, a
task's extra losses) under a forked RNG, so a distilled student starts from
exactly the weights the plain student gets with the same seed.

One distillation step (:meth:`BaseDistiller.distill_losses_of`) is the same
for every task:

1. the student's own training loss runs once, exactly as its host library
   runs it, while a :class:`~mmkd.models.capture.CallRecorder` records the
   calls named by :meth:`capture_points` (a head's forward, an RoI head's
   box loss, ...);
2. :meth:`read_student` turns the recorded calls into what is distilled
   (logits, their targets, features, the RoIs the teacher must score);
3. :meth:`run_teacher` runs :meth:`teacher_forward` on the same batch (and
   the student's RoIs or priors), under no_grad;
4. :meth:`distill_terms` returns the distillation losses and logged terms.

A task distiller implements those four methods (plus :meth:`check_models`
and, when it has task parts, :meth:`build_extra`): it says where its logits
come from and nothing else. :meth:`loss` applies the schedule hooks'
switches: ``distill_active`` (ESKD: off means the teacher does not run at
all), ``distill_factor`` (warm-up: scales every distillation loss, not the
task's) and ``student_loss_scales`` (PS-KD: scales named student loss keys).
"""
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import torch
from mmengine.logging import MessageHub, print_log
from mmengine.model import BaseModel
from torch import Tensor, nn

from mmkd.hosts.mmengine import tensor_forward
from mmkd.registry import MODELS
from .capture import CallRecorder
from .teacher_precision import TeacherFaults, check_precision, teacher_autocast, to_float32
from .teacher import (build_loss_dict, build_model, check_same_classes,  # noqa: F401
                      check_same_preprocessing, load_teacher_checkpoint, model_config,
                      student_state_dict, with_default_preprocessor)

TEACHER = 'teacher.'


class BaseDistiller(BaseModel):
    """Student + frozen teacher + logit distillation losses.

    Args:
        student: the student model, or its config (built with ``scope``).
        teacher: the teacher model, or its config.
        teacher_ckpt: checkpoint loaded into the teacher (path or URL).
            ``None`` keeps the teacher's initial weights (tests only).
        distill_losses: name -> loss config. Each name must contain ``'loss'``
            (mmengine sums exactly those keys) and becomes a key of the loss
            dict. Decomposed terms are logged as ``<name without loss>_<term>``.
        reviewkd: optional ``dict(connector=dict(type='mmkd.ABFConnector', ...),
            loss=dict(type='mmkd.HCLLoss', loss_weight=...))``: the connector
            trains with the student (it is in checkpoints, not in the export).
        teacher_ckpt_hint: added to the error when ``teacher_ckpt`` cannot be
            read, e.g. the command that trains the teacher.
        teacher_precision: ``'fp32'`` (default), ``'bf16'`` or ``'fp16'``: the
            teacher's forward runs under an autocast of its own, whatever the
            student's AMP setting; its logits and features reach the losses
            in float32. bf16 has fp32's range; fp16 can overflow (named as such).
    """

    #: the host library that builds a task's configs ('mmdet', 'mmseg',
    #: 'mmpretrain'); every task distiller sets it.
    scope: str = ''

    def __init__(self,
                 student: Union[dict, str, nn.Module],
                 teacher: Union[dict, str, nn.Module],
                 teacher_ckpt: Optional[str] = None,
                 distill_losses: Optional[dict] = None,
                 reviewkd: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 teacher_ckpt_hint: Optional[str] = None,
                 teacher_precision: str = 'fp32') -> None:
        if not self.scope:
            raise TypeError(f'{type(self).__name__} must set `scope` (the host library that '
                            'builds its models: mmdet, mmseg or mmpretrain).')
        super().__init__(data_preprocessor=None, init_cfg=init_cfg)
        # The student first, the rest under a forked RNG: same seed, same
        # student weights as a plain (undistilled) run.
        self.student = build_model(student, self.scope)
        self.data_preprocessor = self.student.data_preprocessor
        with torch.random.fork_rng(devices=[]):
            self.teacher = build_model(teacher, self.scope)
            self.check_models(self.student, self.teacher)
            check_same_preprocessing(self.student, self.teacher)
            self.teacher_ckpt = teacher_ckpt
            if teacher_ckpt is not None:
                load_teacher_checkpoint(self.teacher, teacher_ckpt, teacher_ckpt_hint)
            self.teacher.requires_grad_(False)
            self.teacher.eval()
            self.distill_losses = build_loss_dict(distill_losses, 'distill_losses')
            self.connector = self.reviewkd_loss = None
            if reviewkd is not None:
                self.connector = MODELS.build(reviewkd['connector'])
                self.reviewkd_loss = MODELS.build(reviewkd.get('loss', dict(type='mmkd.HCLLoss')))
            self.build_extra()
        #: ESKD: when False, :meth:`loss` runs the student alone (no teacher).
        self.distill_active = True
        #: warm-up: factor on every distillation loss (task losses unscaled).
        self.distill_factor = 1.0
        #: PS-KD: factor on named student loss keys (e.g. ``{'loss_cls': 0.7}``),
        #: applied with and without distillation; unnamed keys stay unscaled.
        self.student_loss_scales: Dict[str, float] = {}
        #: keys of the logged terms that are not losses (``dkd_tckd``,
        #: ``kd_agreement``, ...), filled as the distiller logs them: the
        #: contract :class:`mmkd.engine.DistillLogProcessor` reads.
        self.logged_terms = set()
        self.distill_loss_keys = frozenset()
        self.loss_parts: Optional[Tuple[Tensor, Tensor]] = None
        self.teacher_precision = check_precision(teacher_precision)
        self.teacher_faults = TeacherFaults(teacher_precision)
        self._announced = False
        self._register_state_dict_hook(_drop_teacher_keys)
        self.register_load_state_dict_post_hook(_ignore_missing_teacher_keys)

    # -- what a task distiller says --------------------------------------------------
    def check_models(self, student: nn.Module, teacher: nn.Module) -> None:
        """Raise before training when the pair is unsupported (types, classes)."""

    def build_extra(self) -> None:
        """Build task-specific parts (called under the forked RNG)."""

    def capture_points(self) -> Dict[str, Tuple[object, str]]:
        """What to record during the student's training forward: name ->
        ``(object, method name)``, e.g. ``{'decode head': (head, 'forward')}``."""
        raise NotImplementedError

    def read_student(self, calls: CallRecorder, inputs: Tensor,
                     data_samples: list) -> Dict[str, Any]:
        """What is distilled on the student's side (logits, targets, features,
        what the teacher must score), read from the recorded calls."""
        raise NotImplementedError

    def teacher_forward(self, inputs: Tensor, student: Dict[str, Any]) -> Dict[str, Any]:
        """The teacher's side on the same batch (and the student's RoIs or
        priors); :meth:`run_teacher` runs it under no_grad."""
        raise NotImplementedError

    def distill_terms(self, student: Dict[str, Any], teacher: Dict[str, Any],
                      data_samples: list) -> Dict[str, Tensor]:
        """The distillation losses (keys containing ``loss``) and logged terms."""
        raise NotImplementedError

    # -- the teacher stays frozen, in eval mode and out of checkpoints ----------
    def train(self, mode: bool = True) -> 'BaseDistiller':
        super().train(mode)
        self.teacher.eval()
        return self

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        """Trainable parameters: everything but the teacher's."""
        for name, param in self.named_parameters(recurse=recurse):
            if not name.startswith(TEACHER):
                yield param

    def init_weights(self) -> None:
        """Initialise the student (first: its RNG draws match a plain run) and
        the connectors; the teacher keeps its weights."""
        self.student.init_weights()
        # Connectors draw under a forked RNG (the CPU's and, where the model
        # already sits on GPUs, theirs): the training stream (mmdet's
        # samplers, dropout) is then the same as a plain student's.
        devices = sorted({p.device.index for p in self.parameters() if p.device.type == 'cuda'})
        with torch.random.fork_rng(devices=devices):
            for name, child in self.named_children():
                if name not in ('teacher', 'student') and hasattr(child, 'init_weights'):
                    child.init_weights()

    def run_teacher(self, inputs: Tensor, student: Dict[str, Any]) -> Dict[str, Any]:
        """:meth:`teacher_forward` under no_grad and the teacher's own
        autocast (``teacher_precision``), its outputs as float32 (the teacher
        is in eval mode throughout): the one place where the teacher runs."""
        device = inputs.device.type if torch.is_tensor(inputs) else 'cpu'
        with torch.no_grad(), teacher_autocast(self.teacher_precision, device):
            out = self.teacher_forward(inputs, student)
        return to_float32(out)

    # -- training ----------------------------------------------------------------
    def loss(self, inputs: Tensor, data_samples: list) -> Dict[str, Tensor]:
        if not self._announced:
            self._announced = True
            print_log(self.describe(), logger='current')
        self.teacher_faults.check_previous_step()
        if not self.distill_active:
            self.distill_loss_keys = frozenset()
            return self.scale_student_losses(self.student_loss(inputs, data_samples))
        try:
            losses, distilled = self.distill_losses_of(inputs, data_samples)
        except FloatingPointError as err:  # name the iteration and the samples
            raise FloatingPointError(f'{err} [{_where(data_samples)}]') from err
        losses = self.scale_student_losses(losses)
        clash = sorted(set(losses) & set(distilled))
        if clash:
            raise ValueError(f'distillation keys {clash} clash with the student\'s own loss keys; '
                             'rename them in distill_losses.')
        self.logged_terms.update(key for key in distilled if 'loss' not in key)
        #: keys of the distillation losses (summed into the total by mmengine,
        #: like the student's own ``loss*`` keys, which are the task's).
        self.distill_loss_keys = frozenset(key for key in distilled if 'loss' in key)
        self.teacher_faults.end_step([key for key in distilled if 'loss' in key],
                                     _where(data_samples))
        factor = self.distill_factor
        for key, value in distilled.items():
            losses[key] = value * factor if factor != 1 and 'loss' in key else value
        return losses

    def distill_losses_of(self, inputs: Tensor,
                          data_samples: list) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
        """The student's own training losses and the distillation terms: one
        student forward (recorded), one teacher forward."""
        with CallRecorder(self.capture_points()) as calls:
            losses = self.student_loss(inputs, data_samples)
        student = self.read_student(calls, inputs, data_samples)
        teacher = self.run_teacher(inputs, student)
        return losses, self.distill_terms(student, teacher, data_samples)

    def parse_losses(self, losses: Dict[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        """mmengine's (its train step, and its DDP wrapper's, call it), plus
        the split of the total into the task's and distillation's parts
        (:attr:`loss_parts`). From now on the losses are logged, so non-finite
        teacher logits are checked on the logged values, without a sync
        (:class:`TeacherFaults`)."""
        self.teacher_faults.deferred = True
        loss, log_vars = super().parse_losses(losses)
        distill = [value for key, value in log_vars.items()
                   if key in self.distill_loss_keys]
        task = [value for key, value in log_vars.items()
                if key != 'loss' and 'loss' in key and key not in self.distill_loss_keys]
        #: ``(task_loss, distill_loss)`` of the last parsed loss dict, their
        #: sum the total mmengine optimises: the task's are the student's own
        #: loss keys, the distillation's :attr:`distill_loss_keys` (an
        #: optimizer wrapper that treats them apart, e.g. DOT, reads this).
        self.loss_parts = (sum(task) if task else loss * 0,
                           sum(distill) if distill else loss * 0)
        return loss, log_vars

    def describe(self) -> str:
        """One log line: the models, where the teacher came from, the losses.
        Written at the first training step of a run (also after ``--resume``),
        when the run's log file is open."""
        source = (f'loaded from {self.teacher_ckpt}' if self.teacher_ckpt is not None else
                  'NOT loaded from a checkpoint (teacher_ckpt=None: initial weights)')
        count = sum(p.numel() for p in self.teacher.parameters())
        losses = ', '.join(f'{name} ({type(loss).__name__})'
                           for name, loss in self.distill_losses.items()) or 'none'
        if self.connector is not None:
            losses += ', loss_reviewkd (ReviewKD)'
        return (f'{type(self).__name__}: student {type(self.student).__name__}, teacher '
                f'{type(self.teacher).__name__} ({count / 1e6:.2f}M parameters) {source}; frozen, '
                f'eval mode, not in the optimizer or checkpoints. Distillation losses: {losses}.')

    def student_loss(self, inputs: Tensor, data_samples: list) -> Dict[str, Tensor]:
        """The student's own losses, keyed as the distiller logs them (also
        when distillation is off, so a log's keys never change mid-run)."""
        return self.student.loss(inputs, data_samples)

    def scale_student_losses(self, losses: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Multiply the student's loss keys named in ``student_loss_scales``
        (a list value, e.g. mmdet's per-level RPN losses, term by term)."""
        for key, scale in self.student_loss_scales.items():
            if key not in losses:
                raise KeyError(f'student_loss_scales names {key!r}, which the student does not '
                               f'return; its loss keys are {sorted(losses)}.')
            if scale != 1:
                value = losses[key]
                losses[key] = [v * scale for v in value] if isinstance(value, (list, tuple)) \
                    else value * scale
        return losses

    def set_ignore_index(self, value: Optional[int], *loss_dicts: nn.ModuleDict) -> None:
        """Give every logit loss (of ``distill_losses``, or of the dicts
        given) this ``ignore_index``; ``None`` keeps every row."""
        for losses in loss_dicts or (self.distill_losses, ):
            for loss in losses.values():
                if hasattr(loss, 'ignore_index'):
                    loss.ignore_index = value

    def distill(self, student_logits: Tensor, teacher_logits: Tensor,
                target: Optional[Tensor], losses: Optional[nn.ModuleDict] = None,
                prefix: str = '') -> Dict[str, Tensor]:
        """Every configured logit loss (``losses``, default
        ``distill_losses``), plus its decomposed terms (detached). Non-finite
        teacher logits stop the run (:class:`TeacherFaults`)."""
        teacher_logits, scale, offset = self.teacher_faults.guard(teacher_logits)
        out = {}
        for name, loss in (self.distill_losses if losses is None else losses).items():
            if hasattr(loss, 'forward_parts'):
                parts = loss.forward_parts(student_logits, teacher_logits, target)
            else:
                parts = dict(loss=loss(student_logits, teacher_logits, target))
            out[name] = parts.pop('loss')
            base = name.replace('loss_', '').replace('loss', '') or 'distill'
            for term, value in parts.items():
                out[f'{prefix}{base}_{term}'] = value.detach()
        if scale is not None:  # in a training loop: NaN (zero gradient) if not finite
            out = {key: value * scale + offset for key, value in out.items()}
        return out

    def review(self, student_feats, teacher_feats) -> Dict[str, Tensor]:
        """ReviewKD's loss when configured (``loss_reviewkd``), else nothing."""
        if self.connector is None:
            return {}
        return dict(loss_reviewkd=self.reviewkd_loss(self.connector(student_feats), teacher_feats))

    @staticmethod
    def agreement(student_logits: Tensor, teacher_logits: Tensor,
                  keep: Optional[Tensor] = None) -> Tensor:
        """Fraction of rows (or kept pixels) where student and teacher agree
        on the top-1 class; logits ``(N, C, ...)``, ``keep`` ``(N, ...)``."""
        same = student_logits.detach().argmax(1) == teacher_logits.detach().argmax(1)
        if same.numel() == 0:
            return student_logits.new_zeros(()).detach()
        if keep is None:
            return same.float().mean()
        # weighted, not indexed: a data-dependent index would sync the device
        return (same & keep).sum().float() / keep.sum().clamp(min=1).float()

    # -- inference: the student alone -----------------------------------------------
    def predict(self, inputs: Tensor, data_samples=None):
        self.teacher_faults.check_previous_step()  # the last training step's
        return self.student.predict(inputs, data_samples)

    def _forward(self, inputs: Tensor, data_samples=None):
        return tensor_forward(self.student, inputs, data_samples)

    def forward(self, inputs: Tensor, data_samples=None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}". Only supports loss, predict and tensor mode')


def _where(data_samples) -> str:
    """The iteration (from mmengine's message hub) and the batch's samples."""
    hub = MessageHub.get_current_instance()
    names = []
    for sample in data_samples if isinstance(data_samples, (list, tuple)) else []:
        meta = getattr(sample, 'metainfo', {}) or {}
        name = next((meta[k] for k in ('img_path', 'img_id', 'sample_idx') if k in meta), None)
        names.append(str(name))
    it = hub.get_info('iter')
    it = '?' if it is None else it + 1  # 1-based, as the training log counts
    return f'iteration {it}, samples: {", ".join(names) or "?"}'


def _drop_teacher_keys(module, state_dict, prefix, local_metadata):
    for key in [k for k in state_dict if k.startswith(prefix + TEACHER)]:
        del state_dict[key]
    return state_dict


def _ignore_missing_teacher_keys(module, incompatible_keys):
    missing = incompatible_keys.missing_keys
    missing[:] = [k for k in missing if not k.startswith(TEACHER)]
