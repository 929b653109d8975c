"""Peak resident memory of one piece of work, measured in a fresh child process.

The child builds its inputs, records its resident set size, resets the kernel's
high-water mark (``/proc/self/clear_refs``), runs the work once and reports
``VmHWM - VmRSS_before``. A fixed malloc mmap threshold makes freed large
tensors go back to the OS, so the high-water mark follows live memory.
"""
import json
import os
import subprocess
import sys
from typing import Callable, List


def _status_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def report_peak(work: Callable[[], None]) -> None:
    """Run ``work`` once in this (child) process and print its peak in MiB."""
    base = _status_kib('VmRSS')
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # reset VmHWM to the current RSS
    work()
    print(json.dumps({'peak_mib': (_status_kib('VmHWM') - base) / 1024}))


def peak_mib(script: str, args: List[str]) -> float:
    """Run ``python script *args`` (which calls :func:`report_peak`)."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536', MALLOC_TRIM_THRESHOLD_='0')
    env.pop('MALLOC_TOP_PAD_', None)  # a timing setting (allocator.py), not for the peak
    out = subprocess.run([sys.executable, script, *args], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])['peak_mib']
