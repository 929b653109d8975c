"""tools/gpu_check.py end to end on the CPU, as CI runs it (no install, a
subset of the GPU tests, one bench task, small sizes): the report is
written and says what it measured. Not marked ``gpu``: the check runs
``pytest -m gpu`` itself."""
import json
import subprocess
import sys

import pytest

from tests.helpers import REPO

# A few of the GPU tests (all of them run in the suite anyway): the pipeline is
# what is tested here, on 2 busy cores in well under 3 minutes.
SUBSET = 'test_the_check_runs or (test_loss_under_autocast and bf16 and rows)'


def test_gpu_check_writes_its_report_on_the_cpu(tmp_path):
    out = tmp_path / 'report'
    done = subprocess.run(
        [sys.executable, 'tools/gpu_check.py', '--device', 'cpu', '--skip-install', '--out',
         str(out), '--tasks', 'cls', '--rounds', '1', '--select', SUBSET],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert (out / 'gpu_check.json').exists(), done.stdout + done.stderr
    report = json.loads((out / 'gpu_check.json').read_text())
    log = (out / 'gpu_check.log').read_text()
    assert done.returncode == 0 and report['verdict'] == 'pass', (report['verdict'], log[-3000:])

    assert report['environment']['device'] == 'cpu'
    assert report['environment']['torch']
    assert report['install']['mmcv_ops'] == 'mmcv cpu ops'
    tests = report['tests']
    assert tests['counts'] == {'passed': 6}, tests
    assert tests['exit_status'] == 0

    bench = report['bench']
    assert bench['size'] == 'small' and bench['device'] == 'cpu'
    cls = bench['glue']['cls']
    for precision in ('fp32', 'bf16'):
        assert cls[precision]['a_ms'] > 0 and cls[precision]['b_ms'] > 0
        assert cls[precision]['glue'] == pytest.approx(
            (cls[precision]['c_ms'] - cls[precision]['a_ms']) / cls[precision]['b_ms'])
        assert cls[precision]['peak_c_mib'] is None  # CUDA allocator only
    assert 'bf16_added_vs_fp32' in cls  # None when CPU noise made fp32's (c - a) <= 0
    losses = bench['losses']
    assert {'KD cityscapes', 'DKD imagenet', 'DIST coco_roi', 'DIST-sigmoid coco_dense'} \
        <= set(losses)
    assert all(row['agree'] for row in losses.values()), losses
    assert report['floors'] and all(row['ok'] is None for row in report['floors'])  # CPU

    md = (out / 'gpu_check.md').read_text()
    for heading in ('# mmkd GPU check', '## `pytest -m gpu`', '## Glue per task',
                    '## Loss kernels', '## Floors'):
        assert heading in md
    assert 'not judged (CPU)' in md and '| cls | fp32 |' in md
