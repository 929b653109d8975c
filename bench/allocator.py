"""glibc malloc settings for the CPU detection step bench (bench/det_step.py).

With glibc's defaults every freed block above the dynamic mmap threshold
(at most 32 MiB) goes back to the kernel and the next large tensor is a fresh
mapping that page-faults in. A distilled step runs the teacher's forward
between the student's forward and backward, so its large temporaries are
mapped and unmapped once more per step than in the student's own step: on
the CPU the ratio (c - a) / b then measures the kernel's page faults as well
as the distiller (DINO: 1.07-1.17 with the defaults, 1.00 with these
settings; docs/benchmarks.md). CUDA's caching allocator keeps its blocks, so
a GPU step does not pay this. bench/det_step.py therefore times all three
arms under one steady setting, stated in its output; ``--glibc-defaults``
measures with the defaults instead. (bench/cls_step.py and seg_step.py still
time under glibc's defaults, as their recorded figures were.)
"""
import os
import sys

STEADY = dict(
    MALLOC_MMAP_THRESHOLD_=str(32 * 2**20),  # blocks up to 32 MiB from the heap
    MALLOC_TRIM_THRESHOLD_=str(4 * 2**30),  # do not hand the heap's top back
    MALLOC_TOP_PAD_=str(2**30),  # grow the heap in 1 GiB steps
)


def describe() -> str:
    """One line saying which allocator settings this process runs under."""
    present = [f'{k}={os.environ[k]}' for k in STEADY if k in os.environ]
    return 'glibc malloc: ' + (' '.join(present) if present else 'the defaults')


def use_steady_allocator(defaults: bool) -> None:
    """Re-run this script under :data:`STEADY` unless ``defaults`` or it
    already runs under it. glibc reads these variables once, at start-up, so
    they cannot be set from inside the process."""
    if defaults or all(os.environ.get(k) == v for k, v in STEADY.items()):
        return
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], dict(os.environ, **STEADY))
