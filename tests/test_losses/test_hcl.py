import pytest
import torch

from mmkd.losses import HCLLoss, hcl_level
from mmkd.models import ABFConnector
from mmkd.registry import MODELS


def test_constant_difference_gives_its_square_at_every_level():
    """Every pooled MSE of a constant offset c is c^2, so HCL = c^2 per level."""
    t = torch.randn(2, 4, 16, 12)
    for c, h in ((0.5, 16), (2.0, 3), (1.5, 1)):
        tt = torch.randn(2, 4, h, h)
        assert hcl_level(tt + c, tt).item() == pytest.approx(c * c, rel=1e-6)
    assert HCLLoss(loss_weight=2.0)([t + 1, t[..., :4, :4] - 3], [t, t[..., :4, :4]]).item() == \
        pytest.approx(2.0 * (1 + 9), rel=1e-6)


def test_pooling_weights_halve_over_used_sizes():
    """2x2 map with a +-1 checkerboard difference: full MSE 1; 4 and 2 are
    skipped (>= height 2); 1x1 pooling averages it away (MSE 0) with weight
    0.5, so HCL = (1 + 0.5 * 0) / 1.5 = 2/3."""
    diff = torch.tensor([[1., -1.], [-1., 1.]]).view(1, 1, 2, 2)
    t = torch.randn(1, 1, 2, 2)
    assert hcl_level(t + diff, t).item() == pytest.approx(2 / 3, rel=1e-6)
    # 8x8: sizes 4, 2, 1 all used with 0.5, 0.25, 0.125. A difference that is
    # +1 on the left half, -1 on the right: full 1, 4x4 1, 2x2 1, 1x1 0.
    d = torch.ones(1, 1, 8, 8)
    d[..., 4:] = -1
    t = torch.randn(1, 1, 8, 8)
    assert hcl_level(t + d, t).item() == pytest.approx((1 + 0.5 + 0.25) / 1.875, rel=1e-6)


def test_teacher_features_get_no_gradient_and_bad_levels_raise():
    s = torch.randn(1, 2, 4, 4, requires_grad=True)
    t = torch.randn(1, 2, 4, 4, requires_grad=True)
    HCLLoss()([s], [t]).backward()
    assert t.grad is None and s.grad is not None
    with pytest.raises(ValueError, match='levels'):
        HCLLoss()([s], [t, t])
    with pytest.raises(ValueError, match='teacher'):
        HCLLoss()([s], [torch.randn(1, 3, 4, 4)])
    with pytest.raises(ValueError, match='loss_weight'):
        HCLLoss(loss_weight=-1)


def test_abf_connector_fuses_deepest_first_into_teacher_channels():
    conn = MODELS.build(dict(type='mmkd.ABFConnector', in_channels=[8, 16, 32],
                             out_channels=[12, 24, 48], mid_channels=6))
    conn.init_weights()
    feats = [torch.randn(2, 8, 16, 16), torch.randn(2, 16, 8, 8), torch.randn(2, 32, 4, 4)]
    outs = conn(feats)
    assert [tuple(o.shape) for o in outs] == [(2, 12, 16, 16), (2, 24, 8, 8), (2, 48, 4, 4)]
    assert conn.abfs[-1].attention is None and all(a.attention is not None for a in conn.abfs[:-1])
    # the shallowest output depends on the deepest input (fusion runs deep -> shallow) ...
    deep = feats[2].clone().requires_grad_()
    conn([feats[0], feats[1], deep])[0].sum().backward()
    assert deep.grad.abs().sum() > 0
    # ... but the deepest output never sees shallower levels
    shallow = feats[0].clone().requires_grad_()
    out = conn([shallow, feats[1], feats[2]])[2].sum()
    assert not out.requires_grad or torch.autograd.grad(out, shallow, allow_unused=True)[0] is None
    with pytest.raises(ValueError, match='3 levels got 2'):
        conn(feats[:2])
    with pytest.raises(ValueError, match='teacher levels'):
        ABFConnector([8, 16], [8])


@pytest.mark.parametrize('hw', [(8, 8), (7, 10), (5, 3)])
def test_the_deterministic_pooling_path_gives_adaptive_pooling_means(hw):
    """Under torch.use_deterministic_algorithms the pooled terms are matrix
    products; they must equal adaptive_avg_pool2d's windows (also uneven ones)."""
    from mmkd.losses.hcl import adaptive_avg_pool
    x = torch.randn(2, 3, *hw, dtype=torch.float64)
    for size in (4, 2, 1):
        expected = torch.nn.functional.adaptive_avg_pool2d(x, size)
        torch.use_deterministic_algorithms(True)
        try:
            got = adaptive_avg_pool(x, size)
        finally:
            torch.use_deterministic_algorithms(False)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
