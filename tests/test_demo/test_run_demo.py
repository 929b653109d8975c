"""A tiny version of `make demo`: the real pipeline with very few iterations."""
import json
import os.path as osp
import subprocess
import sys

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def run_demo(tmp_path, *extra):
    cmd = [sys.executable, 'tools/run_demo.py', '--work-dir', str(tmp_path / 'work'), '--data',
           str(tmp_path / 'data'), '--teacher-iters', '4', '--student-iters', '2',
           '--num-train', '12', '--num-val', '4', *extra]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return proc.stdout


def test_tiny_demo_trains_evaluates_reports_and_reuses(tmp_path):
    out = run_demo(tmp_path)
    work = tmp_path / 'work'
    results = json.loads((work / 'results.json').read_text())
    names = [row['name'] for row in results['table']]
    assert names == ['teacher', 'baseline', 'kd', 'dkd', 'dist']
    for row in results['table']:
        assert 0.0 <= row['mAP'][0] <= 1.0 and 0.0 <= row['AP50'][0] <= 1.0
    for name in ('kd', 'dkd', 'dist'):  # distilled runs log their terms and agreement
        log = (work / 'seed0' / name / 'train.log').read_text()
        assert 'kd_agreement' in log and f'loss_{name}' in log
    assert 'dkd_tckd' in (work / 'seed0' / 'dkd' / 'train.log').read_text()
    assert (work / 'results.png').stat().st_size > 0
    assert (work / 'loss_curves.png').stat().st_size > 0
    assert '| teacher | 1 |' in (work / 'results.md').read_text()
    assert 'bbox_mAP_copypaste' in out  # progress is visible
    again = run_demo(tmp_path)
    assert again.count('reusing') == 5 and 'training (' not in again
