"""FPN feature mimic: hand-computed values, adapters trained with the student
and left out of the exported student, with both detection distillers."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from mmkd.losses import FPNMimicLoss
from mmkd.models.base_distiller import student_state_dict
from mmkd.registry import MODELS
from tests.helpers.det import SIGMOID_LOSSES, det_batch, tiny, tiny_faster_rcnn


def test_equal_channels_is_plain_mse_summed_over_levels_without_parameters():
    s = [torch.randn(2, 8, 6, 6), torch.randn(2, 8, 3, 3)]
    t = [torch.randn(2, 8, 6, 6), torch.randn(2, 8, 3, 3)]
    loss = FPNMimicLoss(8, 8, num_levels=2, loss_weight=0.5)
    assert list(loss.parameters()) == []
    want = 0.5 * sum(float(np.mean((a.numpy() - b.numpy())**2)) for a, b in zip(s, t))
    assert loss(s, t).item() == pytest.approx(want, rel=1e-6)
    assert loss(t, t).item() == 0.0


def test_adapter_maps_student_channels_to_the_teachers():
    loss = FPNMimicLoss(student_channels=[3, 3], teacher_channels=[5, 5])
    assert all(isinstance(a, nn.Conv2d) and a.kernel_size == (1, 1) for a in loss.adapters)
    weight = torch.randn(5, 3)
    with torch.no_grad():
        for adapter in loss.adapters:
            adapter.weight.copy_(weight.view(5, 3, 1, 1))
            adapter.bias.fill_(0.25)
    s = [torch.randn(1, 3, 4, 4, requires_grad=True), torch.randn(1, 3, 2, 2)]
    t = [torch.randn(1, 5, 4, 4, requires_grad=True), torch.randn(1, 5, 2, 2)]
    want = 0.0
    for a, b in zip(s, t):  # per pixel: W s + bias, then the mean square error
        mapped = np.einsum('oc,nchw->nohw', weight.numpy(), a.detach().numpy()) + 0.25
        want += float(np.mean((mapped - b.detach().numpy())**2))
    out = loss(s, t)
    assert out.item() == pytest.approx(want, rel=1e-5)
    out.backward()
    assert t[0].grad is None and s[0].grad.abs().sum() > 0  # the teacher side is a target
    assert loss.adapters[0].weight.grad.abs().sum() > 0


def test_mismatches_name_the_fix():
    loss = FPNMimicLoss(4, 4, num_levels=2)
    with pytest.raises(ValueError, match='num_levels'):
        loss([torch.randn(1, 4, 2, 2)] * 3, [torch.randn(1, 4, 2, 2)] * 3)
    with pytest.raises(ValueError, match='student_channels/teacher_channels'):
        loss([torch.randn(1, 6, 2, 2)] * 2, [torch.randn(1, 4, 2, 2)] * 2)
    with pytest.raises(ValueError, match='same strides'):
        loss([torch.randn(1, 4, 2, 2)] * 2, [torch.randn(1, 4, 4, 4)] * 2)
    with pytest.raises(ValueError, match='lists 2 levels but num_levels=3'):
        FPNMimicLoss([4, 4], [8, 8, 8])


MIMIC = dict(type='mmkd.FPNMimicLoss', student_channels=32, teacher_channels=64)


def test_dense_distiller_adapters_train_and_stay_out_of_the_export():
    model = MODELS.build(dict(type='mmkd.DenseDistiller', student=tiny(channels=32),
                              teacher=tiny(channels=64), distill_losses=copy.deepcopy(SIGMOID_LOSSES),
                              mimic=MIMIC))
    model.init_weights()
    model.train()
    trainable = {id(p) for p in model.parameters()}
    assert all(id(p) in trainable for p in model.mimic.parameters())
    before = model.mimic.adapters[0].weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = model.loss(*det_batch(model))
    assert losses['loss_mimic'].item() > 0
    losses['loss_mimic'].backward()
    optimizer.step()
    assert not torch.equal(before, model.mimic.adapters[0].weight)  # the adapter trained
    state = model.state_dict()
    assert any(k.startswith('mimic.adapters.') for k in state)  # resumable
    exported = student_state_dict(state)
    assert sorted(exported) == sorted(model.student.state_dict())  # nothing else, no adapter


def test_two_stage_distiller_takes_the_mimic_beside_the_logit_losses():
    model = MODELS.build(dict(
        type='mmkd.DetectionDistiller', student=tiny_faster_rcnn(18, channels=32),
        teacher=tiny_faster_rcnn(18, channels=64),
        distill_losses=dict(loss_dist=dict(type='mmkd.DISTLoss')), mimic=MIMIC))
    model.init_weights()
    model.train()
    losses = model.loss(*det_batch(model))
    assert losses['loss_mimic'].item() > 0 and 'loss_dist' in losses
    losses['loss_mimic'].backward()
    assert model.mimic.adapters[4].weight.grad.abs().sum() > 0  # all five FPN levels
    assert not any(k.startswith('mimic') for k in student_state_dict(model.state_dict()))
