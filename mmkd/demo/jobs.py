"""One demo run, inside a worker process: train it with mmengine's Runner,
evaluate it with the host library's metric and analyse its logits.

A *job* is a plain dict (it crosses the process boundary): ``id``
(``<name>/<seed>``), ``name``, ``seed``, ``iters``, ``task``, ``config``,
``options`` (cfg options; ``_data`` is the data's fingerprint, not an
option), ``needs`` (the ids of the jobs it waits for: its backbone's
pretraining, the teacher), ``force``, ``tag`` (for the console),
``work_dir``, ``key`` (see :func:`mmkd.demo.scheduler.job_key`), once the
teacher is trained ``teacher_ckpt``, and for a backbone's pretraining run
(an image classifier) ``metric`` / ``extra_metrics``, which replace the
task's.
"""
import contextlib
import glob
import json
import logging
import os
import os.path as osp
import re
import shutil
import sys
import time
import warnings
from typing import Dict, List

import torch
from mmengine.runner import Runner

from mmkd.checkpoint import load_checkpoint_file
from mmkd.models.base_distiller import build_model, load_teacher_checkpoint, student_state_dict
from .tasks import SCOPES, TASKS, TEACHER, TaskSpec, load_config


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


def init_worker() -> None:
    """Worker set-up: one thread per run (the pool has one worker per core)."""
    warnings.filterwarnings('ignore')
    torch.set_num_threads(1)


_TEACHERS: Dict[str, torch.nn.Module] = {}


def _teacher_model(task: TaskSpec, ckpt: str) -> torch.nn.Module:
    """The trained teacher, built and loaded once per worker."""
    if ckpt not in _TEACHERS:
        model = build_model(load_config(task.config(TEACHER)).model, SCOPES[task.name])
        load_teacher_checkpoint(model, ckpt)
        _TEACHERS.clear()
        _TEACHERS[ckpt] = model.eval()
    return _TEACHERS[ckpt]


def _job_config(job: dict):
    cfg = load_config(job['config'])
    cfg.merge_from_dict(job['options'])
    return cfg


def _write_result(job: dict, result: dict) -> None:
    with open(osp.join(job['work_dir'], 'result.json'), 'w') as f:
        json.dump(result, f, indent=1)


def run_job(job: dict) -> dict:
    """Train one model with mmengine's Runner, evaluate it, analyse it.

    Args:
        job: the run (see the module docstring); its work dir is emptied.

    Returns:
        The run's result (also written to ``result.json`` in its work dir):
        name, seed, seconds, work_dir, key, metric, the extra metrics,
        checkpoint, the analysis where there is one, diagnostics.
    """
    task = TASKS[job['task']]
    work_dir = job['work_dir']
    if osp.isdir(work_dir):
        shutil.rmtree(work_dir)
    os.makedirs(work_dir)
    cfg = _job_config(job)
    exp = f'{job["task"]}_{job["name"]}_seed{job["seed"]}_{os.getpid()}_{time.time_ns()}'
    cfg.work_dir = work_dir
    cfg.experiment_name = exp
    cfg.visualizer.name = exp
    # The run's log goes to its file; the console gets one line per log interval.
    console = sys.stdout
    with open(os.devnull, 'w') as devnull, contextlib.redirect_stdout(devnull):
        runner = Runner.from_cfg(cfg)  # its console handler writes to devnull
        runner.logger.addHandler(_Progress(job['tag'], console))
        try:
            result = _train_and_analyse(task, job, runner)
        finally:
            for handler in list(runner.logger.handlers):  # this logger's run is over
                runner.logger.removeHandler(handler)
            logs = glob.glob(osp.join(work_dir, '*', '*.log'))
            if logs:
                shutil.copy(logs[0], osp.join(work_dir, 'train.log'))
    _write_result(job, result)
    return result


def analyse_job(job: dict, result: dict) -> dict:
    """The logit analysis of a run that finished before the teacher did.

    Args:
        job: the run, with the trained teacher's ``teacher_ckpt``.
        result: what :func:`run_job` returned for it.

    Returns:
        ``result`` with the analysis added (also written to ``result.json``).
    """
    task = TASKS[job['task']]
    cfg = _job_config(job)
    student = build_model(cfg.model.get('student', cfg.model), SCOPES[task.name])
    state = load_checkpoint_file(result['checkpoint'], map_location='cpu')
    student.load_state_dict(student_state_dict(state.get('state_dict', state)), strict=True)
    with open(os.devnull, 'w') as devnull, contextlib.redirect_stdout(devnull):
        loader = Runner.build_dataloader(cfg.val_dataloader)
        result = dict(result, **task.analyze(_teacher_model(task, job['teacher_ckpt']),
                                             student, loader))
    _write_result(job, result)
    return result


def _train_and_analyse(task: TaskSpec, job: dict, runner: Runner) -> dict:
    start = time.time()
    runner.train()
    seconds = time.time() - start
    work_dir = job['work_dir']
    hub = runner.message_hub
    # a pretraining run is a classifier: its job names its metric
    result = dict(name=job['name'], seed=job['seed'], seconds=seconds, work_dir=work_dir,
                  key=job['key'],
                  metric=hub.get_scalar(f'val/{job.get("metric", task.metric)}').current())
    for column, key in job.get('extra_metrics', task.extra_metrics).items():
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


def read_scalars(work_dir: str) -> List[dict]:
    """Every row of the ``scalars.json`` files under ``work_dir``."""
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
