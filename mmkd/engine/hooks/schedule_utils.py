"""What the schedule hooks (warm-up, ESKD, PS-KD) share: finding the model
behind a DDP wrapper, the runner's position in its schedule, and refusing two
hooks that would set the same distiller switch."""
import math
from typing import Optional

from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop
from torch import nn

from mmkd.models import BaseDistiller


def unwrap(runner) -> nn.Module:
    """The runner's model, without its DDP (or other) wrapper."""
    return runner.model.module if is_model_wrapper(runner.model) else runner.model


def distiller_of(runner, hook: str) -> nn.Module:
    """The runner's :class:`~mmkd.models.BaseDistiller`, or a TypeError."""
    model = unwrap(runner)
    if not isinstance(model, BaseDistiller):
        raise TypeError(f'{hook} drives an mmkd distiller (mmkd.DetectionDistiller, '
                        'mmkd.SegmentationDistiller, mmkd.ClassificationDistiller); the model is '
                        f'a {type(model).__name__}. Wrap the model in a distiller or drop the hook.')
    return model


def is_iter_based(runner) -> bool:
    return isinstance(runner.train_loop, IterBasedTrainLoop)


def check_by_epoch(runner, hook: str, by_epoch: bool, setting: str) -> None:
    """An epoch-counted setting under an iteration loop would never advance."""
    if by_epoch and is_iter_based(runner):
        raise ValueError(f'{hook}: the train loop is iteration-based (runner.epoch stays 0), so '
                         f'an epoch-counted {setting} never advances. Give the iteration '
                         'setting instead (see the hook\'s docstring).')


def check_exclusive(runner, hook) -> None:
    """Two hooks setting the same distiller switch would overwrite each other."""
    mine = set(getattr(hook, 'controls', ()))
    for other in runner.hooks:
        if other is hook:
            continue
        shared = mine & set(getattr(other, 'controls', ()))
        if shared:
            raise ValueError(f'{type(hook).__name__} and {type(other).__name__} both set the '
                             f'distiller\'s {sorted(shared)}: use one of them per run.')


def check_unused_parameters(runner, model: nn.Module, hook: str) -> None:
    """While distillation is off, trainable parts outside the student (a
    ReviewKD connector) get no gradient, which DDP rejects unless told."""
    if not is_model_wrapper(runner.model) or getattr(runner.model, 'find_unused_parameters',
                                                     True):
        return
    extra = sorted({name.split('.')[0] for name, p in model.named_parameters()
                    if p.requires_grad and not name.startswith(('student.', 'teacher.'))})
    if extra:
        raise ValueError(f'{hook} turns distillation off for some steps, and then {extra} get no '
                         'gradient, which DistributedDataParallel rejects. Set model_wrapper_cfg='
                         'dict(type=\'MMDistributedDataParallel\', find_unused_parameters=True, '
                         'broadcast_buffers=False) in the config (broadcast_buffers=False, as '
                         'mmengine\'s default wrapper has it: otherwise every forward broadcasts '
                         'all buffers, the teacher\'s too).')


def schedule_length(runner, interval: Optional[int]) -> int:
    """Number of "epochs" of the run: max_epochs, or max_iters / interval
    (rounded up) for an iteration loop."""
    if interval is None:
        return int(runner.max_epochs)
    return int(math.ceil(runner.max_iters / interval))


def schedule_step(runner, interval: Optional[int]) -> int:
    """The 0-indexed "epoch" the coming iteration belongs to."""
    return int(runner.epoch) if interval is None else int(runner.iter) // interval
