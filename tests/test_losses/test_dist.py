import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkd.losses import DISTLoss, dist_loss, dist_loss_parts
from mmkd.registry import MODELS
from . import reference as ref


@settings(max_examples=20, deadline=None)
@given(beta=st.floats(0, 3), gamma=st.floats(0, 3), tau=st.floats(0.5, 6.0),
       n=st.integers(3, 20), c=st.integers(2, 20), seed=st.integers(0, 2**16))
def test_dist_matches_pearson_definition(beta, gamma, tau, n, c, seed):
    g = torch.Generator().manual_seed(seed)
    zs = torch.randn(n, c, generator=g, dtype=torch.float64) * 2
    zt = torch.randn(n, c, generator=g, dtype=torch.float64) * 2
    parts = DISTLoss(beta, gamma, tau).forward_parts(zs, zt)
    inter, intra = ref.dist_terms(zs.numpy(), zt.numpy(), tau)
    assert parts['inter'].item() == pytest.approx(inter, rel=1e-9, abs=1e-12)
    assert parts['intra'].item() == pytest.approx(intra, rel=1e-9, abs=1e-12)
    assert parts['loss'].item() == pytest.approx(tau**2 * (beta * inter + gamma * intra),
                                                 rel=1e-9, abs=1e-12)


def test_pearson_reference_is_numpy_corrcoef_away_from_eps():
    u, v = np.random.rand(50), np.random.rand(50)
    assert ref.pearson_distance(u, v) == pytest.approx(1 - np.corrcoef(u, v)[0, 1], rel=1e-6)


def test_identical_logits_give_zero():
    z = torch.randn(4, 19, 16, 16)
    parts = dist_loss_parts(z, z.clone())
    assert abs(parts['inter'].item()) < 1e-5 and abs(parts['intra'].item()) < 1e-5


def test_dense_rows_are_pixels_and_ignored_pixels_do_not_matter():
    zs = torch.randn(2, 6, 4, 5, dtype=torch.float64) * 2
    zt = torch.randn(2, 6, 4, 5, dtype=torch.float64) * 2
    target = torch.randint(0, 6, (2, 4, 5))
    target[0, :2] = 255
    target[1, 3, 1:] = 255
    loss = dist_loss(zs, zt, target, beta=1.0, gamma=2.0)
    kept = target != 255
    rows_s = zs.permute(0, 2, 3, 1)[kept].numpy()
    rows_t = zt.permute(0, 2, 3, 1)[kept].numpy()
    inter, intra = ref.dist_terms(rows_s, rows_t, 1.0)
    assert loss.item() == pytest.approx(inter + 2 * intra, rel=1e-6)
    # scribble over the ignored pixels of both models: nothing changes
    zs2, zt2 = zs.clone(), zt.clone()
    ignored = (~kept).unsqueeze(1).expand_as(zs)
    zs2[ignored] = torch.randn(int(ignored.sum()), dtype=torch.float64) * 10
    zt2[ignored] = torch.randn(int(ignored.sum()), dtype=torch.float64) * 10
    assert dist_loss(zs2, zt2, target, beta=1.0, gamma=2.0).item() == pytest.approx(
        loss.item(), rel=1e-12)


def _dist_straightforward(zs, zt, beta, gamma, tau):
    """Autograd through the reference code's formulation (full temporaries)."""
    ys, yt = (zs / tau).softmax(1), (zt / tau).softmax(1)

    def pearson(a, b):
        a = a - a.mean(1, keepdim=True)
        b = b - b.mean(1, keepdim=True)
        return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-8)

    inter = 1 - pearson(ys, yt).mean()
    intra = 1 - pearson(ys.t(), yt.t()).mean()
    return tau**2 * (beta * inter + gamma * intra)


def test_gradient_matches_autograd_of_the_formula():
    zs = (torch.randn(40, 12, dtype=torch.float64) * 2).requires_grad_()
    zt = torch.randn(40, 12, dtype=torch.float64) * 2
    ours = dist_loss(zs, zt, beta=1.5, gamma=0.5, tau=3.0)
    theirs = _dist_straightforward(zs, zt, 1.5, 0.5, 3.0)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        torch.autograd.grad(ours, zs)[0], torch.autograd.grad(theirs, zs)[0], rtol=1e-7, atol=1e-12)


def test_gradcheck_dense_with_ignore_and_weight():
    zs = (torch.randn(2, 4, 3, 3, dtype=torch.float64) * 2).requires_grad_()
    zt = torch.randn(2, 4, 3, 3, dtype=torch.float64) * 2
    target = torch.randint(0, 4, (2, 3, 3))
    target[0, 0] = 255
    w = torch.rand(2, 3, 3, dtype=torch.float64)
    for term in ('inter', 'intra', 'loss'):
        assert torch.autograd.gradcheck(
            lambda s: dist_loss_parts(s, zt, target, tau=2.0, weight=w)[term], (zs, ))


def test_chunked_rows_agree_with_one_chunk(monkeypatch):
    """Many chunks (column statistics accumulated across them) == one chunk."""
    from mmkd.losses import utils
    zs = (torch.randn(6, 7, 5, 5, dtype=torch.float64)).requires_grad_()
    zt = torch.randn(6, 7, 5, 5, dtype=torch.float64)
    target = torch.randint(0, 7, (6, 5, 5))
    target[2] = 255
    one = dist_loss(zs, zt, target)
    (g_one, ) = torch.autograd.grad(one, zs)
    monkeypatch.setattr(utils, 'CHUNK_ELEMENTS', 7 * 25)  # one image per chunk
    many = dist_loss(zs, zt, target)
    (g_many, ) = torch.autograd.grad(many, zs)
    torch.testing.assert_close(one, many, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g_one, g_many, rtol=1e-10, atol=1e-14)


def test_empty_and_all_ignored_give_zero_in_graph():
    for zs, target in ((torch.randn(0, 81, requires_grad=True), torch.zeros(0, dtype=torch.long)),
                       (torch.randn(2, 19, 4, 4, requires_grad=True),
                        torch.full((2, 4, 4), 255, dtype=torch.long))):
        loss = DISTLoss()(zs, torch.randn_like(zs), target)
        assert loss.item() == 0.0 and loss.requires_grad
        loss.backward()
        assert torch.count_nonzero(zs.grad) == 0


def test_teacher_gets_no_gradient():
    zs = torch.randn(8, 5, requires_grad=True)
    zt = torch.randn(8, 5, requires_grad=True)
    dist_loss(zs, zt).backward()
    assert zt.grad is None and zs.grad.abs().sum() > 0


def test_bad_settings_and_inputs_raise():
    with pytest.raises(ValueError, match='tau'):
        DISTLoss(tau=0)
    with pytest.raises(ValueError, match='gamma'):
        DISTLoss(gamma=-1)
    with pytest.raises(ValueError, match='reduction_override'):
        DISTLoss()(torch.randn(3, 4), torch.randn(3, 4), reduction_override='none')
    with pytest.raises(ValueError, match='differ in shape'):
        DISTLoss()(torch.randn(3, 4), torch.randn(3, 5))


def test_registered():
    loss = MODELS.build(dict(type='mmkd.DISTLoss', beta=2.0, gamma=2.0))
    assert isinstance(loss, DISTLoss) and loss.beta == 2.0
