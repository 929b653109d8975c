"""The teacher's precision and the check that its logits are finite.

The teacher is frozen, so it can run in half precision whatever the
student's step does: :func:`teacher_autocast` gives its forward an autocast
of its own (``fp32`` switches off an outer AMP autocast, ``bf16`` / ``fp16``
switch one on), and :func:`to_float32` casts what it returns to float32
before any loss sees it.

Non-finite teacher logits (a corrupt checkpoint, an fp16 overflow) must stop
the run with a message that blames the teacher, but a ``bool(tensor)`` on
every step would stall a GPU. :class:`TeacherFaults` therefore checks
without a sync inside a training loop: each step it counts the non-finite
logits on the device, zeroes them (so the step's gradients stay finite) and
turns each distillation loss into NaN when there were any, through arithmetic
only. mmengine reads every loss to the host when it logs the step (its own
sync); at the next step the distiller looks at those host values and, if one
is NaN, reads the count (the only sync, on the error path) and raises.
This deferred mode starts once mmengine's train step has parsed a loss dict
of the distiller (``BaseDistiller.parse_losses``), that is from the second
step of a run; before that, and for direct ``loss()`` calls (tests,
scripts), the check is immediate.
"""
import math
from typing import Any, List, Optional, Tuple

import torch
from mmengine.logging import MessageHub
from torch import Tensor

#: ``teacher_precision`` -> autocast dtype (``None``: float32, no autocast).
PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f'teacher_precision must be one of {sorted(PRECISIONS)}; got '
                         f'{precision!r}. fp32 is exact; bf16 halves the teacher\'s cost on a '
                         'GPU with fp32\'s range; fp16 may overflow.')
    return precision


def teacher_autocast(precision: str, device_type: str) -> torch.autocast:
    """The autocast the teacher's forward runs under (independent of the
    student's AMP): enabled with the precision's dtype, or disabled (fp32)."""
    dtype = PRECISIONS[precision]
    return torch.autocast(device_type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def to_float32(value: Any) -> Any:
    """Half-precision floating tensors (in dicts, lists, tuples) as float32;
    everything else unchanged."""
    if torch.is_tensor(value):
        return value.float() if value.dtype in (torch.float16, torch.bfloat16) else value
    if isinstance(value, dict):
        return {key: to_float32(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_float32(item) for item in value)
    return value


class TeacherFaults:
    """Counts non-finite teacher logits and reports them (see the module doc)."""

    def __init__(self, precision: str) -> None:
        self.precision = precision
        #: True once mmengine's train step parses (and so logs) the losses.
        self.deferred = False
        self._step: List[Tensor] = []  # non-finite counts of this step's logits
        self._pending: Optional[Tuple[List[Tensor], List[str], str]] = None

    def guard(self, teacher_logits: Tensor
              ) -> Tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        """Finite teacher logits (non-finite entries zeroed in place: the
        teacher's output has no graph) and ``(scale, offset)`` for each loss:
        ``loss * scale + offset`` is the loss itself when the logits were
        finite (exactly: ``* 1 + 0``), else NaN with zero gradients (``* 0 +
        NaN``, the NaN a constant). Not deferred, it raises at once and
        returns ``(logits, None, None)``: nothing to apply."""
        bad = (~torch.isfinite(teacher_logits)).sum()
        if not self.deferred:
            if bool(bad):
                raise FloatingPointError(self.message(int(bad)))
            return teacher_logits, None, None
        self._step.append(bad)
        finite = bad == 0
        scale = finite.to(teacher_logits.dtype)
        offset = torch.where(finite, 0.0, math.nan).to(teacher_logits.dtype)
        return teacher_logits.nan_to_num_(0.0, 0.0, 0.0), scale, offset

    def end_step(self, loss_keys: List[str], where: str) -> None:
        """Remember this step's counts, to be judged at the next step."""
        if self._step:  # counted on the error path only (check_previous_step)
            self._pending = (self._step, list(loss_keys), where)
        self._step = []

    def check_previous_step(self) -> None:
        """Raise if the previous step's teacher logits were not finite, as seen
        from the losses mmengine logged (host floats: no sync unless NaN)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        bad, keys, where = pending
        hub = MessageHub.get_current_instance()
        logged = [hub.log_scalars.get(f'train/{key}') for key in keys]
        if any(buf is not None and math.isnan(buf.current()) for buf in logged):
            count = int(torch.stack(bad).sum())
            if count:
                raise FloatingPointError(f'{self.message(count)} [{where}]')

    def message(self, count: int) -> str:
        text = (f'the teacher produced {count} non-finite logits (NaN/inf) on this batch: the '
                'teacher is at fault, not the student. ')
        if self.precision == 'fp16':
            text += ('It runs in fp16 (teacher_precision=\'fp16\'), whose largest value is '
                     '65504: this is an fp16 overflow. Use teacher_precision=\'bf16\' (fp32\'s '
                     'range) or \'fp32\'.')
        else:

            text += ('Check teacher_ckpt (a diverged or corrupt checkpoint) and that the '
                     'teacher runs in a precision it supports.')
        return text
