"""Keep mmengine checkpoints resumable under torch >= 2.6.

torch 2.6 made ``torch.load(weights_only=True)`` the default, but mmengine
0.10.x checkpoints pickle its ``HistoryBuffer`` and numpy scalars (whose
unpickling needs ``getattr``), so ``--resume`` and ``load_from`` fail with an
``UnpicklingError``. mmkd replaces mmengine's loader for *local* files: it tries
``weights_only=True`` first and, only when that fails, loads the file fully, as
mmengine did before torch 2.6, saying so in the log. Checkpoints from URLs keep
torch's default.
"""
import pickle

import torch
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_local_checkpoint(filename: str, map_location=None):
    """Load a local checkpoint, falling back to a full unpickle if needed."""
    import os.path as osp
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        print_log(f'{filename}: weights-only load refused mmengine objects (message hub, numpy '
                  'scalars); loading the local file in full.', logger='current')
        return torch.load(filename, map_location=map_location, weights_only=False)
