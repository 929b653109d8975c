"""Chunking along dims 0 and L, and the fp16 (cast-back) gradient path."""
import pytest
import torch

from mmkd.losses import dist_loss_parts, dkd_loss_parts, kd_loss
from mmkd.losses import utils


def _weight(target):  # exactly representable in fp16 too
    return torch.randint(0, 5, target.shape, generator=torch.Generator().manual_seed(1)) / 4


LOSSES = {
    'kd': lambda s, t, y: kd_loss(s, t, y, tau=2.0, reduction='none'),
    'dkd': lambda s, t, y: torch.stack(list(dkd_loss_parts(
        s, t, y, tau=2.0, reduction='none', weight=_weight(y)).values())),
    'dist': lambda s, t, y: torch.stack(list(dist_loss_parts(
        s, t, y, tau=2.0, gamma=3.0, weight=_weight(y)).values())),
}


@pytest.mark.parametrize('shape,limit', [((3, 5, 4, 6), 5 * 24), ((3, 5, 4, 6), 2 * 5 * 24),
                                         ((3, 5, 4, 6), 7), ((3, 5, 4, 6), 5 * 10),
                                         ((2, 5, 1, 1), 1), ((0, 5), 3), ((11, 4), 8),
                                         ((1, 3, 10, 1), 3 * 4)])
def test_chunks_cover_every_element_once(monkeypatch, shape, limit):
    monkeypatch.setattr(utils, 'CHUNK_ELEMENTS', limit)
    n, c = shape[:2]
    x = torch.zeros(shape).reshape(n, c, -1 if n else 1)
    sizes = []
    for rows, cols in utils.chunks(x):
        x[rows, :, cols] += 1
        sizes.append(x[rows, :, cols].numel())
    assert bool((x == 1).all())
    # at most the limit (or one position's C classes), in as few pieces as that allows
    assert all(size <= max(limit, c) for size in sizes)
    length = x.shape[2]
    if c * length <= limit or length == 1:  # whole images, grouped
        assert len(sizes) == -(-n // max(1, limit // (c * length)))
    else:  # each image cut along H*W
        assert len(sizes) == n * -(-length // max(1, limit // c))


@pytest.mark.parametrize('name', sorted(LOSSES))
def test_pieces_along_positions_agree_with_one_chunk(monkeypatch, name):
    """Images cut into pieces along H*W (and grouped) give the same values."""
    g = torch.Generator().manual_seed(0)
    zs = (torch.randn(3, 6, 5, 7, generator=g, dtype=torch.float64) * 2).requires_grad_()
    zt = torch.randn(3, 6, 5, 7, generator=g, dtype=torch.float64) * 2
    target = torch.randint(0, 6, (3, 5, 7), generator=g)
    target[1, 2:] = 255
    fn = LOSSES[name]
    one = fn(zs, zt, target)
    (g_one, ) = torch.autograd.grad(one.sum(), zs)
    for limit in (6 * 35 * 2, 6 * 9, 6, 1):
        monkeypatch.setattr(utils, 'CHUNK_ELEMENTS', limit)
        many = fn(zs, zt, target)
        (g_many, ) = torch.autograd.grad(many.sum(), zs)
        torch.testing.assert_close(many, one, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(g_many, g_one, rtol=1e-10, atol=1e-14)
        assert torch.count_nonzero(g_many[1, :, 2:]) == 0  # ignored pixels


@pytest.mark.parametrize('name', sorted(LOSSES))
def test_half_logits_compute_in_float32_forward_and_backward(name):
    g = torch.Generator().manual_seed(0)
    zs = (torch.randn(2, 7, 4, 5, generator=g) * 3).half()
    zt = (torch.randn(2, 7, 4, 5, generator=g) * 3).half()
    target = torch.randint(0, 7, (2, 4, 5), generator=g)
    target[0, 1] = 255
    half, full = zs.clone().requires_grad_(), zs.float().requires_grad_()
    out_half, out_full = LOSSES[name](half, zt, target), LOSSES[name](full, zt.float(), target)
    assert out_half.dtype == torch.float32
    torch.testing.assert_close(out_half, out_full, rtol=0, atol=0)
    out_half.sum().backward()
    out_full.sum().backward()
    assert half.grad.dtype == torch.float16
    torch.testing.assert_close(half.grad, full.grad.half(), rtol=0, atol=0)
