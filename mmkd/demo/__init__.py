"""Download-free demo data and the embedded demo, for trying mmkd on a CPU.

- :mod:`mmkd.demo.shapes` writes the synthetic COCO-format "shapes" scenes
  (drawn by :mod:`mmkd.demo.draw` and :mod:`mmkd.demo.scenes`),
  :mod:`mmkd.demo.shapes_cls` the single-object classification set;
- :mod:`mmkd.demo.cli` is ``tools/run_demo.py`` (``make demo``): the tasks
  (:mod:`~mmkd.demo.tasks`), the runs (:mod:`~mmkd.demo.jobs`,
  :mod:`~mmkd.demo.scheduler`, :mod:`~mmkd.demo.runner`) and the report
  (:mod:`~mmkd.demo.report`).

Importing the package loads only the data generators.
"""
from .shapes import CLASSES, GENERATOR_VERSION, SEM_BACKGROUND, SEM_IGNORE, generate_shapes

__all__ = ['CLASSES', 'GENERATOR_VERSION', 'SEM_BACKGROUND', 'SEM_IGNORE', 'generate_shapes']
