"""Mixed precision: under autocast every loss computes in float32 from
low-precision logits / features, returns a float32 value equal to the
float32 computation on the same numbers, and hands back gradients in the
inputs' dtype that match the float32 gradients to that dtype's precision."""
import copy

import pytest
import torch

from mmkd.registry import MODELS

LOGIT_LOSSES = {
    'kd': dict(type='mmkd.KDLoss', tau=4.0),
    'dkd': dict(type='mmkd.DKDLoss', alpha=1.0, beta=8.0, tau=4.0),
    'dist': dict(type='mmkd.DISTLoss', beta=1.0, gamma=1.0, tau=1.0),
}
SHAPES = {'rows': (64, 10), 'dense': (2, 7, 6, 5)}


def _inputs(shape, dtype):
    torch.manual_seed(0)
    s = (torch.randn(shape) * 3).to(dtype)
    t = (torch.randn(shape) * 3).to(dtype)
    target = torch.randint(0, shape[1], (shape[0], ) + tuple(shape[2:]))
    if len(shape) == 4:
        target[0, :2] = 255  # some ignored pixels
    return s, t, target


def _run(loss, s, t, target, autocast):
    s = s.clone().requires_grad_(True)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        value = loss(s, t, target)
    value.backward()
    return value, s.grad


@pytest.mark.parametrize('shape', sorted(SHAPES))
@pytest.mark.parametrize('name', sorted(LOGIT_LOSSES))
def test_logit_loss_under_bf16_autocast_matches_float32(name, shape):
    loss = MODELS.build(copy.deepcopy(LOGIT_LOSSES[name]))
    s16, t16, target = _inputs(SHAPES[shape], torch.bfloat16)
    value16, grad16 = _run(loss, s16, t16, target, autocast=True)
    value32, grad32 = _run(loss, s16.float(), t16.float(), target, autocast=False)
    assert value16.dtype == torch.float32  # computed and returned in float32
    assert grad16.dtype == torch.bfloat16  # gradient in the logits' dtype
    torch.testing.assert_close(value16, value32, rtol=1e-5, atol=1e-6)
    # bf16 keeps 8 bits of mantissa: relative error 2^-8 of the largest entry
    scale = grad32.abs().max()
    assert (grad16.float() - grad32).abs().max() <= 2**-7 * scale
    assert value32.item() > 0


def test_hcl_under_bf16_autocast_matches_float32():
    torch.manual_seed(0)
    hcl = MODELS.build(dict(type='mmkd.HCLLoss', loss_weight=1.0))
    feats_s = [torch.randn(2, 8, size, size).to(torch.bfloat16) for size in (16, 8, 4, 1)]
    feats_t = [torch.randn(2, 8, size, size).to(torch.bfloat16) for size in (16, 8, 4, 1)]

    def run(fs, ft, autocast):
        fs = [f.clone().requires_grad_(True) for f in fs]
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
            value = hcl(fs, ft)
        value.backward()
        return value, [f.grad for f in fs]

    value16, grads16 = run(feats_s, feats_t, True)
    value32, grads32 = run([f.float() for f in feats_s], [f.float() for f in feats_t], False)
    assert value16.dtype == torch.float32
    torch.testing.assert_close(value16, value32, rtol=1e-5, atol=1e-6)
    for g16, g32 in zip(grads16, grads32):
        assert g16.dtype == torch.bfloat16
        assert (g16.float() - g32).abs().max() <= 2**-7 * g32.abs().max()


def test_amp_distilled_step_runs_on_an_accelerator_or_is_refused_clearly():
    """On CUDA: one AmpOptimWrapper step of a distiller. Without an
    accelerator: the clear refusal of tools/train.py, not mmengine's assert."""
    from mmengine.config import Config
    from mmkd.utils import check_amp, has_amp_device
    cfg = Config(dict(optim_wrapper=dict(type='AmpOptimWrapper', loss_scale='dynamic',
                                         optimizer=dict(type='SGD', lr=0.01))))
    if not has_amp_device():
        with pytest.raises(SystemExit, match='needs a CUDA, NPU, MLU or MUSA device'):
            check_amp(cfg)
        return
    check_amp(cfg)
    from mmengine.optim import build_optim_wrapper
    from mmdet.testing import demo_mm_inputs
    from tests.helpers.det import tiny_faster_rcnn
    model = MODELS.build(dict(type='mmkd.DetectionDistiller', student=tiny_faster_rcnn(18),
                              teacher=tiny_faster_rcnn(18), distill_losses=copy.deepcopy(
                                  dict(loss_dkd=LOGIT_LOSSES['dkd'],
                                       loss_dist=LOGIT_LOSSES['dist'])))).cuda()
    model.init_weights()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    packed = demo_mm_inputs(2, [[3, 64, 64]] * 2, num_items=[3, 3], num_classes=3)
    log = model.train_step(packed, wrapper)
    assert torch.isfinite(log['loss_dkd']) and torch.isfinite(log['loss_dist'])
