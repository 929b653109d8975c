"""Checkpoint loading that never runs code from the file.

torch's ``weights_only=True`` unpickler only rebuilds tensors, containers and
an allow-list of types. mmengine 0.10 checkpoints also hold its message hub
(``HistoryBuffer`` objects with numpy arrays) and numpy scalars, which that
default rejects, so ``--resume`` broke under torch >= 2.6. mmkd replaces
mmengine's loaders for local files and for ``http(s)://`` URLs (teacher
checkpoints from a model zoo) with one that loads ``weights_only=True`` with
exactly the extra types below allowed: :data:`ALLOWED_GLOBALS`.

A file that needs any other type is refused with
:class:`UntrustedCheckpointError`, naming the types, *before* anything in it is
unpickled. For a file you trust (you wrote it yourself with an older stack),
opt in explicitly, either

- ``MMKD_TRUST_CHECKPOINTS=/path/a.pth:/path/b.pth`` (``os.pathsep``-
  separated absolute or relative paths; ``MMKD_TRUST_CHECKPOINTS=all`` trusts
  every file), or
- ``trust_checkpoints = ['/path/a.pth']`` (or ``True``) in a config run with
  mmkd's ``tools/train.py`` / ``tools/test.py``, which sets the variable.

A trusted file is loaded in full (``weights_only=False``), logged as such.

Nothing here changes mmengine when the module is imported: ``import mmkd``
calls :func:`route_mmengine_loaders` once (from ``mmkd/__init__.py``), which
is what makes mmengine's own checkpoint loading (``load_from``, ``--resume``,
``init_cfg=dict(type='Pretrained')``) go through the allow-list.
"""
import os
import os.path as osp
import pickle
from typing import Callable, List, Optional
from urllib.parse import urlparse

import mmengine.runner.checkpoint as mm_checkpoint
import numpy as np
import torch
from mmengine.dist import barrier, get_dist_info
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner.checkpoint import CheckpointLoader
from torch.hub import download_url_to_file

from mmkd.hosts.mmengine import HISTORY_BUFFER_STATISTICS, torch_home

TRUST_ENV = 'MMKD_TRUST_CHECKPOINTS'


class UntrustedCheckpointError(RuntimeError):
    """A checkpoint needs types outside mmkd's allow-list to unpickle."""


def _history_buffer_getattr(obj, name: str):
    """The only ``getattr`` an mmengine checkpoint pickles: a HistoryBuffer's
    ``statistics_methods`` hold its own methods (``min``, ``max``, ``mean``,
    ``current``), pickled as ``getattr(HistoryBuffer, 'min')``. Anything else
    is refused."""
    if obj is HistoryBuffer and (name in ('min', 'max', 'mean', 'current')
                                 or name in HISTORY_BUFFER_STATISTICS):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'getattr({getattr(obj, "__name__", type(obj).__name__)}, {name!r}) is not allowed: mmkd '
        'only rebuilds mmengine.HistoryBuffer statistics methods this way.')


def _allowed_globals() -> List[Callable]:
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = [type(np.dtype(t)) for t in (
        'float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16',
        'uint32', 'uint64', 'bool', 'complex64', 'complex128', 'U', 'S', 'O')]
    return [HistoryBuffer, scalar, _reconstruct, np.ndarray, np.dtype,
            (_history_buffer_getattr, 'builtins.getattr')] + dtype_classes


#: The only non-torch types a checkpoint may contain: mmengine's
#: ``HistoryBuffer`` (message hub) and its statistics methods (through a
#: ``getattr`` restricted to them), numpy arrays, scalars and their dtypes.
ALLOWED_GLOBALS = _allowed_globals()


def _name(obj) -> str:
    if isinstance(obj, tuple):  # (replacement, 'name in the pickle')
        return obj[1]
    return f'{obj.__module__}.{obj.__qualname__}'


def _is_trusted(filename: str) -> bool:
    value = os.environ.get(TRUST_ENV, '').strip()
    if not value:
        return False
    if value.lower() in ('all', '1', 'true'):
        return True
    target = osp.realpath(filename)
    return any(osp.realpath(osp.expanduser(p)) == target for p in value.split(os.pathsep) if p)


def trust_checkpoints(paths) -> None:
    """Add ``paths`` (a list of files, or ``True`` for all) to the opt-in."""
    if paths is True:
        os.environ[TRUST_ENV] = 'all'
        return
    if not paths:
        return
    current = [p for p in os.environ.get(TRUST_ENV, '').split(os.pathsep) if p]
    os.environ[TRUST_ENV] = os.pathsep.join(current + [str(p) for p in paths])


def _unsafe_globals(filename: str) -> List[str]:
    """Types the file needs beyond torch's and mmkd's allow-lists (a scan of
    the pickle's opcodes: nothing is executed)."""
    allowed = {_name(g) for g in ALLOWED_GLOBALS}
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    except Exception:  # noqa: BLE001  (not a zip checkpoint: let torch.load say why)
        return []
    return [g for g in needed if g not in allowed]


#: Top-level checkpoint entries that stay on the CPU whatever ``map_location``
#: says: PS-KD's prediction memory (``mmkd.PSKDHook``, 2.56 GB at ImageNet
#: size), which mmengine's ``--resume`` would otherwise load onto every GPU.
CPU_RESIDENT_KEYS = frozenset({'pskd_memory'})


def load_checkpoint_file(filename: str, map_location=None):
    """Load a local checkpoint with ``weights_only=True`` and the allow-list.

    With an accelerator ``map_location`` the file is read onto the CPU and
    moved entry by entry, :data:`CPU_RESIDENT_KEYS` staying on the CPU.

    Raises:
        FileNotFoundError: no such file.
        UntrustedCheckpointError: the file needs types outside the allow-list
            and has not been trusted explicitly (see the module docstring).
    """
    if filename.startswith(('http://', 'https://')):
        return load_url_checkpoint(filename, map_location)
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    device = _accelerator(map_location)
    checkpoint = _load(filename, 'cpu' if device is not None else map_location)
    if device is None:
        return checkpoint
    if isinstance(checkpoint, dict):
        return {key: value if key in CPU_RESIDENT_KEYS else _moved(value, device)
                for key, value in checkpoint.items()}
    return _moved(checkpoint, device)


def _accelerator(map_location) -> Optional[torch.device]:
    """The device of a ``map_location`` that names one other than the CPU."""
    if isinstance(map_location, (str, torch.device)):
        device = torch.device(map_location)
        return device if device.type != 'cpu' else None
    return None


def _moved(value, device: torch.device):
    if torch.is_tensor(value):
        return value.to(device)
    if isinstance(value, dict):
        return type(value)((key, _moved(item, device)) for key, item in value.items())
    if isinstance(value, (list, tuple)) and not hasattr(value, '_fields'):
        return type(value)(_moved(item, device) for item in value)
    return value


def _load(filename: str, map_location):
    if _is_trusted(filename):
        print_log(f'{filename}: trusted by {TRUST_ENV}, loading it in full (weights_only=False).',
                  logger='current')
        return torch.load(filename, map_location=map_location, weights_only=False)
    offending = _unsafe_globals(filename)
    if offending:
        raise UntrustedCheckpointError(
            f'{filename} needs types that mmkd does not load from an untrusted file, because '
            f'unpickling them can run arbitrary code: {", ".join(offending)}. mmkd allows '
            'tensors, containers, numpy arrays/scalars and mmengine\'s HistoryBuffer. If you '
            f'trust this file, opt in with {TRUST_ENV}={filename} (environment) or '
            f'trust_checkpoints=[{filename!r}] in the config; better, re-save its state_dict '
            'with torch.save.')
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except Exception as err:  # the scan found nothing, but the unpickler refused
        if 'weights_only' not in str(err) and 'Unsupported' not in str(err):
            raise
        raise UntrustedCheckpointError(
            f'{filename} could not be loaded with weights_only=True ({str(err).splitlines()[0]}). '
            f'If you trust this file, opt in with {TRUST_ENV}={filename} or '
            f'trust_checkpoints=[{filename!r}] in the config.') from err


def load_url_checkpoint(url: str, map_location=None):
    """Download (cached in ``$TORCH_HOME/checkpoints``, as mmengine does)
    and load with the same allow-list as a local file."""
    model_dir = osp.join(torch_home(), 'checkpoints')  # mmengine's cache
    os.makedirs(model_dir, exist_ok=True)
    cached = osp.join(model_dir, osp.basename(urlparse(url).path))
    rank, world_size = get_dist_info()
    if rank == 0 and not osp.exists(cached):
        print_log(f'Downloading {url} to {cached}', logger='current')
        download_url_to_file(url, cached, progress=True)
    if world_size > 1:
        barrier()
    return load_checkpoint_file(cached, map_location)


def load_local_checkpoint(filename: str, map_location=None):
    """mmengine's loader for local paths (``load_from``, ``--resume``)."""
    return load_checkpoint_file(filename, map_location)


def load_http_checkpoint(filename: str, map_location=None, model_dir=None, progress=None):
    """mmengine's loader for URLs (model-zoo teachers, ``load_from``)."""
    return load_url_checkpoint(filename, map_location)


def route_mmengine_loaders() -> None:
    """Send all of mmengine's checkpoint loading through the allow-list.

    Registers :func:`load_local_checkpoint` and :func:`load_http_checkpoint`
    as mmengine's loaders for local paths and ``http(s)://`` URLs (replacing
    its own, hence ``force=True``), and points mmengine's module-level
    ``load_from_http`` (behind ``torchvision://`` and ``open-mmlab://``) at
    the URL loader. Called once by ``import mmkd``; calling it again is
    harmless.
    """
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)
    CheckpointLoader.register_scheme(prefixes=('http://', 'https://'),
                                     loader=load_http_checkpoint, force=True)
    mm_checkpoint.load_from_http = load_http_checkpoint
