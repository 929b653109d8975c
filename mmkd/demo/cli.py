"""The embedded demo: distil a model end to end on generated data, on the CPU.

A task (``--task det``, the default; ``seg`` and ``cls``) is a small
:class:`mmkd.demo.tasks.TaskSpec`: its configs, its metric and how to make
its data. For the chosen task the demo

1. generates the data and a pretraining set (seeded, no download);
2. pretrains the teacher's and the students' backbones once as image
   classifiers on the pretraining set (the demo's "ImageNet", cached in
   ``work_dirs/demo_pretrain``), trains the teacher once and, per seed
   (``--seeds``, 3 by default), the baseline student and one student per
   method (``--methods``). For a seed, every student starts from the same
   initial weights (pretrained backbone, seeded heads) and sees the same
   batches in the same order: they differ only by distillation;
3. evaluates each run with the host library's metric (COCO bbox mAP through
   mmdet's ``CocoMetric`` for detection) and, where the task has one, runs
   the teacher-student logit analysis in the same process;
4. prints a table (mean ± spread over seeds, each method's seed-paired gain
   over the baseline with its 90% t-interval, and whether that interval
   excludes 0: better, worse or within noise) and writes
   ``results.md``, ``results.json``, ``results.png`` (bar chart with error
   bars), ``loss_curves.png`` and ``corr_diff.png`` (correlation-gap heatmaps
   of the baseline and the best student) under the work dir.

Runs go through mmengine's ``Runner`` inside ``--workers`` long-lived worker
processes (one per core, one thread each), so a run costs no process start.
The baselines need no teacher and train alongside it. A finished run is
reused when its settings are unchanged; ``--force`` retrains everything.
The schedules are the configs' own unless ``--full`` (the task's longer
schedules), ``--teacher-iters`` / ``--student-iters`` or ``--pretrain-iters``
stretch them.

    python tools/run_demo.py [--task det] [--full] [--seeds 0 1 2] [--methods ...] [--force]
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

from .runner import default_dirs, run_demo, select_methods
from .tasks import REPO, TASKS


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The command line of ``tools/run_demo.py``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--task', default='det', choices=list(TASKS))
    parser.add_argument('--work-dir', help='default work_dirs/demo (det) or work_dirs/demo_<task>')
    parser.add_argument('--data', help='default data/demo_easy (det), data/demo_seg (the '
                        'same train scenes, 1000 val) or data/demo_cls')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                        help='student seeds (the teacher is trained once, with seed 0)')
    parser.add_argument('--methods', nargs='+',
                        help='students to train (default: the task\'s default set; det also '
                        'has reviewkd and dkd_reviewkd, cls eskd, pskd, kd_ls, dkd_ls, kd_dot '
                        'and kd_sgd); baseline is always added')
    parser.add_argument('--teacher-iters', type=int,
                        help='default: the teacher config\'s schedule')
    parser.add_argument('--student-iters', type=int,
                        help='default: the baseline student config\'s schedule')
    parser.add_argument('--num-train', type=int,
                        help='train scenes (det, seg: default 500) or images per class (cls: 400)')
    parser.add_argument('--num-val', type=int,
                        help='val scenes (det: default 120, seg: 1000) or images per class '
                        '(cls: 150)')
    parser.add_argument('--workers', type=int, default=2,
                        help='runs trained at once, one thread each (default: 2 cores)')
    parser.add_argument('--pretrain-iters', type=int,
                        help='steps of the backbones\' pretraining (default: its configs\')')
    parser.add_argument('--full', action='store_true',
                        help='the longer schedules, which meet every floor of the benchmark '
                        '(docs/results.md): det about 43 min, seg about 47, cls about 17')
    parser.add_argument('--force', action='store_true', help='retrain everything')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    """Run the demo as ``tools/run_demo.py`` does (``argv``: its arguments;
    ``None`` reads ``sys.argv``)."""
    args = parse_args(argv)
    task = TASKS[args.task]
    methods = select_methods(task, args.methods)
    # Relative paths are the checkout's, whatever the caller's directory.
    os.chdir(REPO)
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    os.environ.setdefault('PYTHONWARNINGS', 'ignore')
    work_dir, data_dir = default_dirs(task)
    command = 'python tools/run_demo.py ' + ' '.join(sys.argv[1:] if argv is None else argv)
    full = task.full if args.full else {}
    iters = (args.teacher_iters or full.get('teacher_iters'),
             args.student_iters or full.get('student_iters'))
    run_demo(task, methods, args.seeds, osp.abspath(args.work_dir or work_dir),
             args.data or data_dir, workers=args.workers, force=args.force, iters=iters,
             num_train=args.num_train, num_val=args.num_val, command=command,
             pretrain_iters=args.pretrain_iters, mode='full' if args.full else 'default')
