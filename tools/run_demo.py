"""The embedded demo: distil a model end to end on generated data, on the CPU.

A task (``--task det``, the default; ``seg`` and ``cls`` when their configs
exist) is a small :class:`TaskSpec`: its configs, its metric and how to make
its data. For the chosen task the demo

1. generates the data (seeded, no download);
2. trains the teacher once and, per seed (``--seeds``, 3 by default), the
   baseline student and one student per method (``--methods``). For a seed,
   every student starts from the same initial weights and sees the same
   batches in the same order: they differ only by distillation;
3. evaluates each run with the host library's metric (COCO bbox mAP through
   mmdet's ``CocoMetric`` for detection) and, where the task has one, runs
   the teacher-student logit analysis in the same process;
4. prints a table (mean ± spread over seeds, each method's seed-paired gain
   over the baseline and whether it exceeds the spread) and writes
   ``results.md``, ``results.json``, ``results.png`` (bar chart with error
   bars), ``loss_curves.png`` and ``corr_diff.png`` (correlation-gap heatmaps
   of the baseline and the best student) under the work dir.

Runs go through mmengine's ``Runner`` inside ``--workers`` long-lived worker
processes (one per core, one thread each), so a run costs no process start.
The baselines need no teacher and train alongside it. A finished run is
reused when its settings are unchanged; ``--force`` retrains everything.

    python tools/run_demo.py [--task det] [--seeds 0 1 2] [--methods ...] [--force]
"""
import argparse
import contextlib
import copy
import glob
import hashlib
import json
import logging
import math
import multiprocessing
import os
import os.path as osp
import re
import shutil
import statistics
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..'))
sys.path.insert(0, REPO)

BASELINE = 'baseline'
TEACHER = 'teacher'
TEACHER_ID = 'teacher/0'


# -- tasks --------------------------------------------------------------------------------
@dataclass
class TaskSpec:
    """What the demo needs to know about one task.

    Attributes:
        name: ``--task`` value.
        title: one line for the chart and the report.
        config_dir: where the configs live (relative to the repo).
        teacher: teacher config file name.
        students: method -> student config file name; ``'baseline'`` is the
            undistilled student.
        default_methods: the methods a plain ``make demo`` runs.
        metric: key of the headline metric in the evaluator's results.
        extra_metrics: column name -> evaluator key, shown beside it.
        scale: factor that turns the metric into percent (COCO gives 0-1).
        make_data: ``(args) -> cfg options`` that generate the data and point
            the configs at it.
        analyze: ``(teacher, student, val_dataloader) -> dict`` logit
            analysis of a trained student, or ``None``.
        iters: default (teacher, student) iterations.
    """
    name: str
    title: str
    config_dir: str
    teacher: str
    students: Dict[str, str]
    default_methods: List[str]
    metric: str
    metric_name: str
    extra_metrics: Dict[str, str] = field(default_factory=dict)
    scale: float = 1.0
    make_data: Optional[Callable] = None
    analyze: Optional[Callable] = None
    iters: tuple = (300, 300)

    def config(self, name: str) -> str:
        return osp.join(self.config_dir, self.teacher if name == TEACHER else self.students[name])

    def missing(self) -> List[str]:
        return [self.config(n) for n in [TEACHER, *self.students]
                if not osp.isfile(osp.join(REPO, self.config(n)))]


def _shapes_data(args, image_size: int, difficulty: str) -> Dict[str, object]:
    """Generate the shapes data and return cfg options pointing at it."""
    from mmkd.demo.shapes import DIFFICULTY, generate_shapes
    info = generate_shapes(args.data, num_train=args.num_train or 500,
                           num_val=args.num_val or 120,
                           image_size=image_size, **DIFFICULTY[difficulty])
    with open(info['meta_file']) as f:
        meta = json.load(f)
    root = osp.abspath(args.data) + '/'
    ann = root + 'annotations/instances_val.json'
    return {'_data': dict(version=meta['version'], seed=meta['seed'], params=meta['params']),
            'train_dataloader.dataset.data_root': root, 'val_dataloader.dataset.data_root': root,
            'test_dataloader.dataset.data_root': root, 'val_evaluator.ann_file': ann,
            'test_evaluator.ann_file': ann}


def _det_analysis(teacher, student, dataloader) -> dict:
    """RoI-logit correlation gap and top-1 agreement on the val boxes."""
    import numpy as np
    from mmkd.analysis import correlation_difference, gt_roi_logits
    t_logits, s_logits = gt_roi_logits(teacher, student, dataloader, student.data_preprocessor)
    diff = correlation_difference(t_logits, s_logits)
    return dict(corr_gap=float(np.abs(diff).mean()),
                agreement=float((t_logits.argmax(1) == s_logits.argmax(1)).mean()),
                corr_diff=diff.round(4).tolist())


DET = TaskSpec(
    name='det', title='Faster R-CNN: half-width R18 teacher -> quarter-width R18 student (shapes)',
    config_dir='configs/demo', teacher='teacher_faster_rcnn_r18_shapes.py',
    students={BASELINE: 'student_faster_rcnn_r18w16_shapes.py',
              'kd': 'kd_r18_r18w16_shapes.py', 'dkd': 'dkd_r18_r18w16_shapes.py',
              'dist': 'dist_r18_r18w16_shapes.py', 'reviewkd': 'reviewkd_r18_r18w16_shapes.py',
              'dkd_reviewkd': 'dkd_reviewkd_r18_r18w16_shapes.py'},
    default_methods=[BASELINE, 'kd', 'dkd', 'dist'],
    metric='coco/bbox_mAP', metric_name='bbox mAP', extra_metrics={'AP50': 'coco/bbox_mAP_50'},
    scale=100.0, make_data=lambda args: _shapes_data(args, 128, 'easy'),
    analyze=_det_analysis, iters=(600, 150))


def _seg_data(args) -> Dict[str, object]:
    """The shapes scenes' semantic maps for mmseg: the detection demo's scenes
    (``easy`` preset, 128 px; the same files when ``--data`` is shared)."""
    from mmkd.demo.shapes import DIFFICULTY, generate_shapes
    info = generate_shapes(args.data, num_train=args.num_train or 500,
                           num_val=args.num_val or 120,
                           image_size=128, **DIFFICULTY['easy'])
    with open(info['meta_file']) as f:
        meta = json.load(f)
    root = osp.abspath(args.data) + '/'
    return {'_data': dict(version=meta['version'], seed=meta['seed'], params=meta['params']),
            **{f'{split}_dataloader.dataset.data_root': root for split in ('train', 'val', 'test')}}


def _cls_data(args) -> Dict[str, object]:
    """The single-object shapes classification set (``easy`` preset, 400 / 50
    images per class unless ``--num-train`` / ``--num-val`` say otherwise)."""
    from mmkd.demo.shapes_cls import generate_shapes_cls
    meta = generate_shapes_cls(args.data, num_train_per_class=args.num_train or 400,
                               num_val_per_class=args.num_val or 50,
                               difficulty='easy')
    root = osp.abspath(args.data) + '/'
    return {'_data': meta,
            **{f'{split}_dataloader.dataset.data_root': root for split in ('train', 'val', 'test')}}


def _task_from_configs(name: str, title: str, config_dir: str, metric: str, metric_name: str,
                       make_data: Callable) -> TaskSpec:
    """A task whose configs follow the demo's naming in ``config_dir``:
    ``teacher_*.py``, ``student_*.py`` and ``<method>_*.py``; the configs own
    their schedules unless ``--teacher-iters`` / ``--student-iters`` are given."""
    def first(pattern, exclude=None):
        hits = sorted(osp.basename(p) for p in glob.glob(osp.join(REPO, config_dir, pattern))
                      if not (exclude and osp.basename(p).startswith(exclude)))
        return hits[0] if hits else pattern

    students = {BASELINE: first('student_*.py'), 'kd': first('kd_*.py'),
                'dkd': first('dkd_*.py', exclude='dkd_reviewkd'), 'dist': first('dist_*.py')}
    for method in ('eskd', 'pskd'):  # the schedule methods, where the task has them
        if glob.glob(osp.join(REPO, config_dir, f'{method}_*.py')):
            students[method] = first(f'{method}_*.py')
    return TaskSpec(name=name, title=title, config_dir=config_dir,
                    teacher=first('teacher_*.py'), students=students,
                    default_methods=[BASELINE, 'kd', 'dkd', 'dist'], metric=metric,
                    metric_name=metric_name, make_data=make_data, iters=(None, None))


SCOPES = {'det': 'mmdet', 'seg': 'mmseg', 'cls': 'mmpretrain'}
TASKS = {
    'det': DET,
    'seg': _task_from_configs('seg', 'Segmentation: DeepLabV3 R18 teacher -> narrow student '
                              '(shapes)', 'configs/demo_seg', 'mIoU', 'mIoU', _seg_data),
    'cls': _task_from_configs('cls', 'Classification: ResNet teacher -> narrow student '
                              '(shapes_cls)', 'configs/demo_cls', 'accuracy/top1', 'top-1',
                              _cls_data),
}


# -- one run, inside a worker process -----------------------------------------------------
class _Progress(logging.Handler):
    """Prints mmengine's training log lines as one short progress line each."""

    def __init__(self, tag: str, stream) -> None:
        super().__init__(logging.INFO)
        self.tag, self.stream = tag, stream

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        step = re.search(r'Iter\(train\)\s*\[\s*(\d+)/(\d+)\]', msg)
        if step:
            eta = re.search(r'eta: (\S+)', msg)
            loss = re.search(r'\bloss: (\S+)', msg)
            print(f'    {self.tag}: iter {step[1]}/{step[2]}'
                  + (f'  loss {loss[1]}' if loss else '') + (f'  eta {eta[1]}' if eta else ''),
                  file=self.stream, flush=True)


def _init_worker() -> None:
    import warnings
    warnings.filterwarnings('ignore')
    import torch
    torch.set_num_threads(1)


_TEACHERS: Dict[str, object] = {}


def _teacher_model(task: TaskSpec, ckpt: str):
    """The trained teacher, built and loaded once per worker."""
    if ckpt not in _TEACHERS:
        from mmkd.models.base_distiller import build_model, load_teacher_checkpoint
        model = build_model(load_config(task.config(TEACHER)).model,
                            SCOPES[task.name])
        load_teacher_checkpoint(model, ckpt)
        _TEACHERS.clear()
        _TEACHERS[ckpt] = model.eval()
    return _TEACHERS[ckpt]


def run_job(job: dict) -> dict:
    """Train one model with mmengine's Runner, evaluate it, analyse it."""
    from mmengine.runner import Runner

    task = TASKS[job['task']]
    work_dir = job['work_dir']
    if osp.isdir(work_dir):
        shutil.rmtree(work_dir)
    os.makedirs(work_dir)
    cfg = load_config(job['config'])
    cfg.merge_from_dict(job['options'])
    tag = job['tag']
    exp = f'{job["task"]}_{job["name"]}_seed{job["seed"]}_{os.getpid()}_{time.time_ns()}'
    cfg.work_dir = work_dir
    cfg.experiment_name = exp
    cfg.visualizer.name = exp
    # The run's log goes to its file; the console gets one line per log interval.
    console = sys.stdout
    with open(os.devnull, 'w') as devnull, contextlib.redirect_stdout(devnull):
        runner = Runner.from_cfg(cfg)  # its console handler writes to devnull
        runner.logger.addHandler(_Progress(tag, console))
        try:
            result = _train_and_analyse(task, job, runner)
        finally:
            for handler in list(runner.logger.handlers):  # this logger's run is over
                runner.logger.removeHandler(handler)
            logs = glob.glob(osp.join(work_dir, '*', '*.log'))
            if logs:
                shutil.copy(logs[0], osp.join(work_dir, 'train.log'))
    with open(osp.join(work_dir, 'result.json'), 'w') as f:
        json.dump(result, f, indent=1)
    return result


def analyse_job(job: dict, result: dict) -> dict:
    """The logit analysis of a run that finished before the teacher did."""
    from mmengine.runner import Runner

    from mmkd.models.base_distiller import build_model, student_state_dict
    from mmkd.engine.checkpoint import load_checkpoint_file
    task = TASKS[job['task']]
    cfg = load_config(job['config'])
    cfg.merge_from_dict(job['options'])
    model_cfg = cfg.model.get('student', cfg.model)
    student = build_model(model_cfg, SCOPES[task.name])
    state = load_checkpoint_file(result['checkpoint'], map_location='cpu')
    student.load_state_dict(student_state_dict(state.get('state_dict', state)), strict=True)
    with open(os.devnull, 'w') as devnull, contextlib.redirect_stdout(devnull):
        loader = Runner.build_dataloader(cfg.val_dataloader)
        result = dict(result, **task.analyze(_teacher_model(task, job['teacher_ckpt']),
                                             student, loader))
    with open(osp.join(job['work_dir'], 'result.json'), 'w') as f:
        json.dump(result, f, indent=1)
    return result


def _train_and_analyse(task: TaskSpec, job: dict, runner) -> dict:
    start = time.time()
    runner.train()
    seconds = time.time() - start
    work_dir = job['work_dir']
    hub = runner.message_hub
    result = dict(name=job['name'], seed=job['seed'], seconds=seconds, work_dir=work_dir,
                  key=job['key'], metric=hub.get_scalar(f'val/{task.metric}').current())
    for column, key in task.extra_metrics.items():
        result[column] = hub.get_scalar(f'val/{key}').current()
    ckpt = osp.join(work_dir, f'iter_{runner.max_iters}.pth')
    result['checkpoint'] = ckpt if osp.isfile(ckpt) else None
    if task.analyze is not None and job.get('teacher_ckpt'):
        model = runner.model
        student = getattr(model, 'student', model)
        teacher = getattr(model, 'teacher', None)
        if teacher is None:
            teacher = _teacher_model(task, job['teacher_ckpt'])
        result.update(task.analyze(teacher, student, runner.val_loop.dataloader))
    result['diagnostics'] = diagnostics(read_scalars(work_dir))
    result['total_seconds'] = time.time() - start
    return result


# -- scheduling ---------------------------------------------------------------------------
def schedule_options(config: str, iters: Optional[int]) -> Dict[str, object]:
    """cfg options that stretch a config's iteration schedule to ``iters``
    steps: every scheduler's begin / end / T_max scales with it. ``None``
    keeps the config's own schedule."""
    if iters is None:
        return {}
    cfg = load_config(config)
    old = cfg.train_cfg.max_iters
    opts = {'train_cfg.max_iters': iters, 'train_cfg.val_interval': iters,
            'default_hooks.checkpoint.interval': iters,
            'default_hooks.logger.interval': max(1, min(50, iters // 4))}
    schedulers = cfg.get('param_scheduler') or []
    is_list = isinstance(schedulers, (list, tuple))
    for i, sched in enumerate(schedulers if is_list else [schedulers]):
        prefix = f'param_scheduler.{i}.' if is_list else 'param_scheduler.'
        begin = round(sched.get('begin', 0) * iters / old)
        if 'begin' in sched:
            opts[prefix + 'begin'] = begin
        if 'end' in sched:
            opts[prefix + 'end'] = max(begin + 1, round(sched['end'] * iters / old))
        if 'T_max' in sched:
            opts[prefix + 'T_max'] = max(1, round(sched['T_max'] * iters / old))
    # the schedule hooks' iteration counts (ESKD's stop, PS-KD's "epoch", a warm-up)
    hooks = cfg.get('custom_hooks') or []
    for i, hook in enumerate(hooks):
        for key in ('stop_iter', 'interval', 'warmup'):
            if key in hook and not (key == 'warmup' and hook.get('by_epoch', True)):
                opts[f'custom_hooks.{i}.{key}'] = max(1, round(hook[key] * iters / old))
    return opts


_CONFIGS: Dict[str, object] = {}


def load_config(config: str):
    """A config read once per process (a copy: callers may change it)."""
    if config not in _CONFIGS:
        from mmengine.config import Config
        _CONFIGS[config] = Config.fromfile(osp.join(REPO, config))
    return copy.deepcopy(_CONFIGS[config])


def job_key(config: str, options: dict, extra=None) -> str:
    """Fingerprint of everything a run depends on: reuse only when equal."""
    cfg = load_config(config)
    cfg.merge_from_dict({k: v for k, v in options.items() if not k.startswith('_')})
    text = json.dumps([cfg.to_dict(), options.get('_data'), extra], sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def log(msg: str) -> None:
    print(f'[demo {time.strftime("%H:%M:%S")}] {msg}', flush=True)


def fmt_time(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f'{seconds // 60}m{seconds % 60:02d}s'


class Scheduler:
    """Runs jobs on a pool of workers as their dependency (the teacher) allows,
    printing progress with an ETA from the measured seconds per iteration."""

    # seconds per iteration before any run has finished (2-core VM, 1 thread each)
    PRIOR = {TEACHER: 0.7, BASELINE: 0.4, 'distilled': 0.55}
    OVERHEAD = 15.0  # building, evaluation and analysis of one run

    def __init__(self, workers: int, task: TaskSpec) -> None:
        self.workers, self.task = workers, task
        self.rate: Dict[str, List[float]] = {}
        self.start = time.time()

    def show(self, result: dict) -> str:
        return f'{self.task.metric_name} {result["metric"] * self.task.scale:.1f}'

    @staticmethod
    def kind(job: dict) -> str:
        return job['name']  # measured seconds per iteration are kept per model / method

    def estimate(self, job: dict) -> float:
        if job.get('analyse'):
            return self.OVERHEAD
        kind = self.kind(job)
        if kind in self.rate:
            return self.OVERHEAD + statistics.mean(self.rate[kind]) * job['iters']
        rate = self.PRIOR.get(kind, self.PRIOR['distilled' if job.get('needs') else BASELINE])
        if self.rate:  # the priors are for the detection demo: rescale them by a measured run
            seen = next(iter(self.rate))
            rate *= statistics.mean(self.rate[seen]) / self.PRIOR.get(
                seen, self.PRIOR['distilled' if seen not in (TEACHER, BASELINE) else BASELINE])
        return self.OVERHEAD + rate * job['iters']

    def eta(self, running: Dict[object, dict], pending: List[dict]) -> float:
        """Simulate the rest of the schedule on ``workers`` lanes."""
        now = time.time()
        lanes, teacher_done = [], 0.0
        for job in running.values():
            lanes.append(max(0.0, self.estimate(job) - (now - job['started'])))
            if job['name'] == TEACHER and not job.get('analyse'):
                teacher_done = lanes[-1]
        lanes += [0.0] * (self.workers - len(lanes))
        for job in pending:
            lanes.sort()
            begin = max(lanes[0], teacher_done) if job.get('needs') else lanes[0]
            lanes[0] = begin + self.estimate(job)
            if job['name'] == TEACHER:
                teacher_done = lanes[0]
        return max(lanes)

    def run(self, jobs: List[dict], resolve: Callable[[dict, Dict[str, dict]], None],
            needs_analysis: Callable[[dict], bool]) -> Dict:
        """Train ``jobs`` (reusing finished ones). ``resolve(job, done)`` hands
        a job the teacher's checkpoint once it exists; a run that finished
        before the teacher (``needs_analysis(result)``) is analysed after it.
        Returns ``{job id: result}``."""
        done: Dict[str, dict] = {}
        pending, queued = [], set()
        for job in jobs:
            result = reusable(job)
            if result is not None:
                log(f'{job["tag"]}: reusing {job["work_dir"]} ({self.show(result)}); '
                    '--force retrains')
                done[job['id']] = result
            else:
                pending.append(job)
        total = len(pending)

        def queue_analyses():
            if TEACHER_ID not in done:
                return
            for job in jobs:
                if job['id'] in done and job['id'] not in queued and needs_analysis(done[job['id']]):
                    queued.add(job['id'])
                    pending.insert(0, dict(job, analyse=True))

        queue_analyses()
        if not pending:
            return done
        ctx = multiprocessing.get_context('spawn')
        running: Dict[object, dict] = {}
        with ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker) as pool:
            while pending or running:
                for job in list(pending):
                    if len(running) >= self.workers:
                        break
                    if job.get('needs') and job['needs'] not in done:
                        continue
                    resolve(job, done)
                    pending.remove(job)
                    job['started'] = time.time()
                    if job.get('analyse'):
                        log(f'{job["tag"]}: logit analysis (the teacher is trained now)')
                        running[pool.submit(analyse_job, job, done[job['id']])] = job
                    else:
                        log(f'{job["tag"]}: training ({job["work_dir"]}/train.log)')
                        running[pool.submit(run_job, job)] = job
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    job = running.pop(future)
                    try:
                        result = future.result()
                    except Exception as err:
                        pool.shutdown(cancel_futures=True)
                        raise SystemExit(f'{job["tag"]} failed: {err!r}; see '
                                         f'{job["work_dir"]}/train.log') from err
                    done[job['id']] = result
                    if job.get('analyse'):
                        continue
                    self.rate.setdefault(self.kind(job), []).append(
                        max(0.0, result['total_seconds'] - self.OVERHEAD) / job['iters'])
                    n = total - sum(not j.get('analyse') for j in [*pending, *running.values()])
                    log(f'{job["tag"]}: {self.show(result)} in {fmt_time(result["seconds"])} '
                        f'[{n}/{total} runs, {fmt_time(time.time() - self.start)} elapsed, '
                        f'ETA {fmt_time(self.eta(running, pending))}]')
                    queue_analyses()
        return done


def reusable(job: dict) -> Optional[dict]:
    path = osp.join(job['work_dir'], 'result.json')
    if job.get('force') or not osp.isfile(path):
        return None
    with open(path) as f:
        result = json.load(f)
    return result if result.get('key') == job['key'] else None


# -- results ------------------------------------------------------------------------------
def read_scalars(work_dir: str) -> List[dict]:
    rows = []
    for dirpath, _, files in os.walk(work_dir):
        if 'scalars.json' in files:
            with open(osp.join(dirpath, 'scalars.json')) as f:
                rows += [json.loads(line) for line in f if line.strip()]
    return rows


def diagnostics(rows: List[dict]) -> dict:
    """Loss terms and agreement at the start and end of training (log rows)."""
    train = [r for r in rows if 'loss' in r and 'iter' in r]
    if not train:
        return {}
    keys = sorted({k for r in train for k in r if 'loss' in k or k.endswith('agreement')
                   or re.match(r'(kd|dkd|dist)_', k)})
    first, last = train[0], train[-1]
    return {k: dict(first=first.get(k), last=last.get(k)) for k in keys}


def _mean_sd(values: List[float]) -> tuple:
    return (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(task: TaskSpec, runs: Dict[str, List[dict]]) -> List[dict]:
    """Per model: mean ± sd over seeds; per method the seed-paired gain.

    The gain of a method is ``mean_s (method_s - baseline_s)`` over the seeds
    both ran. It counts as signal when it exceeds the spread, i.e. both the
    sample sd of those paired differences and the baseline's sd over seeds.
    """
    base = {r['seed']: r['metric'] * task.scale for r in runs.get(BASELINE, [])}
    table = []
    for name, rs in runs.items():
        row = dict(name=name, n=len(rs), seeds=[r['seed'] for r in rs],
                   metric=_mean_sd([r['metric'] * task.scale for r in rs]),
                   minutes=statistics.mean(r['seconds'] for r in rs) / 60)
        for column in task.extra_metrics:
            row[column] = _mean_sd([r[column] * task.scale for r in rs])
        if all('corr_gap' in r for r in rs):
            row['corr_gap'] = _mean_sd([r['corr_gap'] for r in rs])
            row['agreement'] = _mean_sd([r['agreement'] for r in rs])
        if name not in (TEACHER, BASELINE) and base:
            diffs = [r['metric'] * task.scale - base[r['seed']] for r in rs if r['seed'] in base]
            if diffs:
                gain, sd = _mean_sd(diffs)
                noise = max(sd, _mean_sd(list(base.values()))[1])
                row['gain'] = dict(mean=gain, sd=sd, per_seed=diffs, wins=int(sum(d > 0 for d in diffs)),
                                   noise=noise, signal=bool(len(diffs) > 1 and gain > noise))
        table.append(row)
    return table


def markdown(task: TaskSpec, table: List[dict]) -> str:
    pm = '{0[0]:.1f} ± {0[1]:.1f}'.format
    extra = list(task.extra_metrics)
    head = (['model', 'seeds', task.metric_name] + extra
            + ['gain vs baseline (paired)', 'seeds won', 'beyond noise?'])
    has_gap = any('corr_gap' in r for r in table)
    if has_gap:
        head += ['corr gap to teacher', 'top-1 agreement']
    head.append('min / run')
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for row in table:
        cells = [row['name'], str(row['n']), pm(row['metric'])] + [pm(row[c]) for c in extra]
        g = row.get('gain')
        if g:
            cells += [f'{g["mean"]:+.1f} ± {g["sd"]:.1f}', f'{g["wins"]}/{len(g["per_seed"])}',
                      ('**yes**' if g['signal'] else 'no') + f' (spread {g["noise"]:.1f})']
        else:
            cells += ['—', '—', '—']
        if has_gap:
            cells += ['{0[0]:.3f} ± {0[1]:.3f}'.format(row['corr_gap']) if 'corr_gap' in row
                      else '—', '{0[0]:.2f}'.format(row['agreement']) if 'agreement' in row
                      else '—']
        cells.append(f'{row["minutes"]:.1f}')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def diagnostics_markdown(runs: Dict[str, List[dict]]) -> str:
    """Mean over seeds of the logged loss terms and agreement, first -> last log row."""
    lines = ['| model | term | first logged | last logged |', '|---|---|---|---|']
    for name, rs in runs.items():
        if name == TEACHER:
            continue
        keys = sorted({k for r in rs for k in r.get('diagnostics', {})})
        for key in keys:
            vals = [r['diagnostics'][key] for r in rs if key in r.get('diagnostics', {})]
            first = [v['first'] for v in vals if v['first'] is not None]
            last = [v['last'] for v in vals if v['last'] is not None]
            if key in ('loss', 'loss_cls') or 'agreement' in key or key.startswith('loss_') and \
                    key not in ('loss_bbox', 'loss_rpn_bbox', 'loss_rpn_cls'):
                lines.append(f'| {name} | {key} | {statistics.mean(first):.3f} | '
                             f'{statistics.mean(last):.3f} |' if first and last else '')
    return '\n'.join(line for line in lines if line)


def plot(task: TaskSpec, table: List[dict], runs: Dict[str, List[dict]], out_dir: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(1.3 * len(table) + 2, 3.8))
    names = [r['name'] for r in table]
    colors = ['#555555', '#9a9a9a'] + ['#3a7bd5'] * (len(names) - 2)
    ax.bar(names, [r['metric'][0] for r in table], yerr=[r['metric'][1] for r in table],
           color=colors, capsize=4)
    for i, row in enumerate(table):
        for r in runs[row['name']]:  # the individual seeds
            ax.plot(i, r['metric'] * task.scale, 'k.', ms=4)
    ax.set_ylabel(f'{task.metric_name} (%)')
    ax.set_title(task.title, fontsize=9)
    fig.tight_layout()
    fig.savefig(osp.join(out_dir, 'results.png'), dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for name, rs in runs.items():
        if name == TEACHER:
            continue
        rows = [r for r in read_scalars(rs[0]['work_dir']) if 'loss' in r and 'iter' in r]
        it = [r['iter'] for r in rows]
        axes[0].plot(it, [r['loss'] for r in rows], label=name)
        for key in sorted({k for r in rows for k in r if k.startswith('loss_')} - {
                'loss_cls', 'loss_bbox', 'loss_rpn_cls', 'loss_rpn_bbox'}):
            axes[1].plot([r['iter'] for r in rows if key in r], [r[key] for r in rows if key in r],
                         label=f'{name}: {key}')
        if any('kd_agreement' in r for r in rows):
            axes[2].plot([r['iter'] for r in rows if 'kd_agreement' in r],
                         [r['kd_agreement'] for r in rows if 'kd_agreement' in r], label=name)
    titles = ['total training loss', 'distillation terms', 'teacher-student top-1 agreement (RoIs)']
    for ax, title in zip(axes, titles):
        ax.set_title(f'{title}, seed {runs[BASELINE][0]["seed"]}' if BASELINE in runs else title,
                     fontsize=9)
        ax.set_xlabel('iteration')
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(osp.join(out_dir, 'loss_curves.png'), dpi=120)
    plt.close(fig)


def plot_heatmaps(table: List[dict], runs: Dict[str, List[dict]], classes: List[str],
                  out_dir: str) -> Optional[str]:
    """Baseline and best student's correlation gaps side by side (first seed)."""
    students = [r for r in table if r['name'] not in (TEACHER, BASELINE)]
    if BASELINE not in runs or not students or 'corr_diff' not in runs[BASELINE][0]:
        return None
    from mmkd.analysis import plot_differences
    best = max(students, key=lambda r: r['metric'][0])['name']
    seed = runs[BASELINE][0]['seed']
    pick = {n: next((r for r in runs[n] if r['seed'] == seed), runs[n][0]) for n in (BASELINE, best)}
    import numpy as np
    path = osp.join(out_dir, 'corr_diff.png')
    plot_differences({f'{n} (seed {r["seed"]})': np.array(r['corr_diff']) for n, r in pick.items()},
                     classes, path)
    return best


# -- main ---------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--task', default='det', choices=list(TASKS))
    parser.add_argument('--work-dir', help='default work_dirs/demo (det) or work_dirs/demo_<task>')
    parser.add_argument('--data', help='default data/demo_easy (det, seg: the same scenes) or '
                        'data/demo_cls')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                        help='student seeds (the teacher is trained once, with seed 0)')
    parser.add_argument('--methods', nargs='+',
                        help='students to train (default: the task\'s default set; det also '
                        'has reviewkd and dkd_reviewkd, cls eskd and pskd); baseline is always '
                        'added')
    parser.add_argument('--teacher-iters', type=int)
    parser.add_argument('--student-iters', type=int)
    parser.add_argument('--num-train', type=int,
                        help='train scenes (det, seg: default 500) or images per class (cls: 400)')
    parser.add_argument('--num-val', type=int,
                        help='val scenes (det, seg: default 120) or images per class (cls: 50)')
    parser.add_argument('--workers', type=int, default=2,
                        help='runs trained at once, one thread each (default: 2 cores)')
    parser.add_argument('--force', action='store_true', help='retrain everything')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    task = TASKS[args.task]
    missing = task.missing()
    if missing:
        raise SystemExit(f'--task {task.name} is not available yet: {", ".join(missing)} '
                         f'do not exist. The {task.name} demo configs go in {task.config_dir}/ '
                         '(teacher_*.py, student_*.py, kd_*.py, dkd_*.py, dist_*.py).')
    methods = args.methods or task.default_methods
    unknown = sorted(set(methods) - set(task.students))
    if unknown:
        raise SystemExit(f'--methods: unknown {unknown} for --task {task.name}; '
                         f'choose from {sorted(task.students)}.')
    methods = [BASELINE] + [m for m in methods if m != BASELINE]
    os.chdir(REPO)
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    os.environ.setdefault('PYTHONWARNINGS', 'ignore')
    args.work_dir = osp.abspath(args.work_dir or ('work_dirs/demo' if task.name == 'det'
                                                  else f'work_dirs/demo_{task.name}'))
    args.data = args.data or ('data/demo_cls' if task.name == 'cls' else 'data/demo_easy')
    teacher_iters = args.teacher_iters or task.iters[0]
    student_iters = args.student_iters or task.iters[1]
    if teacher_iters is None:  # the configs' own schedules
        teacher_iters = load_config(task.config(TEACHER)).train_cfg.max_iters
    if student_iters is None:
        student_iters = load_config(task.config(BASELINE)).train_cfg.max_iters
    os.makedirs(args.work_dir, exist_ok=True)
    start = time.time()

    log(f'task {task.name}: data {args.data}')
    data_opts = task.make_data(args)
    log(f'data ready ({time.time() - start:.0f} s)')

    def make_job(name, seed, iters, needs=None):
        options = dict(schedule_options(task.config(name), iters), **data_opts)
        options.update({'randomness.seed': seed, 'train_dataloader.sampler.seed': seed})
        config = task.config(name)
        job = dict(id=f'{name}/{seed}', name=name, seed=seed, iters=iters, task=task.name,
                   config=config, options=options, needs=needs, force=args.force,
                   tag=name if name == TEACHER else f'{name} seed {seed}',
                   work_dir=osp.join(args.work_dir, TEACHER if name == TEACHER
                                     else f'seed{seed}/{name}'))
        return job

    teacher = make_job(TEACHER, 0, teacher_iters)
    teacher['key'] = job_key(teacher['config'], teacher['options'])
    jobs = [teacher]
    # runs without a teacher (the baseline, PS-KD) first: they train alongside the teacher
    distilled = {name: 'teacher' in load_config(task.config(name)).model for name in methods}
    methods = sorted(methods, key=lambda name: distilled[name])  # stable: baseline first
    for name in methods:
        for seed in args.seeds:
            job = make_job(name, seed, student_iters, needs=TEACHER_ID if distilled[name] else None)
            job['key'] = job_key(job['config'], {k: v for k, v in job['options'].items()},
                                 extra=teacher['key'] if distilled[name] else None)
            jobs.append(job)
    # distilled runs seed-major, so stopping early leaves complete seeds
    free = 1 + sum(not distilled[name] for name in methods) * len(args.seeds)
    jobs = jobs[:free] + sorted(jobs[free:], key=lambda j: (j['seed'], methods.index(j['name'])))

    def resolve(job, done):
        if TEACHER_ID in done:  # baselines may start before the teacher is trained
            job['teacher_ckpt'] = done[TEACHER_ID].get('checkpoint')

    # the teacher's checkpoint path is known in advance
    ckpt_path = osp.join(teacher['work_dir'], f'iter_{teacher_iters}.pth')
    for job in jobs[1:]:
        if distilled[job['name']]:
            job['options']['model.teacher_ckpt'] = ckpt_path

    log(f'{len(jobs)} runs: teacher ({teacher_iters} iters), {len(methods)} students x '
        f'{len(args.seeds)} seeds ({student_iters} iters) on {args.workers} workers')
    def needs_analysis(result):
        return (task.analyze is not None and result['name'] != TEACHER
                and 'corr_gap' not in result)

    done = Scheduler(args.workers, task).run(jobs, resolve, needs_analysis)
    runs: Dict[str, List[dict]] = {TEACHER: [done[TEACHER_ID]]}
    for name in methods:
        runs[name] = [done[f'{name}/{seed}'] for seed in args.seeds]

    table = summarise(task, runs)
    text = markdown(task, table)
    print('\n' + text + '\n')
    best = None
    if task.analyze is not None:
        classes = list(load_config(task.config(TEACHER)).metainfo['classes'])
        best = plot_heatmaps(table, runs, classes + ['background'], args.work_dir)
    plot(task, table, runs, args.work_dir)
    minutes = (time.time() - start) / 60
    command = 'python tools/run_demo.py ' + ' '.join(sys.argv[1:] if argv is None else argv)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(f'# {task.title}\n\n`{command.strip()}`: {minutes:.1f} min wall clock '
                f'(this invocation; reused runs cost nothing)\n\n{text}\n\n'
                f'## Diagnostics (mean over seeds)\n\n{diagnostics_markdown(runs)}\n')
        if best:
            f.write(f'\n![correlation gaps](corr_diff.png): baseline vs {best}\n')
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(dict(task=task.name, command=command, minutes=minutes, seeds=args.seeds,
                       teacher_iters=teacher_iters, student_iters=student_iters, table=table,
                       runs=runs, best=best), f, indent=1)
    log(f'done in {minutes:.1f} min: {args.work_dir}/results.md, results.png, loss_curves.png'
        + (', corr_diff.png' if best else ''))


if __name__ == '__main__':
    main()
