"""Sigmoid KD (per-class binary KL) and sigmoid DIST (DIST's ``use_sigmoid``)
against float64 numpy formulas written from the definitions."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkd.losses import DISTLoss, KDLoss, dist_loss, dist_loss_parts, kd_loss, utils
from mmkd.registry import MODELS
from . import reference as ref


def sigmoid(z, tau):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64) / tau))


def binary_kl_row(zs, zt, tau):
    """tau^2 * sum_c KL(Bernoulli(p_t,c) || Bernoulli(p_s,c)), by the definition."""
    ps, pt = sigmoid(zs, tau), sigmoid(zt, tau)
    return tau**2 * float((pt * np.log(pt / ps) + (1 - pt) * np.log((1 - pt) / (1 - ps))).sum())


def sigmoid_dist_terms(zs, zt, tau):
    """(inter, intra) of DIST on sigmoid scores of (M, C) logits."""
    ys, yt = sigmoid(zs, tau), sigmoid(zt, tau)
    inter = np.mean([ref.pearson_distance(ys[i], yt[i]) for i in range(len(ys))])
    intra = np.mean([ref.pearson_distance(ys[:, j], yt[:, j]) for j in range(ys.shape[1])])
    return inter, intra


def f64(*shape, scale=3.0, gen=None):
    return torch.randn(*shape, dtype=torch.float64, generator=gen) * scale


# -- KD ---------------------------------------------------------------------------
@settings(max_examples=20, deadline=None)
@given(tau=st.floats(0.5, 6.0), n=st.integers(1, 10), c=st.integers(1, 25),
       seed=st.integers(0, 2**16))
def test_sigmoid_kd_is_the_per_class_binary_kl_summed_over_classes(tau, n, c, seed):
    g = torch.Generator().manual_seed(seed)
    zs, zt = f64(n, c, gen=g), f64(n, c, gen=g)
    rows = kd_loss(zs, zt, tau=tau, reduction='none', use_sigmoid=True).numpy()
    want = [binary_kl_row(zs[i].numpy(), zt[i].numpy(), tau) for i in range(n)]
    np.testing.assert_allclose(rows, want, rtol=1e-9, atol=1e-12)


def test_sigmoid_kd_gradient_is_tau_times_sigmoid_difference():
    tau = 2.5
    zs, zt = f64(6, 9).requires_grad_(), f64(6, 9).requires_grad_()
    kd_loss(zs, zt, tau=tau, reduction='sum', use_sigmoid=True).backward()
    want = tau * (sigmoid(zs.detach().numpy(), tau) - sigmoid(zt.detach().numpy(), tau))
    np.testing.assert_allclose(zs.grad.numpy(), want, rtol=1e-9, atol=1e-12)
    assert zt.grad is None


def test_sigmoid_kd_identity_zero_large_logits_finite_and_differs_from_softmax():
    z = f64(5, 80, scale=30.0)  # |z| up to ~100: no log(0) in the closed form
    assert kd_loss(z, z.clone(), use_sigmoid=True).item() == 0.0
    far = kd_loss(z, -z, use_sigmoid=True)
    assert torch.isfinite(far) and far.item() > 100
    zs, zt = f64(4, 6), f64(4, 6)
    assert kd_loss(zs, zt, use_sigmoid=True).item() != pytest.approx(kd_loss(zs, zt).item())


def test_sigmoid_kd_gradcheck_dense_with_ignore_and_weight():
    zs, zt = f64(2, 4, 3, 3).requires_grad_(), f64(2, 4, 3, 3)
    target = torch.randint(0, 4, (2, 3, 3))
    target[1, 0] = 255
    w = torch.rand(2, 3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda s: kd_loss(s, zt, target, tau=2.0, weight=w, use_sigmoid=True), (zs, ))


# -- DIST -------------------------------------------------------------------------
@settings(max_examples=20, deadline=None)
@given(beta=st.floats(0, 3), gamma=st.floats(0, 3), tau=st.floats(0.5, 4.0),
       n=st.integers(3, 16), c=st.integers(2, 16), seed=st.integers(0, 2**16))
def test_sigmoid_dist_matches_pearson_on_sigmoids(beta, gamma, tau, n, c, seed):
    g = torch.Generator().manual_seed(seed)
    zs, zt = f64(n, c, scale=2.0, gen=g), f64(n, c, scale=2.0, gen=g)
    parts = DISTLoss(beta, gamma, tau, use_sigmoid=True).forward_parts(zs, zt)
    inter, intra = sigmoid_dist_terms(zs.numpy(), zt.numpy(), tau)
    assert parts['inter'].item() == pytest.approx(inter, rel=1e-9, abs=1e-12)
    assert parts['intra'].item() == pytest.approx(intra, rel=1e-9, abs=1e-12)
    assert parts['loss'].item() == pytest.approx(tau**2 * (beta * inter + gamma * intra),
                                                 rel=1e-9, abs=1e-12)


def _sigmoid_dist_straightforward(zs, zt, beta, gamma, tau):
    """Autograd through DIST's use_sigmoid formulation (full temporaries)."""
    ys, yt = (zs / tau).sigmoid(), (zt / tau).sigmoid()

    def pearson(a, b):
        a = a - a.mean(1, keepdim=True)
        b = b - b.mean(1, keepdim=True)
        return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-8)

    inter = 1 - pearson(ys, yt).mean()
    intra = 1 - pearson(ys.t(), yt.t()).mean()
    return tau**2 * (beta * inter + gamma * intra)


def test_sigmoid_dist_gradient_matches_autograd_of_the_formula():
    zs, zt = f64(40, 12, scale=2.0).requires_grad_(), f64(40, 12, scale=2.0)
    ours = dist_loss(zs, zt, beta=1.5, gamma=0.5, tau=2.0, use_sigmoid=True)
    theirs = _sigmoid_dist_straightforward(zs, zt, 1.5, 0.5, 2.0)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(torch.autograd.grad(ours, zs)[0],
                               torch.autograd.grad(theirs, zs)[0], rtol=1e-7, atol=1e-12)


def test_sigmoid_dist_gradcheck_dense_with_ignore_and_weight():
    zs, zt = f64(2, 4, 3, 3, scale=2.0).requires_grad_(), f64(2, 4, 3, 3, scale=2.0)
    target = torch.randint(0, 4, (2, 3, 3))
    target[0, 0] = 255
    w = torch.rand(2, 3, 3, dtype=torch.float64)
    for term in ('inter', 'intra', 'loss'):
        assert torch.autograd.gradcheck(
            lambda s: dist_loss_parts(s, zt, target, tau=2.0, weight=w, use_sigmoid=True)[term],
            (zs, ))


def test_sigmoid_dist_ignored_rows_do_not_matter_and_get_no_gradient():
    zs, zt = f64(2, 6, 4, 5, scale=2.0), f64(2, 6, 4, 5, scale=2.0)
    target = torch.randint(0, 6, (2, 4, 5))
    target[0, :2] = 255
    kept = target != 255
    loss = dist_loss(zs, zt, target, gamma=2.0, use_sigmoid=True)
    rows_s, rows_t = zs.permute(0, 2, 3, 1)[kept].numpy(), zt.permute(0, 2, 3, 1)[kept].numpy()
    inter, intra = sigmoid_dist_terms(rows_s, rows_t, 1.0)
    assert loss.item() == pytest.approx(inter + 2 * intra, rel=1e-9)
    scribbled = zs.clone()
    scribbled[(~kept).unsqueeze(1).expand_as(zs)] = 50.0
    scribbled.requires_grad_()
    again = dist_loss(scribbled, zt, target, gamma=2.0, use_sigmoid=True)
    assert again.item() == pytest.approx(loss.item(), rel=1e-12)
    again.backward()
    assert torch.count_nonzero(scribbled.grad[0, :, :2]) == 0
    assert torch.count_nonzero(scribbled.grad[1]) > 0


def test_sigmoid_identical_logits_give_the_eps_term_only():
    z = f64(3, 80, 6, 7, scale=2.0)
    parts = dist_loss_parts(z, z.clone(), use_sigmoid=True)
    y = torch.sigmoid(z).permute(0, 2, 3, 1).reshape(-1, 80)
    rows = ((y - y.mean(1, keepdim=True))**2).sum(1)
    cols = ((y - y.mean(0, keepdim=True))**2).sum(0)
    torch.testing.assert_close(parts['inter'], (1e-8 / (rows + 1e-8)).mean(), rtol=1e-6, atol=0)
    torch.testing.assert_close(parts['intra'], (1e-8 / (cols + 1e-8)).mean(), rtol=1e-6, atol=0)


@pytest.mark.parametrize('name', ['kd', 'dist'])
def test_sigmoid_chunks_agree_with_one_chunk(monkeypatch, name):
    fn = {'kd': lambda s, t, y: kd_loss(s, t, y, tau=2.0, reduction='none', use_sigmoid=True),
          'dist': lambda s, t, y: torch.stack(list(dist_loss_parts(
              s, t, y, tau=2.0, gamma=3.0, use_sigmoid=True).values()))}[name]
    g = torch.Generator().manual_seed(0)
    zs, zt = f64(3, 6, 5, 7, gen=g).requires_grad_(), f64(3, 6, 5, 7, gen=g)
    target = torch.randint(0, 6, (3, 5, 7), generator=g)
    target[1, 2:] = 255
    one = fn(zs, zt, target)
    (g_one, ) = torch.autograd.grad(one.sum(), zs)
    for limit in (6 * 35 * 2, 6 * 9, 6, 1):
        monkeypatch.setattr(utils, 'CHUNK_ELEMENTS', limit)
        many = fn(zs, zt, target)
        (g_many, ) = torch.autograd.grad(many.sum(), zs)
        torch.testing.assert_close(many, one, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(g_many, g_one, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize('loss', [KDLoss(use_sigmoid=True), DISTLoss(use_sigmoid=True)])
def test_sigmoid_half_logits_compute_in_float32_and_empty_gives_zero_in_graph(loss):
    zs, zt = (torch.randn(2, 7, 4, 5) * 3).half(), (torch.randn(2, 7, 4, 5) * 3).half()
    half = loss(zs.clone().requires_grad_(), zt)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, loss(zs.float(), zt.float()), rtol=0, atol=0)
    empty = torch.randn(0, 80, requires_grad=True)
    out = loss(empty, torch.randn(0, 80))
    assert out.item() == 0.0 and out.requires_grad
    out.backward()


def test_registered_with_use_sigmoid():
    assert MODELS.build(dict(type='mmkd.KDLoss', use_sigmoid=True)).use_sigmoid
    assert MODELS.build(dict(type='mmkd.DISTLoss', use_sigmoid=True)).use_sigmoid
    assert not DISTLoss().use_sigmoid and not KDLoss().use_sigmoid
