"""Training hooks and mmengine integration."""
from .checkpoint import load_local_checkpoint

__all__ = ['load_local_checkpoint']
