"""No host-device sync in mmkd's part of a steady-state step.

On CUDA the code runs under ``torch.cuda.set_sync_debug_mode('error')``: any
sync (``item``, ``bool(tensor)``, a boolean-mask index, a device-to-host
copy) raises. Covered: the KD / DKD / DIST losses' forward and backward
(softmax and sigmoid, rows and dense, with ignored entries), and per distiller
what mmkd adds to a step after the student's own forward: reading the
student, the teacher's forward, the distillation terms and their backward
(the host library's own losses sync and are not mmkd's). The first step of
a run may check once; the checked step is the second. On the CPU, where
nothing waits, tests/sync_counter.py counts the calls made from mmkd's code
instead.
"""
import contextlib

import pytest
import torch

from mmkd.models.capture import CallRecorder
from mmkd.registry import MODELS
from tests.sync_counter import count_syncs
from tests.test_gpu.common import DISTILLERS

pytestmark = pytest.mark.gpu

LOSSES = {
    'kd': dict(type='mmkd.KDLoss', tau=2.0),
    'kd_sigmoid': dict(type='mmkd.KDLoss', tau=2.0, use_sigmoid=True),
    'dkd': dict(type='mmkd.DKDLoss', alpha=1.0, beta=8.0, tau=2.0),
    'dist': dict(type='mmkd.DISTLoss'),
    'dist_sigmoid': dict(type='mmkd.DISTLoss', use_sigmoid=True),
}


@contextlib.contextmanager
def no_sync(device: torch.device):
    """Raise on CUDA at the first sync; on the CPU, fail on any counted call
    whose caller is mmkd's code."""
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode('error')
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode('default')
        return
    with count_syncs() as counter:
        yield
    assert [call for call in counter.calls if ' at mmkd' in call] == []


@pytest.mark.parametrize('ignore', [None, 255])
@pytest.mark.parametrize('shape', [(64, 10), (2, 7, 6, 8)], ids=['rows', 'dense'])
@pytest.mark.parametrize('name', sorted(LOSSES))
def test_loss_forward_and_backward_make_no_sync(device, name, shape, ignore):
    loss = MODELS.build(dict(LOSSES[name], ignore_index=ignore))
    gen = torch.Generator().manual_seed(0)
    s = (torch.randn(shape, generator=gen) * 2).to(device).requires_grad_()
    t = (torch.randn(shape, generator=gen) * 2).to(device)
    target = torch.randint(0, shape[1], (shape[0], ) + shape[2:], generator=gen)
    if ignore is not None:
        target.view(-1)[::5] = ignore
    target = target.to(device)
    loss(s, t, target).backward()  # first call: the one target check
    with no_sync(device):
        loss(s, t, target).backward()


@pytest.mark.parametrize('task', sorted(DISTILLERS))
def test_mmkd_part_of_a_distilled_step_makes_no_sync(device, task):
    torch.manual_seed(0)
    model, (inputs, samples) = DISTILLERS[task]('fp32')
    model.init_weights()
    model.to(device).train()
    inputs, samples = inputs.to(device), [sample.to(device) for sample in samples]
    total, _ = model.parse_losses(model.loss(inputs, samples))  # step 1, as mmengine runs it
    total.backward()
    model.zero_grad()
    with CallRecorder(model.capture_points()) as calls:
        model.student_loss(inputs, samples)  # the host library's loss: its own syncs
    with no_sync(device):
        student = model.read_student(calls, inputs, samples)
        teacher = model.run_teacher(inputs, student)
        terms = model.distill_terms(student, teacher, samples)
        sum(value for key, value in terms.items() if 'loss' in key).backward()
