"""Transitional: tests/test_losses/test_amp.py still imports
``tiny_faster_rcnn`` from here. Delete this file once that import reads
``from tests.helpers.det import tiny_faster_rcnn``."""
from tests.helpers.det import tiny_faster_rcnn  # noqa: F401
