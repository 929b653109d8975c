"""Building host models and loading a teacher into one.

What every distiller does to its two models before training: build them
from host configs (dicts, ``'mmdet::...'`` paths or local files), check that
they can be distilled (same classes, same normalisation) and load the
teacher's checkpoint strictly, through mmkd's allow-listed loader.
"""
import copy
import importlib
from typing import Dict, List, Optional, Union

import torch
from mmengine.config import Config, ConfigDict
from mmengine.hub import get_config
from mmengine.logging import print_log
from mmengine.registry import DefaultScope
from torch import Tensor, nn

from mmkd.checkpoint import load_checkpoint_file
from mmkd.hosts.mmengine import channel_conversion
from mmkd.registry import MODELS

def build_model(cfg: Union[dict, str, nn.Module], scope: str) -> nn.Module:
    """Build a host-library model (``scope`` is 'mmdet', 'mmseg' or
    'mmpretrain') from a config dict, or from the ``model`` of a config file
    (``'mmseg::deeplabv3/....py'`` or a path); a module passes through."""
    if isinstance(cfg, nn.Module):
        return cfg
    if isinstance(cfg, str):
        cfg = model_config(cfg)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    importlib.import_module(f'{scope}.utils').register_all_modules(init_default_scope=False)
    # mmengine's BaseModel builds data_preprocessor from the default scope.
    with DefaultScope.overwrite_default_scope(scope):
        # A copy: mmdet's DETR detectors write into their head's config while
        # building, and a distiller config may hand the same dict (object) to
        # the student and the teacher (``teacher={{_base_.model}}``).
        return registry.build(ConfigDict(copy.deepcopy(cfg)))  # host models read cfg.attr


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
    if '::' in path:
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
        return [getattr(dp, a, None) for a in ('mean', 'std')] + [channel_conversion(dp)]

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


def load_teacher_checkpoint(teacher: nn.Module, teacher_ckpt: str,
                            hint: Optional[str] = None) -> None:
    """Load ``teacher_ckpt`` into ``teacher`` strictly, with a readable error.

    ``hint`` (a config's ``teacher_ckpt_hint``, e.g. the command that trains
    the teacher) is added to the message when the file cannot be read.

    The file is read with mmkd's allow-listed ``weights_only`` loader
    (:mod:`mmkd.checkpoint`): a checkpoint that needs any other type to
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
            'teacher_ckpt at the trained teacher\'s checkpoint (a local path or URL).'
            + (f' {hint}' if hint else '')) from err
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
