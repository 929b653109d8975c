"""mmengine's (and torch's) private names that mmkd relies on.

Checked against mmengine 0.10.7 and torch 2.14.
"""
from typing import Any, Dict, Optional

from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint
from torch import nn
from torch.hub import _get_torch_home

#: HistoryBuffer's registered statistics (``min``, ``max``, ``mean``,
#: ``current`` and any added with ``register_statistics``).
HISTORY_BUFFER_STATISTICS = HistoryBuffer._statistics_methods


def channel_conversion(preprocessor: nn.Module) -> Optional[bool]:
    """Whether a data preprocessor swaps BGR to RGB (or the reverse).

    mmengine's ``ImgDataPreprocessor`` (so mmdet's ``DetDataPreprocessor``)
    keeps it as ``_channel_conversion``; mmseg's preprocessor as
    ``channel_conversion`` and mmpretrain's as ``to_rgb`` (public names).
    ``None`` when the preprocessor has none of them.
    """
    for name in ('_channel_conversion', 'channel_conversion', 'to_rgb'):
        if hasattr(preprocessor, name):
            return getattr(preprocessor, name)
    return None


def tensor_forward(model: nn.Module, inputs: Any, data_samples: Any = None) -> Any:
    """``BaseModel``'s ``mode='tensor'`` forward (its ``_forward``)."""
    return model._forward(inputs, data_samples)


def read_checkpoint(filename: str, map_location: Any = 'cpu') -> Dict[str, Any]:
    """Read a checkpoint through mmengine's scheme-dispatching loader
    (local paths, URLs, ``torchvision://``; with mmkd imported every scheme
    goes through mmkd's allow-listed loader)."""
    return _load_checkpoint(filename, map_location=map_location)


def torch_home() -> str:
    """torch's cache root, where mmengine keeps downloaded checkpoints."""
    return _get_torch_home()
