"""mmkd.MobileNetV1: the paper's architecture, counted by hand."""
import pytest
import torch

import mmkd  # noqa: F401  (registers mmkd.MobileNetV1)
from mmkd.models.backbones import MobileNetV1

# (in, out) channels of the 13 depthwise-separable blocks (Howard et al. 2017, table 1)
BLOCKS = [(32, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512)] + \
    [(512, 512)] * 5 + [(512, 1024), (1024, 1024)]


def hand_count() -> int:
    """Weights + BN affine parameters, no conv biases (BN follows every conv)."""
    stem = 3 * 32 * 3 * 3 + 2 * 32
    blocks = sum(3 * 3 * cin + 2 * cin      # depthwise 3x3 + BN
                 + cin * cout + 2 * cout     # pointwise 1x1 + BN
                 for cin, cout in BLOCKS)
    return stem + blocks


def test_parameter_count_with_1000_way_linear_head():
    from mmkd.models import build_model  # mmpretrain's scope, whatever the default scope is
    model = build_model(dict(
        type='ImageClassifier', backbone=dict(type='mmkd.MobileNetV1'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=1024)), 'mmpretrain')
    backbone = sum(p.numel() for p in model.backbone.parameters())
    total = sum(p.numel() for p in model.parameters())
    assert backbone == hand_count() == 3_206_976
    assert total == hand_count() + 1024 * 1000 + 1000 == 4_231_976  # "4.2 million" in the paper
    depthwise = [m for m in model.backbone.modules()
                 if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 13 and all(m.groups == m.in_channels for m in depthwise)


def test_stage_outputs_shapes_and_strides():
    model = MobileNetV1(out_indices=(0, 1, 2, 3, 4)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 224, 224))
    assert isinstance(outs, tuple)
    assert [tuple(o.shape[1:]) for o in outs] == [
        (64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14), (1024, 7, 7)]
    assert model.stage_channels == (64, 128, 256, 512, 1024)
    assert (outs[-1] >= 0).all()  # BN + ReLU close every block
    with torch.no_grad():
        assert [o.shape[1] for o in MobileNetV1(out_indices=(4, 1)).eval()(
            torch.randn(1, 3, 64, 64))] == [128, 1024]  # stage order, as mmpretrain


def test_frozen_stages_and_bad_arguments():
    model = MobileNetV1(frozen_stages=1)
    model.train()
    assert not any(p.requires_grad for p in model.stem.parameters())
    assert not any(p.requires_grad for p in model.stages[1].parameters())
    assert all(p.requires_grad for p in model.stages[2].parameters())
    assert not model.stages[1][0][0].bn.training and model.stages[2][0][0].bn.training
    with pytest.raises(ValueError, match='out_indices'):
        MobileNetV1(out_indices=(5, ))
    with pytest.raises(ValueError, match='frozen_stages'):
        MobileNetV1(frozen_stages=7)
