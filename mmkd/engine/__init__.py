"""Training hooks and mmengine integration."""
from . import hooks  # noqa: F401  (registers mmkd's hooks)
from .checkpoint import (ALLOWED_GLOBALS, UntrustedCheckpointError, load_checkpoint_file,
                         load_local_checkpoint, trust_checkpoints)

__all__ = ['ALLOWED_GLOBALS', 'UntrustedCheckpointError', 'load_checkpoint_file',
           'load_local_checkpoint', 'trust_checkpoints']
