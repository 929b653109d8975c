"""The GPU check's tests (``pytest -m gpu``; tools/gpu_check.py runs them).

They run on CUDA when torch sees a GPU and on the CPU otherwise (CI), with
small sizes either way; ``MMKD_GPU_CHECK_DEVICE=cpu|cuda`` forces one. On the
CPU only the assertions that need CUDA are skipped, each saying why. When
tools/gpu_check.py built mmcv with its CPU ops only, it sets
``MMKD_GPUCHECK_TORCHVISION_OPS=1`` and RoIAlign / NMS run through
torchvision here (mmkd/gpucheck/ops_route.py).
"""
import os

import pytest
import torch

from mmkd.gpucheck.ops_route import ENV_FLAG, route_through_torchvision
from tests.test_gpu.common import check_device


def pytest_configure(config):
    config.addinivalue_line('markers', 'gpu: the one-shot GPU check (tools/gpu_check.py); '
                            'runs on the CPU too, with the CUDA-only assertions skipped')
    if os.environ.get(ENV_FLAG) == '1':
        route_through_torchvision()


@pytest.fixture(scope='session')
def device() -> torch.device:
    return torch.device(check_device())
