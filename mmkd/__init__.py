"""mmkd: knowledge distillation for OpenMMLab."""
__version__ = '0.1.0'
