"""What a bf16 teacher costs on each demo: its losses and top-1 against fp32's.

For each demo task (det: ``configs/demo/``, seg: ``configs/demo_seg/``, cls:
``configs/demo_cls/``) and each of KD, DKD and DIST, the demo's distillation
config (with the options ``tools/run_demo.py`` gives it: data, seed 0, the
trained teacher) is built twice, with ``teacher_precision='fp32'`` and
``'bf16'``. Both see the first ``--batches`` train batches of the demo's own
train dataloader (``Runner.build_dataloader``, sampler seed 0, through the
distiller's data preprocessor) at step 0, with no training; torch is seeded
identically before each batch's loss, so the detection student's RPN and
sampler draw the same RoIs under both precisions. Reported per method:

- each distillation loss (mean over the batches) under fp32 and bf16, the
  relative difference of the means and the largest per-batch one;
- the teacher-teacher top-1 agreement (bf16 teacher vs fp32 teacher) on the
  rows the losses see, read from what ``run_teacher`` returns: the RoIs
  (det), the pixels at the student head's resolution with ``ignore_index``
  left out (seg, decode head; the auxiliary head apart), the images (cls).

The teachers are the demo's (``make demo`` or ``tools/run_demo.py --task ...``
trains them into ``work_dirs/``); ``--teacher-ckpt none`` keeps a randomly
initialised teacher (a smoke run, not a measurement).

    python bench/teacher_precision.py [--tasks det seg cls] [--batches 5] \
        [--out work_dirs/bench/teacher_precision.json]
"""
import argparse
import copy
import itertools
import json
import os
import os.path as osp
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner import Runner, set_random_seed

# Let the script run from a plain checkout as well as from an installed mmkd.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmkd.demo.runner import default_dirs, plan_jobs  # noqa: E402
from mmkd.demo.tasks import BASELINE, REPO, TASKS, TEACHER, load_config  # noqa: E402

METHODS = ['kd', 'dkd', 'dist']
#: ``teacher_ckpt`` value that keeps the demo's trained teacher.
DEMO_TEACHER = 'demo'


def demo_configs(task: str, methods: List[str], data_dir: Optional[str] = None,
                 num_train: Optional[int] = None, num_val: Optional[int] = None,
                 teacher_ckpt: Optional[str] = DEMO_TEACHER) -> Dict[str, Config]:
    """Each method's distillation config with the options the demo gives it.

    Args:
        task: ``'det'``, ``'seg'`` or ``'cls'``.
        methods: the methods (``kd``, ``dkd``, ``dist``).
        data_dir: the data (generated when absent); default the demo's.
        num_train: train size for the task's data maker (``None``: the demo's).
        num_val: val size, likewise.
        teacher_ckpt: ``'demo'`` for the demo's trained teacher, a path, or
            ``None`` for a randomly initialised teacher (and a student
            whose backbone is random too, not the demo's pretrained one).

    Returns:
        method -> its config (a copy, free to change).
    """
    spec = TASKS[task]
    work_dir, default_data = default_dirs(spec)
    data_opts = spec.make_data(osp.join(REPO, data_dir or default_data), num_train, num_val)
    iters = (load_config(spec.config(TEACHER)).train_cfg.max_iters,
             load_config(spec.config(BASELINE)).train_cfg.max_iters)
    # The demo's own plan: the same cfg options (data, seeds, teacher_ckpt) as its runs.
    jobs, _ = plan_jobs(spec, [BASELINE, *methods], [0], iters, data_opts,
                        osp.join(REPO, work_dir), force=False)
    configs = {}
    for job in jobs:
        if job['name'] not in methods:
            continue
        cfg = load_config(job['config'])
        cfg.merge_from_dict({k: v for k, v in job['options'].items() if not k.startswith('_')})
        if teacher_ckpt != DEMO_TEACHER:
            cfg.model.teacher_ckpt = teacher_ckpt
        if teacher_ckpt is None:  # a random teacher: the student needs no pretrained backbone
            cfg.model.student.backbone.init_cfg = None
        configs[job['name']] = cfg
    return configs


def build_distiller(cfg: Config, precision: str) -> torch.nn.Module:
    """The distiller of ``cfg`` with ``teacher_precision=precision``, built
    and initialised as mmengine's Runner does (seeded from the config's
    ``randomness.seed``, the config's ``data_preprocessor`` as the model's
    default), in train mode."""
    model = copy.deepcopy(cfg.model)
    model.teacher_precision = precision
    if cfg.get('data_preprocessor') is not None:
        model.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
    set_random_seed(cfg.randomness.seed)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(model)
    model.init_weights()  # the student's; the teacher keeps its checkpoint
    return model.train()


def first_batches(model: torch.nn.Module, cfg: Config, count: int) -> List[dict]:
    """The first ``count`` batches of the config's train dataloader, through
    the model's data preprocessor (training mode)."""
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        loader = Runner.build_dataloader(cfg.train_dataloader, seed=cfg.randomness.seed)
        return [model.data_preprocessor(batch, True) for batch in itertools.islice(loader, count)]


def step0(model: torch.nn.Module, batches: List[dict], seed: int) -> List[dict]:
    """For each batch: the distillation losses (floats) and what the teacher
    returned, with the student's side it was given (recorded from
    ``run_teacher``). torch is seeded with ``seed + batch index`` first."""
    seen = []
    run_teacher = model.run_teacher

    def recording(inputs, student):
        out = run_teacher(inputs, student)
        seen.append((student, out))
        return out

    model.run_teacher = recording  # this instance only
    rows = []
    try:
        for i, batch in enumerate(batches):
            batch = copy.deepcopy(batch)  # the host losses may annotate the samples
            torch.manual_seed(seed + i)
            with torch.no_grad():
                _, distilled = model.distill_losses_of(batch['inputs'], batch['data_samples'])
            student, teacher = seen.pop()
            rows.append(dict(losses={k: float(v) for k, v in distilled.items() if 'loss' in k},
                             student=student, teacher=teacher, samples=batch['data_samples']))
    finally:
        del model.run_teacher
    return rows


def teacher_rows(task: str, model: torch.nn.Module, row: dict) -> Dict[str, torch.Tensor]:
    """The teacher's logit rows the losses see: head name -> ``(rows, C)``."""
    student, teacher = row['student'], row['teacher']
    if task != 'seg':
        return {'': teacher['logits']}  # RoIs (det) or images (cls)
    gt = torch.stack([sample.gt_sem_seg.data for sample in row['samples']])
    out = {}
    for name, s_logits, t_logits in zip(['', '_aux'], student['logits'], teacher['logits']):
        size = s_logits.shape[-2:]
        if t_logits.shape[-2:] != size:  # the distiller compares at the student's size
            t_logits = F.interpolate(t_logits, size=size, mode='bilinear',
                                     align_corners=model.align_corners)
        target = model.head_target(gt, size)
        keep = target != model.ignore_index if model.ignore_index is not None else \
            torch.ones_like(target, dtype=torch.bool)
        out[name] = t_logits.permute(0, 2, 3, 1)[keep]
    return out


def compare(task: str, model: torch.nn.Module, ref: List[dict],
            half: List[dict]) -> Dict[str, Any]:
    """Losses of two runs of :func:`step0` (``ref`` fp32, ``half`` bf16) and
    their relative difference; the teacher-teacher top-1 agreement and the
    largest logit difference on the rows the losses see."""
    result: Dict[str, Any] = dict(batches=len(ref), losses={})
    for key in ref[0]['losses']:
        a = [r['losses'][key] for r in ref]
        b = [r['losses'][key] for r in half]
        mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
        result['losses'][key] = dict(
            fp32=mean_a, bf16=mean_b, rel_diff=abs(mean_b - mean_a) / abs(mean_a),
            max_batch_rel_diff=max(abs(y - x) / abs(x) for x, y in zip(a, b)))
    if task == 'det':  # the pairing holds only if both teachers scored the same RoIs
        result['same_rois'] = all(torch.equal(r['student']['rois'], h['student']['rois'])
                                  for r, h in zip(ref, half))
    pairs = [(teacher_rows(task, model, r), teacher_rows(task, model, h))
             for r, h in zip(ref, half)]
    for head in pairs[0][0]:
        t32 = torch.cat([p[0][head] for p in pairs])
        t16 = torch.cat([p[1][head] for p in pairs])
        result[f'rows{head}'] = int(t32.shape[0])
        result[f'agreement{head}'] = float((t32.argmax(1) == t16.argmax(1)).float().mean())
        result[f'max_abs_logit_diff{head}'] = float((t32 - t16).abs().max())
    return result


def measure_task(task: str, methods: List[str], batches: int = 5, seed: int = 0,
                 precisions: Tuple[str, str] = ('fp32', 'bf16'),
                 **config_options) -> Dict[str, Any]:
    """:func:`compare` for each method of one task.

    Args:
        task: ``'det'``, ``'seg'`` or ``'cls'``.
        methods: the methods (``kd``, ``dkd``, ``dist``).
        batches: how many of the first train batches.
        seed: torch's seed before the first batch's loss (``+ i`` for batch i).
        precisions: the reference's and the compared teacher's precision
            (fp32 twice checks the pairing: no difference at all).
        config_options: passed to :func:`demo_configs`.

    Returns:
        the teacher checkpoint and method -> :func:`compare`'s result.
    """
    configs = demo_configs(task, methods, **config_options)
    out: Dict[str, Any] = dict(precisions=list(precisions),
                               teacher_ckpt=next(iter(configs.values())).model.teacher_ckpt,
                               methods={})
    data = None
    for method, cfg in configs.items():
        runs, students = [], []
        for precision in precisions:
            model = build_distiller(cfg, precision)
            if data is None:  # the same batches for every method and precision
                data = first_batches(model, cfg, batches)
            students.append({k: v.clone() for k, v in model.student.state_dict().items()})
            runs.append(step0(model, data, seed))
        if any(not torch.equal(v, students[1][k]) for k, v in students[0].items()):
            raise RuntimeError(f'{task} {method}: the two runs built different students; '
                               'the comparison would not be paired.')
        out['methods'][method] = compare(task, model, *runs)
    return out


def format_table(results: Dict[str, Any]) -> str:
    """One line per task, method and loss: fp32, bf16, their relative
    difference (of the means, and the largest per batch), and the
    teacher-teacher top-1 agreement and largest logit difference on the rows
    the loss sees."""
    lines = [f'{"task":4} {"method":6} {"loss":13} {"fp32":>9} {"bf16":>9} {"rel diff":>9} '
             f'{"max batch":>9} {"top-1 agree":>11} {"rows":>6} {"max |dlogit|":>12}']
    for task, res in results['tasks'].items():
        for method, m in res['methods'].items():
            for key, loss in m['losses'].items():
                head = '_aux' if key.endswith('_aux') else ''
                lines.append(f'{task:4} {method:6} {key:13} {loss["fp32"]:9.5f} '
                             f'{loss["bf16"]:9.5f} {loss["rel_diff"]:9.4%} '
                             f'{loss["max_batch_rel_diff"]:9.4%} '
                             f'{m["agreement" + head]:11.2%} {m["rows" + head]:6d} '
                             f'{m["max_abs_logit_diff" + head]:12.4f}')
    return '\n'.join(lines)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tasks', nargs='+', default=list(TASKS), choices=list(TASKS))
    parser.add_argument('--methods', nargs='+', default=METHODS, choices=METHODS)
    parser.add_argument('--batches', type=int, default=5, help='first train batches (default 5)')
    parser.add_argument('--seed', type=int, default=0, help='torch seed of the first batch\'s loss')
    parser.add_argument('--teacher-ckpt', default=DEMO_TEACHER,
                        help='"demo" (default): the demo\'s trained teacher; "none": a randomly '
                        'initialised teacher (a smoke run); or a path (one task)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads (default 1)')
    parser.add_argument('--out', default='work_dirs/bench/teacher_precision.json')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Measure every task asked for; print the table and write the JSON."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    # mmengine logs every parameter's init at INFO; the table is the output here
    MMLogger.get_instance('teacher_precision', log_level='WARNING')
    ckpt = None if args.teacher_ckpt.lower() == 'none' else args.teacher_ckpt
    results: Dict[str, Any] = dict(
        batches=args.batches, seed=args.seed, threads=args.threads, torch=torch.__version__,
        teacher_ckpt=args.teacher_ckpt, tasks={})
    for task in args.tasks:
        start = time.time()
        results['tasks'][task] = measure_task(task, args.methods, args.batches, args.seed,
                                              teacher_ckpt=ckpt)
        results['tasks'][task]['seconds'] = time.time() - start
        print(f'{task}: {time.time() - start:.0f} s', flush=True)
    print(format_table(results))
    out = osp.abspath(args.out)
    os.makedirs(osp.dirname(out), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(results, f, indent=1)
    print(f'written: {out}')
    return results


if __name__ == '__main__':
    main()
