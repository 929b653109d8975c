"""The demo's report: the table (mean ± spread over seeds, the seed-paired
gain over the baseline with its 90% t-interval and whether that interval
excludes 0), the diagnostics, the charts and the files under the work dir."""
import json
import os.path as osp
import statistics
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
from matplotlib.figure import Figure
from scipy import stats

from mmkd.analysis import plot_differences
from .jobs import read_scalars
from .tasks import BASELINE, TEACHER, TaskSpec

#: Detection's task losses: not distillation terms, left out of the plots.
_TASK_LOSSES = ('loss_cls', 'loss_bbox', 'loss_rpn_cls', 'loss_rpn_bbox')


def _mean_sd(values: List[float]) -> tuple:
    return (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def _gain(task: TaskSpec, rs: List[dict], base: Dict[int, float]) -> Optional[dict]:
    """A method's seed-paired gain over the baseline, or ``None`` when it
    shares no seed with the baseline.

    ``ci`` is the 90% two-sided t-interval of the mean paired difference,
    ``mean ± t(0.95, n - 1) * sd / sqrt(n)`` over the ``n`` paired seeds
    (``None`` for one seed). ``verdict`` is ``'yes'`` when the interval lies
    above 0 (then ``signal`` is true), ``'worse'`` when it lies below 0
    (then ``worse`` is true), ``'no'`` when it contains 0 and ``'n/a'``
    without an interval.
    """
    diffs = [r['metric'] * task.scale - base[r['seed']] for r in rs if r['seed'] in base]
    if not diffs:
        return None
    n = len(diffs)
    gain, sd = _mean_sd(diffs)
    ci = None
    if n > 1:
        half = float(stats.t.ppf(0.95, n - 1)) * sd / n ** 0.5
        ci = (gain - half, gain + half)
    signal = bool(ci and ci[0] > 0)
    worse = bool(ci and ci[1] < 0)
    verdict = 'n/a' if ci is None else 'yes' if signal else 'worse' if worse else 'no'
    return dict(mean=gain, sd=sd, per_seed=diffs, wins=int(sum(d > 0 for d in diffs)), n=n,
                ci=ci, signal=signal, worse=worse, verdict=verdict)


def summarise(task: TaskSpec, runs: Dict[str, List[dict]]) -> List[dict]:
    """Per model: mean ± sd over seeds; per method the seed-paired gain.

    The gain of a method is ``mean_s (method_s - baseline_s)`` over the ``n``
    seeds both ran, with the sample sd of those paired differences and their
    90% t-interval ``mean ± t(0.95, n - 1) * sd / sqrt(n)``. It is beyond
    noise when the interval excludes 0: a gain when it lies above 0, a loss
    (``'worse'``) when below; one paired seed gives no interval
    (:func:`_gain`).

    Args:
        task: the task (metric scale, extra metrics).
        runs: model name -> its runs' results (one per seed).

    Returns:
        One row per model, in ``runs``' order.
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
            gain = _gain(task, rs, base)
            if gain:
                row['gain'] = gain
        table.append(row)
    return table


#: The "beyond noise?" cell per :func:`_gain` verdict.
_VERDICT = dict(yes='**yes**', worse='**worse**', no='no')


def _cells(row: dict, extra: List[str], has_gap: bool) -> List[str]:
    pm = '{0[0]:.1f} ± {0[1]:.1f}'.format
    cells = [row['name'], str(row['n']), pm(row['metric'])] + [pm(row[c]) for c in extra]
    g = row.get('gain')
    if g and g['ci'] is not None:
        cells += [f'{g["mean"]:+.1f} ± {g["sd"]:.1f} [{g["ci"][0]:+.1f}, {g["ci"][1]:+.1f}]',
                  f'{g["wins"]}/{g["n"]}', _VERDICT[g['verdict']]]
    elif g:
        cells += [f'{g["mean"]:+.1f} (1 seed)', f'{g["wins"]}/{g["n"]}', 'n/a']
    else:
        cells += ['—', '—', '—']
    if has_gap:
        cells += ['{0[0]:.3f} ± {0[1]:.3f}'.format(row['corr_gap']) if 'corr_gap' in row
                  else '—', '{0[0]:.2f}'.format(row['agreement']) if 'agreement' in row
                  else '—']
    cells.append(f'{row["minutes"]:.1f}')
    return cells


def markdown(task: TaskSpec, table: List[dict]) -> str:
    """The table of :func:`summarise` as markdown."""
    extra = list(task.extra_metrics)
    head = (['model', 'seeds', task.metric_name] + extra
            + ['gain vs baseline (paired: mean ± sd [90% CI])', 'seeds won',
               'beyond noise? (CI excludes 0)'])
    has_gap = any('corr_gap' in r for r in table)
    if has_gap:
        head += ['corr gap to teacher', 'top-1 agreement']
    head.append('min / run')
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    lines += ['| ' + ' | '.join(_cells(row, extra, has_gap)) + ' |' for row in table]
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


def plot_results(task: TaskSpec, table: List[dict], runs: Dict[str, List[dict]],
                 path: str) -> None:
    """Bar chart of the table's metric with error bars and the single seeds."""
    fig = Figure(figsize=(1.3 * len(table) + 2, 3.8))
    ax = fig.subplots()
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
    fig.savefig(path, dpi=120)


def plot_loss_curves(runs: Dict[str, List[dict]], path: str) -> None:
    """Total loss, distillation terms and teacher-student agreement over
    training, of each student's first seed."""
    fig = Figure(figsize=(14, 3.6))
    axes = fig.subplots(1, 3)
    for name, rs in runs.items():
        if name == TEACHER:
            continue
        rows = [r for r in read_scalars(rs[0]['work_dir']) if 'loss' in r and 'iter' in r]
        axes[0].plot([r['iter'] for r in rows], [r['loss'] for r in rows], label=name)
        terms = {k for r in rows for k in r if k.startswith('loss_')} - set(_TASK_LOSSES)
        for key in sorted(terms):
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
    fig.savefig(path, dpi=120)


def plot_heatmaps(table: List[dict], runs: Dict[str, List[dict]], classes: List[str],
                  out_dir: str) -> Optional[str]:
    """Baseline and best student's correlation gaps side by side (first
    seed) in ``corr_diff.png``; returns the best student's name, or ``None``
    when there is nothing to plot."""
    students = [r for r in table if r['name'] not in (TEACHER, BASELINE)]
    if BASELINE not in runs or not students or 'corr_diff' not in runs[BASELINE][0]:
        return None
    best = max(students, key=lambda r: r['metric'][0])['name']
    seed = runs[BASELINE][0]['seed']
    pick = {n: next((r for r in runs[n] if r['seed'] == seed), runs[n][0])
            for n in (BASELINE, best)}
    diffs = {f'{n} (seed {r["seed"]})': np.array(r['corr_diff']) for n, r in pick.items()}
    plot_differences(diffs, classes, osp.join(out_dir, 'corr_diff.png'))
    return best


def pretrain_markdown(pretrain: List[dict]) -> str:
    """One line per pretrained backbone: its classifier's top-1 on the
    pretraining set's val split, its steps and minutes."""
    if not pretrain:
        return ''
    lines = ['Backbones pretrained as image classifiers (top-1 on the pretraining set\'s val '
             'split):', '']
    for r in pretrain:
        role = r['name'][len('pretrain_'):]
        lines.append(f'- {role}: {r["metric"]:.1f} top-1 after {r["iters"]} steps, '
                     f'{r["seconds"] / 60:.1f} min ({r["work_dir"]})')
    return '\n'.join(lines)


def write_report(task: TaskSpec, runs: Dict[str, List[dict]], out_dir: str,
                 classes: Optional[List[str]], info: dict) -> Tuple[float, Optional[str]]:
    """Print the table; write ``results.md``, ``results.json`` and the charts.

    Args:
        task: the task.
        runs: model name -> its runs' results, teacher first, then baseline.
        out_dir: the demo's work dir.
        classes: class names for the correlation heatmaps (with the
            background), or ``None`` when the task has no logit analysis.
        info: ``command``, ``start`` (its ``time.time()``), ``seeds``,
            ``teacher_iters``, ``student_iters``, ``mode`` (``'default'`` or
            ``'full'``) and ``pretrain`` (the backbones' pretraining runs'
            results, with their ``iters``) of this invocation.

    Returns:
        ``(minutes, best)``: this invocation's wall clock until the files
        are written, and the student shown beside the baseline in
        ``corr_diff.png`` (``None`` when there is none).
    """
    table = summarise(task, runs)
    text = markdown(task, table)
    pretrain = pretrain_markdown(info.get('pretrain', []))
    print('\n' + text + '\n' + (f'\n{pretrain}\n' if pretrain else ''))
    best = plot_heatmaps(table, runs, classes, out_dir) if classes is not None else None
    plot_results(task, table, runs, osp.join(out_dir, 'results.png'))
    plot_loss_curves(runs, osp.join(out_dir, 'loss_curves.png'))
    minutes = (time.time() - info['start']) / 60
    with open(osp.join(out_dir, 'results.md'), 'w') as f:
        f.write(f'# {task.title}\n\n`{info["command"].strip()}` ({info.get("mode", "default")} '
                f'mode): {minutes:.1f} min wall clock (this invocation; reused runs cost '
                f'nothing)\n\n{text}\n\n' + (f'{pretrain}\n\n' if pretrain else '')
                + f'## Diagnostics (mean over seeds)\n\n{diagnostics_markdown(runs)}\n')
        if best:
            f.write(f'\n![correlation gaps](corr_diff.png): baseline vs {best}\n')
    with open(osp.join(out_dir, 'results.json'), 'w') as f:
        json.dump(dict(task=task.name, command=info['command'], minutes=minutes,
                       seeds=info['seeds'], teacher_iters=info['teacher_iters'],
                       student_iters=info['student_iters'], mode=info.get('mode', 'default'),
                       pretrain=info.get('pretrain', []), table=table, runs=runs, best=best),
                  f, indent=1)
    return minutes, best
