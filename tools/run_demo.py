"""The embedded demo: distil a model end to end on generated data, on the CPU.

    python tools/run_demo.py [--task det|seg|cls] [--seeds 0 1 2] [--methods ...] [--force]

``make demo`` runs it. The demo lives in :mod:`mmkd.demo` (tasks, runner,
scheduler, report); see :mod:`mmkd.demo.cli` for what it does and
``--help`` for the options.
"""
import os.path as osp
import sys

# Let the script run from a plain checkout as well as from an installed mmkd.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmkd.demo.cli import main  # noqa: E402

if __name__ == '__main__':
    main()
