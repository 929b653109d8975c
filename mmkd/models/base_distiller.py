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
  after building, which would otherwise re-initialise the loaded teacher).

The student is built first and everything else (teacher, connectors) under a
forked RNG, so a distilled student starts from exactly the weights the plain
student gets with the same seed.

A task distiller implements :meth:`BaseDistiller.distill_losses_of` (the
student's own training forward plus the distillation terms) and
:meth:`student_only_loss`; :meth:`loss` applies the schedule hooks' switches:
``distill_active`` (ESKD: off means the teacher does not run at all) and
``distill_factor`` (warm-up: scales every distillation loss, not the task's);
``student_loss_scales`` (PS-KD: scales named student loss keys).
"""
import copy
from typing import Dict, Iterator, List, Optional, Tuple, Union

import torch
from mmengine.config import ConfigDict
from mmengine.logging import print_log
from mmengine.model import BaseModel
from torch import Tensor, nn

from mmkd.engine.checkpoint import load_checkpoint_file
from mmkd.registry import MODELS

TEACHER = 'teacher.'


def build_model(cfg: Union[dict, str, nn.Module], scope: str) -> nn.Module:
    """Build a host-library model (``scope`` is 'mmdet', 'mmseg' or
    'mmpretrain') from a config dict, or from the ``model`` of a config file
    (``'mmseg::deeplabv3/....py'`` or a path); a module passes through."""
    if isinstance(cfg, nn.Module):
        return cfg
    if isinstance(cfg, str):
        cfg = model_config(cfg)
    import importlib
    from mmengine.registry import DefaultScope
    registry = importlib.import_module(f'{scope}.registry').MODELS
    importlib.import_module(f'{scope}.utils').register_all_modules(init_default_scope=False)
    # mmengine's BaseModel builds data_preprocessor from the default scope.
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(ConfigDict(cfg))  # host models read cfg.attr


def with_default_preprocessor(model: Union[dict, str, nn.Module],
                              data_preprocessor: Optional[dict]) -> Union[dict, str, nn.Module]:
    """mmengine's Runner passes a config's top-level ``data_preprocessor`` to
    the model it builds, which keeps its own if it has one (``setdefault``).
    The same for a distiller's student or teacher config dict."""
    if data_preprocessor is None or not isinstance(model, dict) or model.get(
            'data_preprocessor') is not None:
        return model
    return dict(model, data_preprocessor=copy.deepcopy(data_preprocessor))


def model_config(path: str) -> ConfigDict:
    """The ``model`` of a config file: a host package's (``'mmseg::...'``,
    read with ``mmengine.hub.get_config``) or a local path."""
    from mmengine.config import Config
    if '::' in path:
        from mmengine.hub import get_config
        return get_config(path).model
    return Config.fromfile(path).model


def check_same_classes(student_classes: int, teacher_classes: int, where: str) -> None:
    if student_classes != teacher_classes:
        raise ValueError(f'student and teacher must predict the same classes: the student\'s '
                         f'{where} has num_classes={student_classes}, the teacher\'s '
                         f'{teacher_classes}. Use a teacher trained on the same dataset (and '
                         'the same classes order).')


def check_same_preprocessing(student: nn.Module, teacher: nn.Module) -> None:
    """The teacher sees the student's preprocessed batch: normalisation must agree."""
    def norm(model):
        dp = model.data_preprocessor
        # mmdet: _channel_conversion; mmseg: channel_conversion; mmpretrain: to_rgb
        return [getattr(dp, a, None) for a in ('mean', 'std')] + [
            getattr(dp, '_channel_conversion',
                    getattr(dp, 'channel_conversion', getattr(dp, 'to_rgb', None)))]

    for a, b in zip(norm(student), norm(teacher)):
        same = (a is None and b is None) or (
            a is not None and b is not None and (a.shape == b.shape and bool(torch.equal(a, b))
                                                 if torch.is_tensor(a) else a == b))
        if not same:
            raise ValueError('student and teacher data_preprocessor differ (mean/std/bgr_to_rgb): '
                             'the teacher runs on the student\'s normalised batch, so give both '
                             'the same normalisation (e.g. a caffe-style teacher needs a caffe-'
                             'style student).')


def _strip_prefixes(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Accept plain model checkpoints and DDP-wrapped (``module.``) ones alike."""
    if state_dict and all(k.startswith('module.') for k in state_dict):
        return {k[len('module.'):]: v for k, v in state_dict.items()}
    return state_dict


def student_state_dict(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """The student's weights of a distiller state dict (``student.`` keys,
    prefix removed); a plain model state dict is returned as it is."""
    student = {k[len('student.'):]: v for k, v in state_dict.items() if k.startswith('student.')}
    return student or state_dict


def load_teacher_checkpoint(teacher: nn.Module, teacher_ckpt: str) -> None:
    """Load ``teacher_ckpt`` into ``teacher`` strictly, with a readable error.

    The file is read with mmkd's allow-listed ``weights_only`` loader
    (:mod:`mmkd.engine.checkpoint`): a checkpoint that needs any other type to
    unpickle is refused, not executed.

    Raises:
        FileNotFoundError: the checkpoint does not exist.
        RuntimeError: keys are missing or unexpected, or shapes differ.
    """
    try:
        checkpoint = load_checkpoint_file(teacher_ckpt, map_location='cpu')
    except (FileNotFoundError, IOError) as err:
        raise FileNotFoundError(
            f'teacher_ckpt {teacher_ckpt!r} could not be read ({err}). Point '
            'teacher_ckpt at the trained teacher\'s checkpoint (a local path or URL).') from err
    state_dict = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict):
        raise RuntimeError(f'teacher_ckpt {teacher_ckpt!r} holds no state_dict.')
    state_dict = _strip_prefixes(state_dict)
    if any(k.startswith('student.') for k in state_dict):
        raise RuntimeError(
            f'teacher_ckpt {teacher_ckpt!r} is a distiller checkpoint (keys start with '
            '"student."). Export its student with tools/export_student.py and use that file.')
    own = teacher.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = sorted(k for k in set(own) & set(state_dict)
                        if tuple(own[k].shape) != tuple(state_dict[k].shape))
    if missing or unexpected or mismatched:
        def show(keys: List[str]) -> str:
            return ', '.join(keys[:8]) + (f' ... ({len(keys)} in all)' if len(keys) > 8 else '')

        lines = [f'teacher_ckpt {teacher_ckpt!r} does not match the teacher config:']
        if missing:
            lines.append(f'  missing keys: {show(missing)}')
        if unexpected:
            lines.append(f'  unexpected keys: {show(unexpected)}')
        if mismatched:
            lines.append('  shape mismatch: ' + show([
                f'{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}' for k in mismatched]))
        lines.append('Check that the teacher config describes the checkpointed model '
                     '(backbone depth, num_classes, neck channels).')
        raise RuntimeError('\n'.join(lines))
    teacher.load_state_dict(state_dict, strict=True)
    print_log(f'Loaded teacher from {teacher_ckpt}', logger='current')


def build_loss_dict(losses: Optional[dict], arg: str, taken=()) -> nn.ModuleDict:
    """Build ``name -> loss config``; names must contain "loss" and be new."""
    built = nn.ModuleDict()
    for name, cfg in (losses or {}).items():
        if 'loss' not in name:
            raise ValueError(f'{arg} key {name!r} must contain "loss" (e.g. "loss_{name}"): '
                             'mmengine only adds keys containing "loss" to the total loss.')
        if name in taken:
            raise ValueError(f'{arg} key {name!r} is used twice: every distillation loss needs '
                             'its own key in the loss dict.')
        built[name] = MODELS.build(cfg) if isinstance(cfg, dict) else cfg
    return built


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
        scope: the host library that builds configs ('mmdet', 'mmseg',
            'mmpretrain').
    """

    #: where a subclass's models come from; overridden per task.
    scope = 'mmdet'

    def __init__(self,
                 student: Union[dict, nn.Module],
                 teacher: Union[dict, nn.Module],
                 teacher_ckpt: Optional[str] = None,
                 distill_losses: Optional[dict] = None,
                 reviewkd: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
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
                load_teacher_checkpoint(self.teacher, teacher_ckpt)
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
        self._register_state_dict_hook(_drop_teacher_keys)
        self.register_load_state_dict_post_hook(_ignore_missing_teacher_keys)

    # -- what a task distiller says --------------------------------------------------
    def check_models(self, student: nn.Module, teacher: nn.Module) -> None:
        """Raise before training when the pair is unsupported (types, classes)."""

    def build_extra(self) -> None:
        """Build task-specific parts (called under the forked RNG)."""

    def distill_losses_of(self, inputs: Tensor,
                          data_samples: list) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
        """The student's own training losses and the distillation terms."""
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
        # Connectors draw under a forked RNG: the training stream (mmdet's
        # samplers, dropout) is then the same as a plain student's.
        with torch.random.fork_rng(devices=[]):
            for name, child in self.named_children():
                if name not in ('teacher', 'student') and hasattr(child, 'init_weights'):
                    child.init_weights()

    # -- training ----------------------------------------------------------------
    def loss(self, inputs: Tensor, data_samples: list) -> Dict[str, Tensor]:
        if not self.distill_active:
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
        factor = self.distill_factor
        for key, value in distilled.items():
            losses[key] = value * factor if factor != 1 and 'loss' in key else value
        return losses

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
        ``distill_losses``), plus its decomposed terms (detached)."""
        _check_finite_teacher(teacher_logits)
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
        if keep is not None:
            same = same[keep]
        if same.numel() == 0:
            return student_logits.new_zeros(()).detach()
        return same.float().mean()

    # -- inference: the student alone -----------------------------------------------
    def predict(self, inputs: Tensor, data_samples=None):
        return self.student.predict(inputs, data_samples)

    def _forward(self, inputs: Tensor, data_samples=None):
        return self.student._forward(inputs, data_samples)

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
    from mmengine.logging import MessageHub
    hub = MessageHub.get_current_instance()
    names = []
    for sample in data_samples or []:
        meta = getattr(sample, 'metainfo', {}) or {}
        name = next((meta[k] for k in ('img_path', 'img_id', 'sample_idx') if k in meta), None)
        names.append(str(name))
    it = hub.get_info('iter')
    it = '?' if it is None else it + 1  # 1-based, as the training log counts
    return f'iteration {it}, samples: {", ".join(names) or "?"}'


def _check_finite_teacher(teacher_logits: Tensor) -> None:
    if not bool(torch.isfinite(teacher_logits).all()):
        bad = int((~torch.isfinite(teacher_logits)).sum())
        raise FloatingPointError(
            f'the teacher produced {bad} non-finite logits (NaN/inf) on this batch: the teacher '
            'is at fault, not the student. Check teacher_ckpt (a diverged or corrupt checkpoint) '
            'and that the teacher runs in a precision it supports.')


def _drop_teacher_keys(module, state_dict, prefix, local_metadata):
    for key in [k for k in state_dict if k.startswith(prefix + TEACHER)]:
        del state_dict[key]
    return state_dict


def _ignore_missing_teacher_keys(module, incompatible_keys):
    missing = incompatible_keys.missing_keys
    missing[:] = [k for k in missing if not k.startswith(TEACHER)]
