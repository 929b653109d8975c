"""bench/allocator.py: a step bench re-runs itself once under the steady
glibc malloc setting, keeps its arguments, and says which setting it ran
under; ``--glibc-defaults`` (``defaults=True``) leaves the process alone."""
import os
import os.path as osp
import subprocess
import sys

BENCH = osp.join(osp.dirname(osp.abspath(__file__)), '..', '..', 'bench')
KEYS = ('MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_TOP_PAD_')

SCRIPT = f"""
import os, sys
sys.path.insert(0, {BENCH!r})
from allocator import describe, use_steady_allocator
print('start', os.getpid(), flush=True)
use_steady_allocator(sys.argv[1] == 'defaults')
print('args', sys.argv[1:])
print('env', [os.environ.get(k) for k in {KEYS!r}])
print(describe())
"""


def run(tmp_path, *args):
    script = tmp_path / 'script.py'
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in KEYS}
    out = subprocess.run([sys.executable, str(script), *args], env=env, check=True,
                         capture_output=True, text=True).stdout
    return out.splitlines()


def test_the_bench_reexecs_itself_once_under_the_steady_setting(tmp_path):
    lines = run(tmp_path, 'steady', '--rounds', '3')
    starts = [line for line in lines if line.startswith('start')]
    assert len(starts) == 2  # the first process, then the re-run (and no third)
    assert starts[0].split()[1] == starts[1].split()[1]  # execve keeps the pid
    assert "args ['steady', '--rounds', '3']" in lines
    assert "env ['33554432', '4294967296', '1073741824']" in lines
    assert lines[-1] == ('glibc malloc: MALLOC_MMAP_THRESHOLD_=33554432 '
                         'MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=1073741824')


def test_glibc_defaults_leaves_the_process_alone(tmp_path):
    lines = run(tmp_path, 'defaults')
    assert len([line for line in lines if line.startswith('start')]) == 1
    assert 'env [None, None, None]' in lines
    assert lines[-1] == 'glibc malloc: the defaults'
