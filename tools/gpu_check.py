#!/usr/bin/env python3
"""One-shot GPU check of mmkd (docs/gpu_check.md).

    python3 tools/gpu_check.py --wheels wheels --out gpu_report
    python3 tools/gpu_check.py --device cpu --skip-install --out /tmp/report   # CI

Needs only a Python with torch: mmkd's own dependencies come from --wheels.
mmkd/gpucheck is loaded as a stand-alone package, so mmkd/__init__.py (which
imports mmengine and the host libraries) does not run before they exist.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'mmkd'))
from gpucheck.cli import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
