"""What machine the check ran on (torch and the standard library only)."""
import os
import platform
import shutil
import subprocess
import sys
from typing import Dict, Optional


def nvcc_version() -> Optional[str]:
    """``nvcc``'s release line, or None when there is no CUDA compiler."""
    nvcc = shutil.which('nvcc') or next(
        (p for p in ('/usr/local/cuda/bin/nvcc', ) if os.path.exists(p)), None)
    if nvcc is None:
        return None
    out = subprocess.run([nvcc, '--version'], capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if 'release' in line]
    return lines[-1].strip() if lines else out.stdout.strip()[-80:]


def pick_device(requested: str) -> str:
    """``'cuda'`` or ``'cpu'``; ``'auto'`` is CUDA when torch sees a GPU."""
    import torch
    if requested == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if requested == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: torch sees no CUDA device here '
                         f'(torch {torch.__version__}).')
    return requested


def describe(device: str) -> Dict[str, object]:
    """The machine, torch and the GPU, for the report."""
    import torch
    info = dict(python=sys.version.split()[0], platform=platform.platform(),
                cpus=os.cpu_count(), torch=torch.__version__, torch_cuda=torch.version.cuda,
                nvcc=nvcc_version(), device=device)
    if device == 'cuda':
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, capability='.'.join(map(str, (props.major, props.minor))),
                    gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count)
    return info
