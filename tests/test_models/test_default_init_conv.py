"""mmkd.DefaultInitConv2d keeps PyTorch's default init inside mmcv's ConvModule."""
import math
import os.path as osp

import torch

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def test_conv_module_keeps_the_default_init():
    from mmcv.cnn import ConvModule

    import mmkd  # noqa: F401 (registers mmkd.DefaultInitConv2d)
    from mmkd.models import DefaultInitConv2d
    torch.manual_seed(0)
    ours = ConvModule(64, 64, 3, padding=1, conv_cfg=dict(type='mmkd.DefaultInitConv2d'),
                      norm_cfg=dict(type='BN'))
    plain = ConvModule(64, 64, 3, padding=1, norm_cfg=dict(type='BN'))
    assert isinstance(ours.conv, DefaultInitConv2d)
    built = ours.conv.weight.detach().clone()
    ours.init_weights()  # mmcv's ConvModule leaves a conv with its own init_weights alone
    plain.init_weights()
    assert torch.equal(ours.conv.weight, built)
    bound = 1 / math.sqrt(64 * 9)  # kaiming_uniform(a=sqrt(5)) on fan_in = 576
    w = ours.conv.weight
    assert w.abs().max() <= bound + 1e-7 and w.std() > 0.8 * bound / math.sqrt(3)
    # mmcv's own init is He normal on fan_out: std sqrt(2 / 576) = 0.059, 2.4x ours
    assert plain.conv.weight.std() > 2 * w.std()
    ours.conv.weight.data.fill_(7.0)  # the layer's own init_weights restores the default
    ours.conv.init_weights()
    assert ours.conv.weight.abs().max() <= bound + 1e-7
    out = ours(torch.randn(2, 64, 8, 8))
    assert out.shape == (2, 64, 8, 8)


def test_segmentation_demo_models_use_it_everywhere():
    from mmengine.config import Config

    from mmkd.models.base_distiller import build_model
    cfg = Config.fromfile(osp.join(REPO, 'configs/demo_seg/student_deeplabv3_r18w8_shapes_seg.py'))
    # the backbone's own init, before the demo's pretrained weights replace it: its
    # pretraining config's (the heads keep theirs either way)
    pre = Config.fromfile(osp.join(REPO, 'configs/demo_pretrain/r18v1c_w8_seg_shapes.py'))
    cfg.model.backbone.init_cfg = pre.model.backbone.init_cfg
    model = build_model(cfg.model, 'mmseg')
    model.init_weights()
    convs = [m for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    for conv in convs:  # every conv within PyTorch's default bound for its fan_in
        fan_in = conv.weight[0].numel()
        assert conv.weight.abs().max() <= 1 / math.sqrt(fan_in) + 1e-7
