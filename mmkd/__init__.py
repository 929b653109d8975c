"""mmkd: knowledge distillation for OpenMMLab detectors, segmentors and classifiers.

Importing the package registers every loss, model and hook in
:mod:`mmkd.registry`.
"""
from . import engine, losses, models  # noqa: F401  (registration)
from .registry import HOOKS, MODELS

__version__ = '0.1.0'
__all__ = ['MODELS', 'HOOKS', '__version__']
