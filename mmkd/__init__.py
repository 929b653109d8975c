"""mmkd: knowledge distillation for OpenMMLab detectors, segmentors and classifiers.

Importing the package

- registers every loss, model and hook in :mod:`mmkd.registry`, and
- routes mmengine's checkpoint loading (local files, URLs, ``--resume``,
  ``load_from``, pretrained ``init_cfg``) through mmkd's allow-listed
  ``weights_only`` loader (:func:`mmkd.checkpoint.route_mmengine_loaders`): a
  checkpoint that needs any type beyond tensors, containers, numpy arrays and
  mmengine's ``HistoryBuffer`` to unpickle is refused, not executed.
"""
from . import engine, losses, models  # noqa: F401  (registration)
from .checkpoint import route_mmengine_loaders
from .registry import HOOKS, MODELS

route_mmengine_loaders()

__version__ = '0.1.0'
__all__ = ['MODELS', 'HOOKS', '__version__']
