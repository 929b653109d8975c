"""KD / DKD / DIST (softmax and sigmoid, rows and dense) under fp16 and bf16
autocast on the check's device, with a chunk size small enough that every
loss runs its chunked path, against float64 references on the CPU.

Values: the straight-from-the-definition float64 numpy formulas
(tests/test_losses/reference.py) on the same half-precision numbers; the
losses compute in float32, so they agree to float32 rounding. Gradients:
in the logits' dtype, and equal to mmkd's float64 CPU gradient to that
dtype's precision.
"""
import numpy as np
import pytest
import torch

from mmkd.losses import utils
from mmkd.registry import MODELS
from tests.test_gpu.common import check_device
from tests.test_losses import reference as ref

pytestmark = pytest.mark.gpu

TAU = 2.0
LOSSES = {
    'kd': dict(type='mmkd.KDLoss', tau=TAU),
    'kd_sigmoid': dict(type='mmkd.KDLoss', tau=TAU, use_sigmoid=True),
    'dkd': dict(type='mmkd.DKDLoss', alpha=1.0, beta=8.0, tau=TAU),
    'dist': dict(type='mmkd.DISTLoss', beta=1.0, gamma=2.0, tau=TAU),
    'dist_sigmoid': dict(type='mmkd.DISTLoss', beta=1.0, gamma=2.0, tau=TAU, use_sigmoid=True),
}
SHAPES = {'rows': (96, 10), 'dense': (2, 7, 6, 8)}
DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}
#: Gradient error allowed, relative to the largest gradient: a few ulps of
#: the dtype's mantissa (10 bits fp16, 7 bits bf16).
GRAD_TOL = {torch.float16: 2**-9, torch.bfloat16: 2**-6}


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64) / TAU))


def _reference(name: str, zs: np.ndarray, zt: np.ndarray, target: np.ndarray) -> float:
    """The loss by its definition on the kept rows ``(M, C)``, float64."""
    keep = target != 255
    zs, zt, target = zs[keep], zt[keep], target[keep]
    if name == 'kd':
        return float(np.mean([ref.kd_row(a, b, TAU) for a, b in zip(zs, zt)]))
    if name == 'kd_sigmoid':  # per-class binary KL, summed over classes
        ps, pt = _sigmoid(zs), _sigmoid(zt)
        kl = pt * np.log(pt / ps) + (1 - pt) * np.log((1 - pt) / (1 - ps))
        return float(TAU**2 * kl.sum(1).mean())
    if name == 'dkd':
        parts = np.array([ref.tckd_nckd_row(a, b, g, TAU) for a, b, g in zip(zs, zt, target)])
        return float(1.0 * parts[:, 0].mean() + 8.0 * parts[:, 1].mean())
    if name == 'dist':
        inter, intra = ref.dist_terms(zs, zt, TAU)
    else:
        ys, yt = _sigmoid(zs), _sigmoid(zt)
        inter = np.mean([ref.pearson_distance(ys[i], yt[i]) for i in range(len(ys))])
        intra = np.mean([ref.pearson_distance(ys[:, j], yt[:, j]) for j in range(ys.shape[1])])
    return float(TAU**2 * (1.0 * inter + 2.0 * intra))


def _inputs(shape, dtype):
    gen = torch.Generator().manual_seed(0)
    s = (torch.randn(shape, generator=gen) * 3).to(dtype)
    t = (torch.randn(shape, generator=gen) * 3).to(dtype)
    target = torch.randint(0, shape[1], (shape[0], ) + tuple(shape[2:]), generator=gen)
    target.view(-1)[::7] = 255  # ignored rows / pixels
    return s, t, target


def _rows(x: torch.Tensor) -> np.ndarray:
    """``(N, C)`` or ``(N, C, H, W)`` as float64 rows ``(M, C)``."""
    x = x.double().cpu()
    if x.dim() == 4:
        x = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
    return x.numpy()


def _value_and_grad(loss, s, t, target, autocast_dtype=None):
    s = s.clone().requires_grad_(True)
    with torch.autocast(s.device.type, dtype=autocast_dtype or torch.bfloat16,
                        enabled=autocast_dtype is not None):
        value = loss(s, t, target)
    value.backward()
    return value, s.grad


@pytest.mark.parametrize('dtype', sorted(DTYPES))
@pytest.mark.parametrize('shape', sorted(SHAPES))
@pytest.mark.parametrize('name', sorted(LOSSES))
def test_loss_under_autocast_matches_the_float64_reference(monkeypatch, device, name, shape,
                                                           dtype):
    monkeypatch.setattr(utils, 'CHUNK_ELEMENTS', 64)  # several chunks per call
    dtype = DTYPES[dtype]
    s, t, target = _inputs(SHAPES[shape], dtype)
    value, grad = _value_and_grad(MODELS.build(dict(LOSSES[name])), s.to(device), t.to(device),
                                  target.to(device), autocast_dtype=dtype)
    assert value.dtype == torch.float32 and value.device.type == device.type
    assert grad.dtype == dtype and bool(torch.isfinite(grad).all())
    want = _reference(name, _rows(s), _rows(t), target.reshape(-1).numpy())
    assert value.item() == pytest.approx(want, rel=2e-5, abs=1e-6)

    value64, grad64 = _value_and_grad(MODELS.build(dict(LOSSES[name])), s.double(), t.double(),
                                      target)
    assert value64.item() == pytest.approx(want, rel=1e-9, abs=1e-12)
    error = (grad.double().cpu() - grad64).abs().max()
    assert error <= GRAD_TOL[dtype] * grad64.abs().max(), (name, shape, float(error))


def test_the_check_runs_on_the_device_it_reports(device):
    assert device.type == check_device()
    if device.type == 'cuda':
        assert torch.zeros(1, device=device).is_cuda
