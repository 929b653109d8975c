"""The embedded demo: distil a detector end to end on generated shapes, on the CPU.

1. generate the shapes dataset (mmkd/demo/shapes.py; seeded, no download);
2. train the teacher (full-width Faster R-CNN R18-FPN) once;
3. per seed, train the baseline student (quarter-width R18) and KD, DKD and
   DIST students from that teacher, all with tools/dist_train.sh on 2
   processes (gloo on the CPU, 4 images each);
4. read COCO bbox mAP / AP50 (mmdet's CocoMetric, pycocotools) from each
   run's log and, per student, the mean |corr(teacher) - corr(student)| of
   RoI logits on the val boxes (tools/analyze_logits.py); print a results
   table and write ``results.md``,
   ``results.json``, ``results.png`` (bar chart) and ``loss_curves.png``
   under the work dir.

Finished runs are reused (their ``result.json`` exists); ``--force`` retrains.

    python tools/run_demo.py [--seeds 0 1] [--work-dir work_dirs/demo] [--force]
"""
import argparse
import json
import os
import os.path as osp
import shutil
import socket
import statistics
import subprocess
import sys
import time
from typing import Dict, List

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..'))
sys.path.insert(0, REPO)

TEACHER_CFG = 'configs/demo/teacher_faster_rcnn_r18_shapes.py'
STUDENTS = {
    'baseline': 'configs/demo/student_faster_rcnn_r18w16_shapes.py',
    'kd': 'configs/demo/kd_r18_r18w16_shapes.py',
    'dkd': 'configs/demo/dkd_r18_r18w16_shapes.py',
    'dist': 'configs/demo/dist_r18_r18w16_shapes.py',
}


def schedule_options(iters: int) -> List[str]:
    """cfg-options that set the length of an iteration-based demo schedule."""
    warmup = max(1, min(100, iters // 5))
    return [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'param_scheduler.0.end={warmup}', f'param_scheduler.1.begin={warmup}',
            f'param_scheduler.1.end={iters}', f'default_hooks.checkpoint.interval={iters}',
            f'default_hooks.logger.interval={min(25, iters)}']


PROCESSES = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def log(msg: str) -> None:
    print(f'[demo {time.strftime("%H:%M:%S")}] {msg}', flush=True)


def train(name: str, config: str, work_dir: str, options: List[str], force: bool) -> Dict:
    """Run tools/dist_train.sh once (or reuse a run with the same options)."""
    result_file = osp.join(work_dir, 'result.json')
    if osp.exists(result_file) and not force:
        with open(result_file) as f:
            result = json.load(f)
        if result.get('options') == options:
            log(f'{name}: reusing {work_dir} (mAP {result["mAP"]:.3f}); --force retrains')
            return result
        log(f'{name}: settings changed since the last run, retraining')
    if osp.isdir(work_dir):
        shutil.rmtree(work_dir)
    os.makedirs(work_dir)
    cmd = ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), config, str(PROCESSES),
           '--work-dir', work_dir, '--cfg-options', *options]
    log(f'{name}: training ({work_dir}/train.log)')
    start = time.time()
    with open(osp.join(work_dir, 'train.log'), 'w') as logfile:
        env = dict(os.environ, PYTHONWARNINGS='ignore', PYTHON=sys.executable,
                   PORT=str(free_port()), OMP_NUM_THREADS='1')
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env)
        for line in proc.stdout:
            logfile.write(line)
            if 'Iter(train)' in line or 'bbox_mAP_copypaste' in line:
                print(f'  {name}: ' + line.split(' - mmengine - INFO - ')[-1].rstrip()[:150],
                      flush=True)
        if proc.wait() != 0:
            raise SystemExit(f'{name} failed; see {work_dir}/train.log')
    seconds = time.time() - start
    rows = read_scalars(work_dir)
    val = [r for r in rows if 'coco/bbox_mAP' in r][-1]
    result = dict(name=name, mAP=val['coco/bbox_mAP'], AP50=val['coco/bbox_mAP_50'],
                  seconds=seconds, work_dir=work_dir, options=options)
    with open(result_file, 'w') as f:
        json.dump(result, f, indent=1)
    log(f'{name}: mAP {result["mAP"]:.3f}, AP50 {result["AP50"]:.3f}, {seconds / 60:.1f} min')
    return result


def correlation_gap(student_work_dir: str, teacher_ckpt: str, data_root: str) -> float:
    """Mean |corr(teacher) - corr(student)| of RoI logits on the val boxes."""
    cmd = [sys.executable, osp.join(REPO, 'tools', 'analyze_logits.py'), STUDENTS['dkd'],
           last_checkpoint(student_work_dir), '--teacher-ckpt', teacher_ckpt, '--out',
           osp.join(student_work_dir, 'corr_diff.png'), '--cfg-options',
           f'val_dataloader.dataset.data_root={data_root}']
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONWARNINGS='ignore')).stdout
    line = [x for x in out.splitlines() if x.startswith('mean |corr')][-1]
    return float(line.split('=')[1].split()[0])


def read_scalars(work_dir: str) -> List[dict]:
    rows = []
    for dirpath, _, files in os.walk(work_dir):
        if 'scalars.json' in files:
            with open(osp.join(dirpath, 'scalars.json')) as f:
                rows += [json.loads(line) for line in f if line.strip()]
    return rows


def last_checkpoint(work_dir: str) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def summarise(results: Dict[str, List[Dict]]) -> List[dict]:
    table = []
    for name, runs in results.items():
        def stat(key):
            values = [r[key] for r in runs]
            return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

        table.append(dict(name=name, n=len(runs), mAP=stat('mAP'), AP50=stat('AP50'),
                          corr_gap=stat('corr_gap') if 'corr_gap' in runs[0] else None,
                          minutes=statistics.mean(r['seconds'] for r in runs) / 60))
    return table


def markdown(table: List[dict]) -> str:
    lines = ['| model | runs | bbox mAP | AP50 | mean abs corr gap to teacher | train time (min) |',
             '|---|---|---|---|---|---|']
    for row in table:
        (m, ms), (a, as_) = row['mAP'], row['AP50']
        gap = '—' if row['corr_gap'] is None else f'{row["corr_gap"][0]:.3f} ± {row["corr_gap"][1]:.3f}'
        lines.append(f'| {row["name"]} | {row["n"]} | {100 * m:.1f} ± {100 * ms:.1f} | '
                     f'{100 * a:.1f} ± {100 * as_:.1f} | {gap} | {row["minutes"]:.1f} |')
    return '\n'.join(lines)


def plot(table: List[dict], results: Dict[str, List[Dict]], out_dir: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = [r['name'] for r in table]
    ax.bar(names, [100 * r['mAP'][0] for r in table], yerr=[100 * r['mAP'][1] for r in table],
           color=['#555555', '#9a9a9a'] + ['#3a7bd5'] * (len(names) - 2), capsize=4)
    ax.set_ylabel('COCO bbox mAP (%)')
    ax.set_title('mmkd demo: R18 teacher -> quarter-width R18 student')
    fig.tight_layout()
    fig.savefig(osp.join(out_dir, 'results.png'), dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, runs in results.items():
        if name == 'teacher':
            continue
        rows = [r for r in read_scalars(runs[0]['work_dir']) if 'loss' in r and 'iter' in r]
        axes[0].plot([r['iter'] for r in rows], [r['loss'] for r in rows], label=name)
        key = {'kd': 'loss_kd', 'dkd': 'loss_dkd', 'dist': 'loss_dist'}.get(name)
        if key:
            axes[1].plot([r['iter'] for r in rows if key in r], [r[key] for r in rows if key in r],
                         label=key)
    axes[0].set_title('total training loss (first seed)')
    axes[1].set_title('distillation term')
    for ax in axes:
        ax.set_xlabel('iteration')
        ax.legend()
    fig.tight_layout()
    fig.savefig(osp.join(out_dir, 'loss_curves.png'), dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data', default='data/demo')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--teacher-iters', type=int, default=380)
    parser.add_argument('--student-iters', type=int, default=180)
    parser.add_argument('--methods', nargs='+', default=list(STUDENTS), choices=list(STUDENTS))
    parser.add_argument('--num-train', type=int, default=500)
    parser.add_argument('--num-val', type=int, default=120)
    parser.add_argument('--force', action='store_true', help='retrain everything')
    args = parser.parse_args()
    os.chdir(REPO)
    work = osp.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    start = time.time()

    from mmkd.demo.shapes import generate_shapes
    log(f'data: {args.data}')
    generate_shapes(args.data, num_train=args.num_train, num_val=args.num_val)
    data_root = osp.abspath(args.data) + '/'
    data_opts = [f'train_dataloader.dataset.data_root={data_root}',
                 f'val_dataloader.dataset.data_root={data_root}',
                 f'test_dataloader.dataset.data_root={data_root}',
                 f'val_evaluator.ann_file={data_root}annotations/instances_val.json',
                 f'test_evaluator.ann_file={data_root}annotations/instances_val.json']

    teacher_dir = osp.join(work, 'teacher')
    teacher = train('teacher', TEACHER_CFG, teacher_dir,
                    schedule_options(args.teacher_iters) + data_opts + ['randomness.seed=0'],
                    args.force)
    teacher_ckpt = last_checkpoint(teacher_dir)
    results = {'teacher': [teacher]}
    for seed in args.seeds:
        for name in args.methods:
            opts = schedule_options(args.student_iters) + data_opts + [f'randomness.seed={seed}']
            if name != 'baseline':
                opts.append(f'model.teacher_ckpt={teacher_ckpt}')
            run_dir = osp.join(work, f'seed{seed}', name)
            run = train(f'{name} (seed {seed})', STUDENTS[name], run_dir, opts, args.force)
            if 'corr_gap' not in run:
                run['corr_gap'] = correlation_gap(run_dir, teacher_ckpt, data_root)
                with open(osp.join(run_dir, 'result.json'), 'w') as f:
                    json.dump(run, f, indent=1)
            results.setdefault(name, []).append(run)

    table = summarise(results)
    text = markdown(table)
    print('\n' + text + '\n')
    with open(osp.join(work, 'results.md'), 'w') as f:
        f.write(text + '\n')
    with open(osp.join(work, 'results.json'), 'w') as f:
        json.dump(dict(table=table, runs=results, seeds=args.seeds,
                       teacher_iters=args.teacher_iters, student_iters=args.student_iters),
                  f, indent=1)
    plot(table, results, work)
    log(f'done in {(time.time() - start) / 60:.1f} min: {work}/results.md, results.png, '
        'loss_curves.png')


if __name__ == '__main__':
    main()
