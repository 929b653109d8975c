"""Optimizer wrappers: DOT, the Distillation-Oriented Trainer."""
from .dot_optim_wrapper import DOTOptimWrapper
from .dot_update import dot_group_step, joint_clip_coef

__all__ = ['DOTOptimWrapper', 'dot_group_step', 'joint_clip_coef']
