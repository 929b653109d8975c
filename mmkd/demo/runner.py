"""The demo end to end for one task: make the data, plan the runs (the
teacher's and the students' backbones pretrained once; the teacher once; per
seed the baseline and one student per method), train them on the scheduler
and write the report.

For a seed, every student starts from the same initial weights (the same
pretrained backbone, the same random heads) and sees the same batches in
the same order: they differ only by distillation. The runs that need no
teacher (the baseline, PS-KD) train alongside it.
"""
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Tuple

from .report import write_report
from .scheduler import Scheduler, job_key, log, schedule_options
from .tasks import BASELINE, REPO, TEACHER, TEACHER_ID, TaskSpec, load_config

#: Job ids of the backbone pretraining runs, by the role of the model that loads it.
PRETRAIN_IDS = {TEACHER: 'pretrain_teacher/0', 'student': 'pretrain_student/0'}


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
    """``(work dir, data dir)`` of a task, relative to :data:`REPO`
    (``data/demo_seg`` holds the detection demo's train scenes and a larger
    val split)."""
    work_dir = 'work_dirs/demo' if task.name == 'det' else f'work_dirs/demo_{task.name}'
    return work_dir, {'det': 'data/demo_easy'}.get(task.name, f'data/demo_{task.name}')


def teacher_checkpoint(work_dir: str, teacher_iters: int) -> str:
    """Where the demo's teacher run leaves its checkpoint (what the demo
    configs' ``teacher_ckpt`` names for the default work dir)."""
    return osp.join(work_dir, TEACHER, f'iter_{teacher_iters}.pth')


def pretrain_dir(work_dir: str) -> str:
    """Where the pretrained backbones go: ``demo_pretrain`` beside the demo's
    work dir (``work_dirs/demo_pretrain`` for the default work dirs, what
    the demo configs' ``init_cfg`` names), shared by every demo run."""
    return osp.join(osp.dirname(osp.abspath(work_dir)), 'demo_pretrain')


def _make_job(task: TaskSpec, name: str, seed: int, iters: Optional[int], data_opts: dict,
              work_dir: str, force: bool, needs: Tuple[str, ...] = (),
              config: Optional[str] = None) -> dict:
    config = config or task.config(name)
    options = dict(schedule_options(config, iters), **data_opts)
    options.update({'randomness.seed': seed, 'train_dataloader.sampler.seed': seed})
    return dict(id=f'{name}/{seed}', name=name, seed=seed, iters=iters, task=task.name,
                config=config, options=options, needs=list(needs), force=force,
                tag=name if name == TEACHER else f'{name} seed {seed}',
                work_dir=osp.join(work_dir, TEACHER if name == TEACHER else f'seed{seed}/{name}'))


def _pretrain_jobs(task: TaskSpec, iters: Optional[int], data_opts: dict, work_dir: str,
                   force: bool) -> Dict[str, dict]:
    """The backbone pretraining runs of ``task``, by role: image classifiers
    scored with mmpretrain's Accuracy, in :func:`pretrain_dir`."""
    jobs = {}
    for role, name in task.pretrain.items():
        config = task.pretrain_config(role)
        job = _make_job(task, f'pretrain_{role}', 0, iters, data_opts, work_dir, force,
                        config=config)
        job.update(tag=f'pretrain {role} backbone',
                   work_dir=osp.join(pretrain_dir(work_dir), osp.splitext(name)[0]),
                   metric='accuracy/top1', metric_name='top-1', scale=1.0, extra_metrics={})
        job['iters'] = iters or load_config(config).train_cfg.max_iters
        job['key'] = job_key(config, job['options'])
        jobs[role] = job
    return jobs


def _load_pretrained(job: dict, prefix: str, pretrain: Optional[dict]) -> None:
    """Point a run's backbone at its pretraining run's checkpoint (the path
    is known in advance; the pretraining run's key is in the fingerprint)."""
    if pretrain is not None:
        job['options'][f'{prefix}backbone.init_cfg.checkpoint'] = osp.join(
            pretrain['work_dir'], f'iter_{pretrain["iters"]}.pth')


def plan_jobs(task: TaskSpec, methods: List[str], seeds: List[int], iters: Tuple[int, int],
              data_opts: dict, work_dir: str, force: bool, pretrain_iters: Optional[int] = None,
              pretrain_opts: Optional[dict] = None) -> Tuple[List[dict], List[str]]:
    """The pretraining jobs, the teacher's and every student's, in the order
    they should start.

    The backbones' pretraining runs come first, then the teacher, then the
    runs without a teacher (they train alongside the teacher), then the
    distilled runs seed-major, so stopping early leaves complete seeds. A
    run's fingerprint includes those of the runs it loads (its backbone's
    pretraining, the teacher).

    Args:
        pretrain_iters: the pretraining runs' steps (``None``: their configs').
        pretrain_opts: cfg options of the pretraining set (``None``: the
            task's :attr:`TaskSpec.make_pretrain_data` was not run; only
            valid for a task without pretraining).

    Returns:
        ``(jobs, methods)``: the jobs (pretraining first, then the teacher)
        and the methods in table order (runs without a teacher first,
        baseline first).
    """
    teacher_iters, student_iters = iters
    pretrain = _pretrain_jobs(task, pretrain_iters, pretrain_opts or {}, work_dir, force)
    pre_t, pre_s = pretrain.get(TEACHER), pretrain.get('student')
    teacher = _make_job(task, TEACHER, 0, teacher_iters, data_opts, work_dir, force,
                        needs=[pre_t['id']] if pre_t else ())
    teacher['key'] = job_key(teacher['config'], teacher['options'],
                             extra=pre_t['key'] if pre_t else None)
    _load_pretrained(teacher, 'model.', pre_t)
    jobs = [teacher]
    distilled = {name: 'teacher' in load_config(task.config(name)).model for name in methods}
    methods = sorted(methods, key=lambda name: distilled[name])  # stable: baseline first
    for name in methods:
        for seed in seeds:
            needs = ([pre_s['id']] if pre_s else []) + ([TEACHER_ID] if distilled[name] else [])
            job = _make_job(task, name, seed, student_iters, data_opts, work_dir, force,
                            needs=needs)
            job['key'] = job_key(job['config'], dict(job['options']), extra=[
                pre_s['key'] if pre_s else None, teacher['key'] if distilled[name] else None])
            _load_pretrained(job, 'model.student.' if distilled[name] else 'model.', pre_s)
            jobs.append(job)
    free = 1 + sum(not distilled[name] for name in methods) * len(seeds)
    jobs = jobs[:free] + sorted(jobs[free:], key=lambda j: (j['seed'], methods.index(j['name'])))
    # The teacher's checkpoint path is known in advance; it is not part of
    # the fingerprint (the teacher's key is).
    ckpt = teacher_checkpoint(work_dir, teacher_iters)
    for job in jobs[1:]:
        if distilled[job['name']]:
            job['options']['model.teacher_ckpt'] = ckpt
    return list(pretrain.values()) + jobs, methods


def _resolve(job: dict, done: Dict[str, dict]) -> None:
    # baselines may start before the teacher is trained; a backbone's
    # pretraining (a classifier) is never compared with the teacher
    if TEACHER_ID in done and job['id'] not in PRETRAIN_IDS.values():
        job['teacher_ckpt'] = done[TEACHER_ID].get('checkpoint')


def run_demo(task: TaskSpec, methods: List[str], seeds: List[int], work_dir: str,
             data_dir: str, workers: int = 2, force: bool = False,
             iters: Tuple[Optional[int], Optional[int]] = (None, None),
             num_train: Optional[int] = None, num_val: Optional[int] = None,
             command: str = '', pretrain_iters: Optional[int] = None,
             mode: str = 'default') -> Dict[str, List[dict]]:
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
        pretrain_iters: the backbones' pretraining steps (``None``: the
            pretraining configs' own).
        mode: ``'default'`` or ``'full'`` (``--full``), for the report.

    Returns:
        model name -> its runs' results, teacher first.
    """
    teacher_iters = iters[0] or load_config(task.config(TEACHER)).train_cfg.max_iters
    student_iters = iters[1] or load_config(task.config(BASELINE)).train_cfg.max_iters
    os.makedirs(work_dir, exist_ok=True)
    start = time.time()
    log(f'task {task.name}: data {data_dir}')
    data_opts = task.make_data(data_dir, num_train, num_val)
    pretrain_opts = None
    if task.make_pretrain_data is not None:
        pretrain_opts = task.make_pretrain_data(data_dir, num_train, num_val)
    log(f'data ready ({time.time() - start:.0f} s)')
    jobs, methods = plan_jobs(task, methods, seeds, (teacher_iters, student_iters), data_opts,
                              work_dir, force, pretrain_iters, pretrain_opts)
    pretraining = [j for j in jobs if j['id'] in PRETRAIN_IDS.values()]
    log(f'{len(jobs)} runs: ' + ''.join(f'{j["tag"]} ({j["iters"]} iters), '
                                        for j in pretraining)
        + f'teacher ({teacher_iters} iters), {len(methods)} students x {len(seeds)} seeds '
        f'({student_iters} iters) on {workers} workers')

    def needs_analysis(result):
        return (task.analyze is not None and result['name'] != TEACHER
                and not result['name'].startswith('pretrain_') and 'corr_gap' not in result)

    done = Scheduler(workers, task).run(jobs, _resolve, needs_analysis)
    runs: Dict[str, List[dict]] = {TEACHER: [done[TEACHER_ID]]}
    for name in methods:
        runs[name] = [done[f'{name}/{seed}'] for seed in seeds]
    classes = None
    if task.analyze is not None:
        classes = list(load_config(task.config(TEACHER)).metainfo['classes']) + ['background']
    minutes, best = write_report(task, runs, work_dir, classes, dict(
        command=command, start=start, seeds=seeds, teacher_iters=teacher_iters,
        student_iters=student_iters, mode=mode,
        pretrain=[dict(done[j['id']], iters=j['iters']) for j in pretraining]))
    log(f'done in {minutes:.1f} min: {work_dir}/results.md, results.png, loss_curves.png'
        + (', corr_diff.png' if best else ''))
    return runs


__all__ = ['PRETRAIN_IDS', 'REPO', 'default_dirs', 'plan_jobs', 'pretrain_dir', 'run_demo',
           'select_methods', 'teacher_checkpoint']
