"""Download-free demo data for trying mmkd on a CPU in minutes.

See :mod:`mmkd.demo.shapes` for the synthetic COCO-format "shapes" dataset.
"""
from .shapes import (CLASSES, GENERATOR_VERSION, SEM_BACKGROUND, SEM_IGNORE,
                     generate_shapes)

__all__ = [
    'CLASSES', 'GENERATOR_VERSION', 'SEM_BACKGROUND', 'SEM_IGNORE',
    'generate_shapes'
]
