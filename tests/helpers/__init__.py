"""Helpers shared by the test modules: tiny host models and batches
(``det``, ``seg``, ``cls``), small Runner set-ups (``runner``) and users'
projects run through the tools (``projects``).

Test modules import from here, never from one another, so that moving or
merging a test module never breaks another one.
"""
import os.path as osp

#: The repository root: the tools and configs are addressed from it.
REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
