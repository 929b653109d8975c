"""A tiny version of `make demo` (the real pipeline with very few iterations),
and the demo's statistics checked against hand-computed values."""
import json
import math
import subprocess
import sys

import pytest

from mmkd.demo.cli import main
from mmkd.demo.report import markdown, summarise
from mmkd.demo.scheduler import schedule_options
from mmkd.demo.tasks import TASKS, TaskSpec
from tests.helpers import REPO


def run_demo(tmp_path, *extra):
    cmd = [sys.executable, 'tools/run_demo.py', '--work-dir', str(tmp_path / 'work'), '--data',
           str(tmp_path / 'data' / 'scenes'), '--teacher-iters', '3', '--student-iters', '2',
           '--pretrain-iters', '2', '--num-train', '12', '--num-val', '4', '--seeds', '0', '1',
           *extra]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return proc.stdout


def test_tiny_demo_trains_evaluates_reports_and_reuses(tmp_path):
    out = run_demo(tmp_path)
    work = tmp_path / 'work'
    results = json.loads((work / 'results.json').read_text())
    names = [row['name'] for row in results['table']]
    assert names == ['teacher', 'baseline', 'kd', 'dkd', 'dist']
    runs = results['runs']
    assert [r['seed'] for r in runs['baseline']] == [0, 1] and len(runs['teacher']) == 1
    for row in results['table']:
        assert 0.0 <= row['metric'][0] <= 100.0 and 0.0 <= row['AP50'][0] <= 100.0
    for row in results['table'][2:]:  # the gain is the seed-paired difference in mAP points
        per_seed = [100 * (m['metric'] - b['metric'])
                    for m, b in zip(runs[row['name']], runs['baseline'])]
        assert row['gain']['per_seed'] == pytest.approx(per_seed)
    for name in ('baseline', 'kd', 'dkd', 'dist'):  # the analysis ran in-process
        for run in runs[name]:
            assert 0.0 <= run['corr_gap'] <= 2.0 and len(run['corr_diff']) == 7
    for name in ('kd', 'dkd', 'dist'):  # distilled runs log their terms and agreement
        log = (work / 'seed0' / name / 'train.log').read_text()
        assert 'kd_agreement' in log and f'loss_{name}' in log
    assert 'dkd_tckd' in (work / 'seed1' / 'dkd' / 'train.log').read_text()
    for png in ('results.png', 'loss_curves.png', 'corr_diff.png'):
        assert (work / png).stat().st_size > 0
    md = (work / 'results.md').read_text()
    assert '| teacher | 1 |' in md and '| baseline | 2 |' in md and 'beyond noise' in md
    assert 'iter 2/2' in out and 'ETA' in out  # progress is visible
    # the backbones were pretrained first (12 classes at 64 px beside the scenes), once
    pre = {r['name']: r for r in results['pretrain']}
    assert sorted(pre) == ['pretrain_student', 'pretrain_teacher']
    assert all(0.0 <= r['metric'] <= 100.0 and r['iters'] == 2 for r in pre.values())
    assert (tmp_path / 'data' / 'demo_pretrain' / 'train' / 'hexagon').is_dir()
    ckpt = tmp_path / 'demo_pretrain' / 'r18w16_det_shapes' / 'iter_2.pth'
    assert ckpt.is_file() and pre['pretrain_student']['checkpoint'] == str(ckpt)
    for name in ('baseline', 'dist'):  # students load the student's pretrained backbone
        assert f'PretrainedInit: load from {ckpt}' in (work / 'seed1' / name / 'train.log'
                                                       ).read_text()
    assert 'r18w32_det_shapes/iter_2.pth' in (work / 'teacher' / 'train.log').read_text()
    assert 'pretrain student backbone: top-1' in out and 'Backbones pretrained' in md
    again = run_demo(tmp_path)
    assert again.count('reusing') == 11 and 'training (' not in again
    # a changed student schedule retrains the students, not the teacher or the backbones
    changed = run_demo(tmp_path, '--student-iters', '1', '--methods', 'kd', '--seeds', '0')
    assert changed.count('reusing') == 3 and changed.count('training (') == 2
    # a changed pretraining retrains everything that loads it
    repre = run_demo(tmp_path, '--pretrain-iters', '1', '--methods', 'kd', '--seeds', '0')
    assert 'reusing' not in repre and repre.count('training (') == 5


#: t quantiles in closed form, independent of scipy: with 1 degree of freedom the
#: t distribution is Cauchy, so t(0.95, 1) = tan(0.45 pi) ~ 6.3138 (table: 6.314);
#: with 2, F(t) = 1/2 + t / (2 sqrt(2 + t^2)) = 0.95 gives t^2 = 1.62 / 0.19,
#: t(0.95, 2) ~ 2.919986 (table: 2.920).
T95_DF1 = math.tan(0.45 * math.pi)
T95_DF2 = (1.62 / 0.19) ** 0.5


def test_paired_gain_and_spread_by_hand():
    assert T95_DF1 == pytest.approx(6.313752, abs=1e-5)
    assert T95_DF2 == pytest.approx(2.919986, abs=1e-5)
    seeds3 = (0, 1, 2)
    runs = {'teacher': [dict(seed=0, metric=0.5, seconds=60)],
            'baseline': [dict(seed=s, metric=m, seconds=60) for s, m in
                         zip(seeds3, (0.10, 0.12, 0.11))],
            'kd': [dict(seed=s, metric=m, seconds=60) for s, m in
                   zip(seeds3, (0.12, 0.13, 0.14))],
            'dist': [dict(seed=s, metric=m, seconds=60) for s, m in
                     zip(seeds3, (0.13, 0.11, 0.11))],
            'dkd': [dict(seed=s, metric=m, seconds=60) for s, m in
                    zip(seeds3, (0.08, 0.09, 0.09))],
            'pair': [dict(seed=s, metric=m, seconds=60) for s, m in ((0, 0.12), (1, 0.15))],
            'ls': [dict(seed=0, metric=0.13, seconds=60)]}
    task = TaskSpec(name='t', title='t', config_dir='', teacher='', students={},
                         default_methods=[], metric='m', metric_name='m', scale=100.0)
    rows = {r['name']: r for r in summarise(task, runs)}
    assert rows['baseline']['metric'] == pytest.approx((11.0, 1.0))
    close = dict(abs=1e-4)
    # kd: differences 2, 1, 3 -> mean 2, sd 1, n 3; half-width 2.919986 / sqrt(3)
    # = 1.685854 -> [0.314146, 3.685854], above 0: beyond noise
    kd = rows['kd']['gain']
    assert kd['per_seed'] == pytest.approx([2.0, 1.0, 3.0])
    assert kd['mean'] == pytest.approx(2.0) and kd['sd'] == pytest.approx(1.0)
    assert kd['n'] == 3 and kd['ci'] == pytest.approx((0.314146, 3.685854), **close)
    assert kd['wins'] == 3 and kd['signal'] and not kd['worse'] and kd['verdict'] == 'yes'
    # dist: differences 3, -1, 0 -> mean 2/3, sd sqrt(13/3) ~ 2.081666; half-width
    # 2.919986 * sqrt(13) / 3 = 3.509386 -> [-2.842719, 4.176053] contains 0: noise
    dist = rows['dist']['gain']
    assert dist['mean'] == pytest.approx(2 / 3) and dist['sd'] == pytest.approx((13 / 3) ** 0.5)
    assert dist['ci'] == pytest.approx((-2.842719, 4.176053), **close)
    assert dist['wins'] == 1 and not dist['signal'] and not dist['worse']
    assert dist['verdict'] == 'no'
    # dkd: differences -2, -3, -2 -> mean -7/3, sd sqrt(1/3); half-width
    # 2.919986 * sqrt(1/3) / sqrt(3) = 2.919986 / 3 = 0.973329
    # -> [-3.306662, -1.360005], below 0: significantly worse, not a gain
    dkd = rows['dkd']['gain']
    assert dkd['mean'] == pytest.approx(-7 / 3) and dkd['sd'] == pytest.approx((1 / 3) ** 0.5)
    assert dkd['ci'] == pytest.approx((-3.306662, -1.360005), **close)
    assert dkd['wins'] == 0 and not dkd['signal'] and dkd['worse'] and dkd['verdict'] == 'worse'
    # pair: only seeds 0, 1 -> differences 2, 3 -> n 2, mean 2.5, sd sqrt(1/2); half-width
    # 6.313752 * sqrt(1/2) / sqrt(2) = 3.156876 -> [-0.656876, 5.656876]: noise
    pair = rows['pair']['gain']
    assert pair['n'] == 2 and pair['mean'] == pytest.approx(2.5)
    assert pair['ci'] == pytest.approx((-0.656876, 5.656876), **close)
    assert not pair['signal'] and not pair['worse'] and pair['verdict'] == 'no'
    # ls: one paired seed (difference 3) -> no interval, no verdict
    ls = rows['ls']['gain']
    assert ls['n'] == 1 and ls['mean'] == pytest.approx(3.0) and ls['ci'] is None
    assert not ls['signal'] and not ls['worse'] and ls['verdict'] == 'n/a'
    assert 'gain' not in rows['teacher'] and 'gain' not in rows['baseline']
    table = markdown(task, list(rows.values()))
    assert 'gain vs baseline (paired: mean ± sd [90% CI])' in table
    assert 'beyond noise? (CI excludes 0)' in table
    assert '| kd | 3 | 13.0 ± 1.0 | +2.0 ± 1.0 [+0.3, +3.7] | 3/3 | **yes** |' in table
    assert '| dist | 3 | 11.7 ± 1.2 | +0.7 ± 2.1 [-2.8, +4.2] | 1/3 | no |' in table
    assert '| dkd | 3 | 8.7 ± 0.6 | -2.3 ± 0.6 [-3.3, -1.4] | 0/3 | **worse** |' in table
    assert '| pair | 2 | 13.5 ± 2.1 | +2.5 ± 0.7 [-0.7, +5.7] | 2/2 | no |' in table
    assert '| ls | 1 | 13.0 ± 0.0 | +3.0 (1 seed) | 1/1 | n/a |' in table
    assert '| baseline | 3 | 11.0 ± 1.0 | — | — | — |' in table


def test_bad_choices_fail_with_a_clear_message(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match='unknown .*nonsense.* choose from'):
        main(['--methods', 'kd', 'nonsense', '--work-dir', str(tmp_path)])
    pending = TaskSpec(name='x', title='x', config_dir='configs/demo_x', teacher='t.py',
                            students={'baseline': 's.py'}, default_methods=['baseline'],
                            metric='m', metric_name='m')
    monkeypatch.setitem(TASKS, 'x', pending)
    with pytest.raises(SystemExit, match='--task x is not available yet: configs/demo_x/t.py'):
        main(['--task', 'x', '--work-dir', str(tmp_path)])


def test_schedule_hooks_follow_the_student_iterations():
    opts = schedule_options('configs/demo_cls/eskd_resnet18w16_w8_shapes_cls.py', 60)
    assert opts['custom_hooks.0.stop_iter'] == 20  # 200 of 600 -> 20 of 60
    opts = schedule_options('configs/demo_cls/pskd_resnet18w8_shapes_cls.py', 300)
    assert opts['custom_hooks.0.interval'] == 75  # 150 of 600 -> 75 of 300
    opts = schedule_options('configs/demo_cls/dkd_resnet18w16_w8_shapes_cls.py', 1200)
    assert opts['custom_hooks.0.warmup'] == 100  # an iteration warm-up scales too
    assert opts['param_scheduler.T_max'] == 1200


def test_tiny_classification_demo_with_the_schedule_rows(tmp_path):
    """PS-KD needs no teacher; ESKD stops distilling at a third of the run."""
    cmd = [sys.executable, 'tools/run_demo.py', '--task', 'cls', '--work-dir',
           str(tmp_path / 'work'), '--data', str(tmp_path / 'data' / 'cls'), '--teacher-iters',
           '2', '--student-iters', '6', '--pretrain-iters', '2', '--num-train', '3',
           '--num-val', '2', '--seeds', '0', '--methods', 'eskd', 'pskd']
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    work = tmp_path / 'work'
    results = json.loads((work / 'results.json').read_text())
    assert [row['name'] for row in results['table']] == ['teacher', 'baseline', 'pskd', 'eskd']
    for row in results['table']:
        assert 0.0 <= row['metric'][0] <= 100.0
    pskd = (work / 'seed0' / 'pskd' / 'train.log').read_text()
    assert 'PSKDHook: memory 36 x 12' in pskd and 'ClassificationDistiller' not in pskd
    eskd = (work / 'seed0' / 'eskd' / 'train.log').read_text()
    assert 'iteration 3 on' in eskd and 'distillation is off' in eskd
    # its backbones were pretrained on crops of the detection scenes' objects (6 classes)
    crops = tmp_path / 'data' / 'demo_crops_3_2'  # --num-train 3 --num-val 2: its own scenes
    folders = {p.name for p in (crops / 'train').iterdir()}  # 3 tiny scenes: not all six
    assert folders and folders <= {'circle', 'square', 'triangle', 'star', 'cross', 'ring'}
    assert 'resnet_cifar_w8_crops/iter_2.pth' in pskd
