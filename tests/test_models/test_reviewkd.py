import torch

from mmkd.models.reviewkd import ABF, ABFConnector


def _fused_by_hand(abf, x, deeper_same_size):
    reduced = abf.reduce(x)
    att = abf.attention(torch.cat([reduced, deeper_same_size], 1))
    return reduced * att[:, 0:1] + deeper_same_size * att[:, 1:2]


def test_abf_fuses_a_deeper_map_of_equal_or_smaller_size():
    torch.manual_seed(0)
    abf = ABF(3, 4, 5, fuse=True).eval()
    x = torch.randn(2, 3, 4, 6)
    with torch.no_grad():
        coarse = torch.randn(2, 4, 2, 3)  # nearest upsampling = each value on a 2x2 block
        out, fused = abf(x, coarse)
        up = coarse.repeat_interleave(2, 2).repeat_interleave(2, 3)
        torch.testing.assert_close(fused, _fused_by_hand(abf, x, up))
        torch.testing.assert_close(out, abf.project(fused))
        same = torch.randn(2, 4, 4, 6)  # a dilated backbone's stages 3-4: no resizing
        out, fused = abf(x, same)
        torch.testing.assert_close(fused, _fused_by_hand(abf, x, same))
    assert out.shape == (2, 5, 4, 6)


def test_connector_keeps_each_levels_resolution():
    """D8 ResNet stages: 1/4, then three levels at 1/8."""
    connector = ABFConnector([8, 16, 32, 64], [16, 32, 64, 128], mid_channels=8)
    connector.init_weights()
    feats = [torch.randn(1, 8, 16, 16)] + [torch.randn(1, c, 8, 8) for c in (16, 32, 64)]
    outs = connector(feats)
    assert [tuple(o.shape) for o in outs] == [(1, 16, 16, 16), (1, 32, 8, 8), (1, 64, 8, 8),
                                              (1, 128, 8, 8)]
