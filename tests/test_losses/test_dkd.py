import mpmath
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkd.losses import DKDLoss, dkd_loss, dkd_loss_parts
from mmkd.registry import MODELS
from . import reference as ref


@settings(max_examples=25, deadline=None)
@given(alpha=st.floats(0, 4), beta=st.floats(0, 10), tau=st.floats(0.5, 8.0),
       n=st.integers(1, 10), c=st.integers(2, 25), seed=st.integers(0, 2**16))
def test_dkd_matches_paper_formula(alpha, beta, tau, n, c, seed):
    g = torch.Generator().manual_seed(seed)
    zs = torch.randn(n, c, generator=g, dtype=torch.float64) * 3
    zt = torch.randn(n, c, generator=g, dtype=torch.float64) * 3
    target = torch.randint(0, c, (n, ), generator=g)
    rows = DKDLoss(alpha, beta, tau, reduction='none')(zs, zt, target).numpy()
    parts = [ref.tckd_nckd_row(zs[i], zt[i], int(target[i]), tau) for i in range(n)]
    expected = [alpha * tc + beta * nc for tc, nc in parts]
    np.testing.assert_allclose(rows, expected, rtol=1e-8, atol=1e-10)
    mean = DKDLoss(alpha, beta, tau)(zs, zt, target).item()
    assert mean == pytest.approx(np.mean(expected), rel=1e-8, abs=1e-10)


def _dkd_large_constant(zs, zt, target, alpha, beta, tau):
    """The reference code's formulation: masks and a -1000 on the target logit."""
    gt = F.one_hot(target, zs.shape[1]).to(zs.dtype)
    ps, pt = F.softmax(zs / tau, 1), F.softmax(zt / tau, 1)
    bs = torch.stack([(ps * gt).sum(1), (ps * (1 - gt)).sum(1)], 1)
    bt = torch.stack([(pt * gt).sum(1), (pt * (1 - gt)).sum(1)], 1)
    tckd = F.kl_div(bs.log(), bt, reduction='sum') * tau**2 / zs.shape[0]
    log_hat_s = F.log_softmax(zs / tau - 1000.0 * gt, 1)
    hat_t = F.softmax(zt / tau - 1000.0 * gt, 1)
    nckd = F.kl_div(log_hat_s, hat_t, reduction='sum') * tau**2 / zs.shape[0]
    return alpha * tckd + beta * nckd


def test_dkd_matches_large_constant_formulation_and_its_gradient():
    zs = (torch.randn(32, 81, dtype=torch.float64) * 2).requires_grad_()
    zt = torch.randn(32, 81, dtype=torch.float64) * 2
    target = torch.randint(0, 81, (32, ))
    ours = dkd_loss(zs, zt, target, alpha=1.0, beta=0.25, tau=1.0)
    (g_ours, ) = torch.autograd.grad(ours, zs)
    theirs = _dkd_large_constant(zs, zt, target, 1.0, 0.25, 1.0)
    (g_theirs, ) = torch.autograd.grad(theirs, zs)
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-7, atol=1e-12)


def test_dkd_gradcheck_dense_weighted_with_ignore():
    zs = (torch.randn(2, 5, 3, 2, dtype=torch.float64) * 2).requires_grad_()
    zt = torch.randn(2, 5, 3, 2, dtype=torch.float64) * 2
    target = torch.randint(0, 5, (2, 3, 2))
    target[0, 2, 1] = 255
    w = torch.rand(2, 3, 2, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda s: dkd_loss(s, zt, target, alpha=0.7, beta=3.0, tau=2.0, weight=w), (zs, ))
    # each part separately, too: they are logged and may be weighted apart
    assert torch.autograd.gradcheck(
        lambda s: dkd_loss_parts(s, zt, target, tau=2.0)['tckd'], (zs, ))
    assert torch.autograd.gradcheck(
        lambda s: dkd_loss_parts(s, zt, target, tau=2.0)['nckd'], (zs, ))


def test_dkd_is_finite_when_teacher_is_certain():
    """p_t -> 1 in float32: log(1 - p_t) must come from logsumexp, not log1p(-p)."""
    zs = torch.randn(4, 10, requires_grad=True)
    zt = torch.zeros(4, 10)
    target = torch.tensor([1, 2, 3, 4])
    zt[torch.arange(4), target] = 60.0  # softmax rounds p_t to exactly 1
    loss = dkd_loss(zs, zt, target, tau=1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(zs.grad).all()
    # NCKD between the non-target distributions is still defined: evaluate the
    # paper's p_j / (1 - p_t) at 50 digits, where 1 - p_t is not 0.
    mpmath.mp.dps = 50
    expected = []
    for i in range(4):
        g = int(target[i])
        hat = []
        for z in (zs[i].detach().tolist(), zt[i].tolist()):
            e = [mpmath.exp(mpmath.mpf(x)) for x in z]
            p = [x / sum(e) for x in e]
            hat.append([p[j] / (1 - p[g]) for j in range(10) if j != g])
        expected.append(float(sum(t * mpmath.log(t / s) for s, t in zip(*hat))))
    parts = dkd_loss_parts(zs.detach(), zt, target, tau=1.0)
    assert parts['nckd'].item() == pytest.approx(np.mean(expected), rel=1e-5)
    assert parts['tckd'].item() == pytest.approx(
        -np.mean(F.log_softmax(zs.detach().double(), 1)[torch.arange(4), target].numpy()),
        rel=1e-5)  # KL([1, 0] || b_s) = -log p_t^s


def test_identical_logits_give_zero():
    z = torch.randn(16, 19, 8, 8)
    target = torch.randint(0, 19, (16, 8, 8))
    for loss in (dkd_loss(z, z.clone(), target), dkd_loss_parts(z, z.clone(), target)['tckd']):
        assert abs(loss.item()) < 1e-6


def test_teacher_gets_no_gradient():
    zs = torch.randn(6, 4, requires_grad=True)
    zt = torch.randn(6, 4, requires_grad=True)
    dkd_loss(zs, zt, torch.randint(0, 4, (6, ))).backward()
    assert zt.grad is None and zs.grad.abs().sum() > 0


def test_target_is_required():
    with pytest.raises(ValueError, match='ground-truth class'):
        DKDLoss()(torch.randn(3, 4), torch.randn(3, 4))


@pytest.mark.parametrize('kwargs,match', [
    (dict(tau=0.0), 'tau'), (dict(alpha=-1.0), 'alpha'), (dict(beta=-0.1), 'beta'),
    (dict(reduction='mean_rows'), 'reduction')])
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DKDLoss(**kwargs)


def test_one_class_is_rejected():
    with pytest.raises(ValueError, match='at least 2 classes'):
        dkd_loss(torch.randn(3, 1), torch.randn(3, 1), torch.zeros(3, dtype=torch.long))


def test_registry_builds_detection_settings():
    loss = MODELS.build(dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.25, tau=1.0))
    assert (loss.alpha, loss.beta, loss.tau) == (1.0, 0.25, 1.0)
