"""Training hooks and mmengine integration."""
from mmkd.checkpoint import (ALLOWED_GLOBALS, UntrustedCheckpointError, load_checkpoint_file,
                             load_local_checkpoint, trust_checkpoints)
from . import hooks  # noqa: F401  (registers mmkd's hooks)
from .log_processor import DistillLogProcessor
from .optim import DOTOptimWrapper  # noqa: F401  (registers mmkd.DOTOptimWrapper)

__all__ = ['DistillLogProcessor', 'ALLOWED_GLOBALS', 'UntrustedCheckpointError', 'load_checkpoint_file',
           'load_local_checkpoint', 'trust_checkpoints']
