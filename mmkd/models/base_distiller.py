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
"""
from typing import Dict, Iterator, List, Optional

from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.runner.checkpoint import _load_checkpoint
from torch import Tensor, nn

from mmkd.registry import MODELS

TEACHER = 'teacher.'


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

    Raises:
        FileNotFoundError: the checkpoint does not exist.
        RuntimeError: keys are missing or unexpected, or shapes differ.
    """
    try:
        checkpoint = _load_checkpoint(teacher_ckpt, map_location='cpu')
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


class BaseDistiller(BaseModel):
    """Student + frozen teacher + logit distillation losses.

    Args:
        student: the student model (built by the subclass).
        teacher: the teacher model (built by the subclass).
        teacher_ckpt: checkpoint loaded into the teacher (path or URL).
            ``None`` keeps the teacher's initial weights (tests only).
        distill_losses: name -> loss config. Each name must contain ``'loss'``
            (mmengine sums exactly those keys) and becomes a key of the loss
            dict. Decomposed terms are logged as ``<name without loss>_<term>``.
    """

    def __init__(self,
                 student: nn.Module,
                 teacher: nn.Module,
                 teacher_ckpt: Optional[str] = None,
                 distill_losses: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=None, init_cfg=init_cfg)
        self.student = student
        self.data_preprocessor = student.data_preprocessor
        self.teacher = teacher
        self.teacher_ckpt = teacher_ckpt
        if teacher_ckpt is not None:
            load_teacher_checkpoint(self.teacher, teacher_ckpt)
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.distill_losses = nn.ModuleDict()
        for name, cfg in (distill_losses or {}).items():
            if 'loss' not in name:
                raise ValueError(f'distill_losses key {name!r} must contain "loss" (e.g. '
                                 f'"loss_{name}"): mmengine only adds keys containing "loss" '
                                 'to the total loss.')
            self.distill_losses[name] = MODELS.build(cfg) if isinstance(cfg, dict) else cfg
        self._register_state_dict_hook(_drop_teacher_keys)
        self.register_load_state_dict_post_hook(_ignore_missing_teacher_keys)

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
        """Initialise the student and connectors; the teacher keeps its weights."""
        for name, child in self.named_children():
            if name != 'teacher' and hasattr(child, 'init_weights'):
                child.init_weights()

    # -- distillation losses -----------------------------------------------------
    def distill(self, student_logits: Tensor, teacher_logits: Tensor,
                target: Optional[Tensor]) -> Dict[str, Tensor]:
        """Every configured logit loss, plus its decomposed terms (detached)."""
        losses = {}
        for name, loss in self.distill_losses.items():
            if hasattr(loss, 'forward_parts'):
                parts = loss.forward_parts(student_logits, teacher_logits, target)
            else:
                parts = dict(loss=loss(student_logits, teacher_logits, target))
            losses[name] = parts.pop('loss')
            base = name.replace('loss_', '').replace('loss', '') or 'distill'
            for term, value in parts.items():
                losses[f'{base}_{term}'] = value.detach()
        return losses

    @staticmethod
    def agreement(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        """Fraction of rows where student and teacher agree on the top-1 class."""
        if student_logits.numel() == 0:
            return student_logits.new_zeros(())
        return (student_logits.argmax(1) == teacher_logits.argmax(1)).float().mean().detach()


def _drop_teacher_keys(module, state_dict, prefix, local_metadata):
    for key in [k for k in state_dict if k.startswith(prefix + TEACHER)]:
        del state_dict[key]
    return state_dict


def _ignore_missing_teacher_keys(module, incompatible_keys):
    missing = incompatible_keys.missing_keys
    missing[:] = [k for k in missing if not k.startswith(TEACHER)]
