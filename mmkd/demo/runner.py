"""The demo end to end for one task: make the data, plan the runs (the
teacher once; per seed the baseline and one student per method), train them
on the scheduler and write the report.

For a seed, every student starts from the same initial weights and sees the
same batches in the same order: they differ only by distillation. The runs
that need no teacher (the baseline, PS-KD) train alongside it.
"""
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Tuple

from .report import write_report
from .scheduler import Scheduler, job_key, log, schedule_options
from .tasks import BASELINE, REPO, TEACHER, TEACHER_ID, TaskSpec, load_config


def select_methods(task: TaskSpec, methods: Optional[List[str]]) -> List[str]:
    """The runs to train besides the teacher: the baseline, then ``methods``
    (the task's default set when ``None``).

    Raises:
        SystemExit: the task's configs are missing, or a method is unknown.
    """
    missing = task.missing()
    if missing:
        raise SystemExit(f'--task {task.name} is not available yet: {", ".join(missing)} '
                         f'do not exist. The {task.name} demo configs go in {task.config_dir}/ '
                         '(teacher_*.py, student_*.py, kd_*.py, dkd_*.py, dist_*.py).')
    methods = methods or task.default_methods
    unknown = sorted(set(methods) - set(task.students))
    if unknown:
        raise SystemExit(f'--methods: unknown {unknown} for --task {task.name}; '
                         f'choose from {sorted(task.students)}.')
    return [BASELINE] + [m for m in methods if m != BASELINE]


def default_dirs(task: TaskSpec) -> Tuple[str, str]:
    """``(work dir, data dir)`` of a task, relative to :data:`REPO`: the
    segmentation demo shares the detection demo's scenes."""
    work_dir = 'work_dirs/demo' if task.name == 'det' else f'work_dirs/demo_{task.name}'
    return work_dir, 'data/demo_cls' if task.name == 'cls' else 'data/demo_easy'


def teacher_checkpoint(work_dir: str, teacher_iters: int) -> str:
    """Where the demo's teacher run leaves its checkpoint (what the demo
    configs' ``teacher_ckpt`` names for the default work dir)."""
    return osp.join(work_dir, TEACHER, f'iter_{teacher_iters}.pth')


def _make_job(task: TaskSpec, name: str, seed: int, iters: int, data_opts: dict,
              work_dir: str, force: bool, needs: Optional[str] = None) -> dict:
    config = task.config(name)
    options = dict(schedule_options(config, iters), **data_opts)
    options.update({'randomness.seed': seed, 'train_dataloader.sampler.seed': seed})
    return dict(id=f'{name}/{seed}', name=name, seed=seed, iters=iters, task=task.name,
                config=config, options=options, needs=needs, force=force,
                tag=name if name == TEACHER else f'{name} seed {seed}',
                work_dir=osp.join(work_dir, TEACHER if name == TEACHER else f'seed{seed}/{name}'))


def plan_jobs(task: TaskSpec, methods: List[str], seeds: List[int], iters: Tuple[int, int],
              data_opts: dict, work_dir: str, force: bool) -> Tuple[List[dict], List[str]]:
    """The teacher's job and every student's, in the order they should start.

    Runs without a teacher come first (they train alongside the teacher),
    then the distilled runs seed-major, so stopping early leaves complete
    seeds. A distilled run's fingerprint includes the teacher's.

    Returns:
        ``(jobs, methods)``: the jobs, teacher first, and the methods in
        table order (runs without a teacher first, baseline first).
    """
    teacher_iters, student_iters = iters
    teacher = _make_job(task, TEACHER, 0, teacher_iters, data_opts, work_dir, force)
    teacher['key'] = job_key(teacher['config'], teacher['options'])
    jobs = [teacher]
    distilled = {name: 'teacher' in load_config(task.config(name)).model for name in methods}
    methods = sorted(methods, key=lambda name: distilled[name])  # stable: baseline first
    for name in methods:
        for seed in seeds:
            job = _make_job(task, name, seed, student_iters, data_opts, work_dir, force,
                            needs=TEACHER_ID if distilled[name] else None)
            job['key'] = job_key(job['config'], dict(job['options']),
                                 extra=teacher['key'] if distilled[name] else None)
            jobs.append(job)
    free = 1 + sum(not distilled[name] for name in methods) * len(seeds)
    jobs = jobs[:free] + sorted(jobs[free:], key=lambda j: (j['seed'], methods.index(j['name'])))
    # The teacher's checkpoint path is known in advance; it is not part of
    # the fingerprint (the teacher's key is).
    ckpt = teacher_checkpoint(work_dir, teacher_iters)
    for job in jobs[1:]:
        if distilled[job['name']]:
            job['options']['model.teacher_ckpt'] = ckpt
    return jobs, methods


def _resolve(job: dict, done: Dict[str, dict]) -> None:
    if TEACHER_ID in done:  # baselines may start before the teacher is trained
        job['teacher_ckpt'] = done[TEACHER_ID].get('checkpoint')


def run_demo(task: TaskSpec, methods: List[str], seeds: List[int], work_dir: str,
             data_dir: str, workers: int = 2, force: bool = False,
             iters: Tuple[Optional[int], Optional[int]] = (None, None),
             num_train: Optional[int] = None, num_val: Optional[int] = None,
             command: str = '') -> Dict[str, List[dict]]:
    """Run the demo of ``task`` and write its report under ``work_dir``.

    Args:
        task: the task.
        methods: what :func:`select_methods` returned.
        seeds: student seeds (the teacher is trained once, with seed 0).
        work_dir: where the runs and the report go (absolute).
        data_dir: where the data is generated.
        workers: runs trained at once, one process and one thread each.
        force: retrain runs that could be reused.
        iters: ``(teacher, student)`` iterations; ``None`` keeps the
            configs' own schedules.
        num_train: train size for the task's data maker (``None``: its default).
        num_val: val size, likewise.
        command: the command line, for the report.

    Returns:
        model name -> its runs' results, teacher first.
    """
    teacher_iters = iters[0] or load_config(task.config(TEACHER)).train_cfg.max_iters
    student_iters = iters[1] or load_config(task.config(BASELINE)).train_cfg.max_iters
    os.makedirs(work_dir, exist_ok=True)
    start = time.time()
    log(f'task {task.name}: data {data_dir}')
    data_opts = task.make_data(data_dir, num_train, num_val)
    log(f'data ready ({time.time() - start:.0f} s)')
    jobs, methods = plan_jobs(task, methods, seeds, (teacher_iters, student_iters), data_opts,
                              work_dir, force)
    log(f'{len(jobs)} runs: teacher ({teacher_iters} iters), {len(methods)} students x '
        f'{len(seeds)} seeds ({student_iters} iters) on {workers} workers')

    def needs_analysis(result):
        return task.analyze is not None and result['name'] != TEACHER and 'corr_gap' not in result

    done = Scheduler(workers, task).run(jobs, _resolve, needs_analysis)
    runs: Dict[str, List[dict]] = {TEACHER: [done[TEACHER_ID]]}
    for name in methods:
        runs[name] = [done[f'{name}/{seed}'] for seed in seeds]
    classes = None
    if task.analyze is not None:
        classes = list(load_config(task.config(TEACHER)).metainfo['classes']) + ['background']
    minutes, best = write_report(task, runs, work_dir, classes, dict(
        command=command, start=start, seeds=seeds, teacher_iters=teacher_iters,
        student_iters=student_iters))
    log(f'done in {minutes:.1f} min: {work_dir}/results.md, results.png, loss_curves.png'
        + (', corr_diff.png' if best else ''))
    return runs


__all__ = ['REPO', 'default_dirs', 'plan_jobs', 'run_demo', 'select_methods',
           'teacher_checkpoint']
