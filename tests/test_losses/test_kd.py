import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkd.losses import DKDLoss, KDLoss, dkd_loss_parts, kd_loss
from mmkd.registry import MODELS
from . import reference as ref


def logits(*shape, scale=3.0, dtype=torch.float64):
    return torch.randn(*shape, dtype=dtype) * scale


@settings(max_examples=25, deadline=None)
@given(tau=st.floats(0.5, 8.0), n=st.integers(1, 12), c=st.integers(2, 30),
       seed=st.integers(0, 2**16))
def test_kd_matches_per_row_kl(tau, n, c, seed):
    g = torch.Generator().manual_seed(seed)
    zs = torch.randn(n, c, generator=g, dtype=torch.float64) * 3
    zt = torch.randn(n, c, generator=g, dtype=torch.float64) * 3
    rows = kd_loss(zs, zt, tau=tau, reduction='none').numpy()
    expected = [ref.kd_row(zs[i], zt[i], tau) for i in range(n)]
    np.testing.assert_allclose(rows, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('tau', [0.5, 1.0, 2.0, 4.0, 10.0])
def test_dkd_identity_kd_equals_tckd_plus_weighted_nckd(tau):
    """KD == TCKD + (1 - p_t^T) * NCKD per row (DKD paper, eq. 5)."""
    target = torch.randint(0, 10, (64, ))
    for dtype, rtol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        zs, zt = logits(64, 10, dtype=dtype), logits(64, 10, dtype=dtype)
        kd = kd_loss(zs, zt, tau=tau, reduction='none')
        parts = dkd_loss_parts(zs, zt, target, tau=tau, reduction='none')
        pt_target = torch.from_numpy(ref.softmax(zt.double().numpy(), tau))[torch.arange(64), target]
        rebuilt = parts['tckd'] + (1 - pt_target.to(dtype)) * parts['nckd']
        torch.testing.assert_close(kd, rebuilt, rtol=rtol, atol=1e-6 if rtol > 1e-9 else 1e-12)


def test_kd_dense_rows_are_pixels_and_ignore_is_left_out():
    zs, zt = logits(2, 5, 3, 4), logits(2, 5, 3, 4)
    target = torch.randint(0, 5, (2, 3, 4))
    target[0, 1, :] = 255
    rows = kd_loss(zs, zt, target, tau=2.0, reduction='none')
    assert rows.shape == (2, 3, 4)
    for n in range(2):
        for h in range(3):
            for w in range(4):
                want = 0.0 if target[n, h, w] == 255 else ref.kd_row(zs[n, :, h, w], zt[n, :, h, w], 2.0)
                assert rows[n, h, w].item() == pytest.approx(want, rel=1e-9, abs=1e-12)
    mean = kd_loss(zs, zt, target, tau=2.0)
    assert mean.item() == pytest.approx(rows.sum().item() / 20, rel=1e-12)  # 24 pixels, 4 ignored


def test_kd_reductions_weight_and_avg_factor():
    zs, zt = logits(6, 4), logits(6, 4)
    rows = torch.tensor([ref.kd_row(zs[i], zt[i], 1.0) for i in range(6)], dtype=torch.float64)
    w = torch.tensor([1., 0., 2., 1., 1., 0.5], dtype=torch.float64)
    loss = KDLoss(loss_weight=3.0)
    assert loss(zs, zt).item() == pytest.approx(3 * rows.mean().item())
    assert loss(zs, zt, weight=w, reduction_override='sum').item() == pytest.approx(
        3 * (rows * w).sum().item())
    assert loss(zs, zt, avg_factor=2.5).item() == pytest.approx(3 * rows.sum().item() / 2.5)


def test_kd_gradient_is_tau_times_prob_difference_and_teacher_gets_none():
    tau = 3.0
    zs = logits(5, 7).requires_grad_()
    zt = logits(5, 7).requires_grad_()
    kd_loss(zs, zt, tau=tau, reduction='sum').backward()
    expected = tau * (ref.softmax(zs.detach().numpy(), tau) - ref.softmax(zt.detach().numpy(), tau))
    np.testing.assert_allclose(zs.grad.numpy(), expected, rtol=1e-9, atol=1e-12)
    assert zt.grad is None


def test_kd_gradcheck_dense_with_ignore():
    zs = logits(2, 4, 3, 3).requires_grad_()
    zt = logits(2, 4, 3, 3)
    target = torch.randint(0, 4, (2, 3, 3))
    target[1, 0, 0] = 255
    w = torch.rand(2, 3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda s: kd_loss(s, zt, target, tau=2.0, weight=w), (zs, ))


@pytest.mark.parametrize('loss', [KDLoss(), DKDLoss()])
@pytest.mark.parametrize('shape,target_shape', [((0, 81), (0, )), ((2, 19, 4, 4), (2, 4, 4))])
def test_empty_or_all_ignored_gives_zero_in_graph(loss, shape, target_shape):
    zs = torch.randn(*shape, requires_grad=True)
    zt = torch.randn(*shape)
    target = torch.full(target_shape, 255, dtype=torch.long)
    out = loss(zs, zt, target)
    assert out.item() == 0.0 and out.requires_grad
    out.backward()
    assert torch.count_nonzero(zs.grad) == 0


def test_half_precision_logits_are_computed_in_float32():
    zs = logits(8, 10, dtype=torch.float32)
    zt = logits(8, 10, dtype=torch.float32)
    half = kd_loss(zs.half().requires_grad_(), zt.half(), tau=4.0)
    full = kd_loss(zs.half().float(), zt.half().float(), tau=4.0)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, full)


def test_registered_in_mmkd_scope():
    loss = MODELS.build(dict(type='mmkd.KDLoss', tau=4.0, loss_weight=0.5))
    assert isinstance(loss, KDLoss) and loss.tau == 4.0 and loss.loss_weight == 0.5


@pytest.mark.parametrize('kwargs,match', [
    (dict(tau=0), 'tau'), (dict(tau=-1), 'tau'), (dict(loss_weight=-1), 'loss_weight'),
    (dict(reduction='avg'), 'reduction')])
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KDLoss(**kwargs)


def test_bad_inputs_raise():
    loss = KDLoss()
    with pytest.raises(ValueError, match='differ in shape'):
        loss(torch.randn(4, 10), torch.randn(4, 11))
    with pytest.raises(ValueError, match='outside'):
        loss(torch.randn(4, 10), torch.randn(4, 10), torch.tensor([0, 1, 10, 2]))
    with pytest.raises(ValueError, match='outside'):
        loss(torch.randn(4, 10), torch.randn(4, 10), torch.tensor([0, -1, 3, 2]))
    with pytest.raises(ValueError, match='target has shape'):
        loss(torch.randn(4, 10), torch.randn(4, 10), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r'\(N, C\)'):
        loss(torch.randn(4), torch.randn(4))
