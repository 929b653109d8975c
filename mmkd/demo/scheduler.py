"""Running the demo's jobs: stretching schedules, fingerprints for reuse, and
the scheduler that trains jobs on a pool of worker processes as the teacher
allows, with progress and an ETA."""
import hashlib
import json
import multiprocessing
import os.path as osp
import statistics
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Callable, Dict, List, Optional

from .jobs import analyse_job, init_worker, run_job
from .tasks import BASELINE, TEACHER, TEACHER_ID, TaskSpec, load_config


def schedule_options(config: str, iters: Optional[int]) -> Dict[str, object]:
    """cfg options that stretch a config's iteration schedule to ``iters``
    steps: every scheduler's begin / end / T_max scales with it, and so do
    the schedule hooks' iteration counts. ``None`` keeps the config's own
    schedule."""
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


def job_key(config: str, options: dict, extra=None) -> str:
    """Fingerprint of everything a run depends on: reuse only when equal."""
    cfg = load_config(config)
    cfg.merge_from_dict({k: v for k, v in options.items() if not k.startswith('_')})
    text = json.dumps([cfg.to_dict(), options.get('_data'), extra], sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def reusable(job: dict) -> Optional[dict]:
    """The finished result of ``job`` when its fingerprint is unchanged."""
    path = osp.join(job['work_dir'], 'result.json')
    if job.get('force') or not osp.isfile(path):
        return None
    with open(path) as f:
        result = json.load(f)
    return result if result.get('key') == job['key'] else None


def log(msg: str) -> None:
    """One timestamped line of the demo's console output."""
    print(f'[demo {time.strftime("%H:%M:%S")}] {msg}', flush=True)


def fmt_time(seconds: float) -> str:
    """``seconds`` as ``<minutes>m<seconds>s``."""
    seconds = max(0, int(round(seconds)))
    return f'{seconds // 60}m{seconds % 60:02d}s'


class Scheduler:
    """Runs jobs on a pool of workers as their dependency (the teacher) allows,
    printing progress with an ETA from the measured seconds per iteration.

    Args:
        workers: runs trained at once (one process each).
        task: the task the jobs belong to (for the metric's name and scale).
    """

    # seconds per iteration before any run has finished (the detection demo's
    # runs on a quiet 2-core VM, 1 thread each)
    PRIOR = {TEACHER: 0.5, BASELINE: 0.25, 'distilled': 0.33, 'pretrain_teacher': 0.33,
             'pretrain_student': 0.13}
    OVERHEAD = 15.0  # building, evaluation and analysis of one run

    def __init__(self, workers: int, task: TaskSpec) -> None:
        self.workers, self.task = workers, task
        self.rate: Dict[str, List[float]] = {}
        self.start = time.time()

    def show(self, result: dict) -> str:
        """A run's headline metric for the console (a pretraining run's is
        its classifier's top-1)."""
        if result['name'].startswith('pretrain_'):
            return f'top-1 {result["metric"]:.1f}'
        return f'{self.task.metric_name} {result["metric"] * self.task.scale:.1f}'

    @staticmethod
    def kind(job: dict) -> str:
        """What measured seconds per iteration are kept by: the model / method."""
        return job['name']

    def estimate(self, job: dict) -> float:
        """Seconds ``job`` will take, from measured rates or the priors."""
        if job.get('analyse'):
            return self.OVERHEAD
        kind = self.kind(job)
        if kind in self.rate:
            return self.OVERHEAD + statistics.mean(self.rate[kind]) * job['iters']
        rate = self._prior(kind)
        if self.rate:  # the priors are for the detection demo: rescale them by a measured run
            seen = self._reference(kind)
            rate *= statistics.mean(self.rate[seen]) / self._prior(seen)
        return self.OVERHEAD + rate * job['iters']

    def _reference(self, kind: str) -> str:
        """The measured kind whose speed rescales the priors of ``kind``:
        one of its own family (a backbone's pretraining or a detection /
        segmentation / classification run; their costs differ by task), the
        baseline among the runs, else the first measured."""
        family = [k for k in self.rate if k.startswith('pretrain_') == kind.startswith('pretrain_')]
        if BASELINE in family:
            return BASELINE
        return family[0] if family else next(iter(self.rate))

    def _prior(self, kind: str) -> float:
        """The prior seconds per iteration of a kind of run (a method
        without its own prior: a distilled run's)."""
        return self.PRIOR.get(kind, self.PRIOR['distilled'])

    def eta(self, running: Dict[object, dict], pending: List[dict]) -> float:
        """Simulate the rest of the schedule on ``workers`` lanes: a job
        starts on the first free lane once the jobs it needs are done."""
        now = time.time()
        lanes, finish = [], {}
        for job in running.values():
            lanes.append(max(0.0, self.estimate(job) - (now - job['started'])))
            if not job.get('analyse'):
                finish[job['id']] = lanes[-1]
        lanes += [0.0] * (self.workers - len(lanes))
        for job in pending:
            lanes.sort()
            ready = max([finish.get(need, 0.0) for need in job.get('needs', ())], default=0.0)
            lanes[0] = max(lanes[0], ready) + self.estimate(job)
            if not job.get('analyse'):
                finish[job['id']] = lanes[0]
        return max(lanes)

    def run(self, jobs: List[dict], resolve: Callable[[dict, Dict[str, dict]], None],
            needs_analysis: Callable[[dict], bool]) -> Dict[str, dict]:
        """Train ``jobs`` (reusing finished ones).

        Args:
            jobs: the runs, teacher first.
            resolve: ``resolve(job, done)`` hands a job the teacher's
                checkpoint once it exists.
            needs_analysis: whether a run's result still lacks the logit
                analysis (it finished before the teacher): it is analysed
                once the teacher is trained.

        Returns:
            ``{job id: result}``.
        """
        self.jobs, self.resolve, self.needs_analysis = jobs, resolve, needs_analysis
        self.done: Dict[str, dict] = {}
        self.pending: List[dict] = []
        self.queued: set = set()
        for job in jobs:
            result = reusable(job)
            if result is not None:
                log(f'{job["tag"]}: reusing {job["work_dir"]} ({self.show(result)}); '
                    '--force retrains')
                self.done[job['id']] = result
            else:
                self.pending.append(job)
        self.total = len(self.pending)
        self._queue_analyses()
        if not self.pending:
            return self.done
        running: Dict[Future, dict] = {}
        ctx = multiprocessing.get_context('spawn')
        with ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=init_worker) as pool:
            while self.pending or running:
                self._submit(pool, running)
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    self._collect(pool, running, future)
        return self.done

    def _queue_analyses(self) -> None:
        """Once the teacher is trained, queue the analysis of every finished
        run that lacks it, ahead of the other pending jobs."""
        if TEACHER_ID not in self.done:
            return
        for job in self.jobs:
            jid = job['id']
            if jid in self.done and jid not in self.queued and self.needs_analysis(self.done[jid]):
                self.queued.add(jid)
                self.pending.insert(0, dict(job, analyse=True))

    def _submit(self, pool: ProcessPoolExecutor, running: Dict[Future, dict]) -> None:
        """Start pending jobs whose teacher is ready, while workers are free."""
        for job in list(self.pending):
            if len(running) >= self.workers:
                break
            if any(need not in self.done for need in job.get('needs', ())):
                continue
            self.resolve(job, self.done)
            self.pending.remove(job)
            job['started'] = time.time()
            if job.get('analyse'):
                log(f'{job["tag"]}: logit analysis (the teacher is trained now)')
                running[pool.submit(analyse_job, job, self.done[job['id']])] = job
            else:
                log(f'{job["tag"]}: training ({job["work_dir"]}/train.log)')
                running[pool.submit(run_job, job)] = job

    def _collect(self, pool: ProcessPoolExecutor, running: Dict[Future, dict],
                 future: Future) -> None:
        """Record a finished job's result, its speed and the progress."""
        job = running.pop(future)
        try:
            result = future.result()
        except Exception as err:
            pool.shutdown(cancel_futures=True)
            raise SystemExit(f'{job["tag"]} failed: {err!r}; see '
                             f'{job["work_dir"]}/train.log') from err
        self.done[job['id']] = result
        if job.get('analyse'):
            return
        self.rate.setdefault(self.kind(job), []).append(
            max(0.0, result['total_seconds'] - self.OVERHEAD) / job['iters'])
        n = self.total - sum(not j.get('analyse') for j in [*self.pending, *running.values()])
        log(f'{job["tag"]}: {self.show(result)} in {fmt_time(result["seconds"])} '
            f'[{n}/{self.total} runs, {fmt_time(time.time() - self.start)} elapsed, '
            f'ETA {fmt_time(self.eta(running, self.pending))}]')
        self._queue_analyses()
