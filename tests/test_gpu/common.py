"""What the GPU tests share: the device they run on and the CUDA-only skips."""
import os

import pytest
import torch


def check_device() -> str:
    """``'cuda'`` or ``'cpu'``: CUDA when torch sees a GPU, unless
    ``MMKD_GPU_CHECK_DEVICE`` names one."""
    forced = os.environ.get('MMKD_GPU_CHECK_DEVICE')
    if forced:
        return forced
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def cuda_only(reason: str) -> None:
    """Skip the rest of a test on the CPU, naming the CUDA-only assertion."""
    if check_device() != 'cuda':
        pytest.skip(f'CUDA only: {reason}')
