"""The one-shot GPU check (``tools/gpu_check.py``, docs/gpu_check.md).

A GPU machine with a CUDA build of torch and nothing else of mmkd's gets
mmkd's Python dependencies from a folder of wheels, an mmcv 2.1.0 built on
the spot, then runs ``pytest -m gpu`` and the GPU benches and writes a JSON
and a markdown report.

The modules here import only torch and the standard library at import time
(:mod:`.install` and :mod:`.environment` run before mmkd's dependencies
exist); nothing here is imported by mmkd itself.
"""

#: Set to ``'1'`` by tools/gpu_check.py for its child processes when mmcv has
#: CPU ops only: they then route RoIAlign / NMS through torchvision
#: (:func:`mmkd.gpucheck.ops_route.route_through_torchvision`).
ENV_FLAG = 'MMKD_GPUCHECK_TORCHVISION_OPS'
