"""One AMP training step per distiller wrapped in DDP (world size 1: NCCL on
CUDA, gloo on the CPU), with an fp32 and a bf16 teacher. The teacher is in
neither the optimizer nor DDP's reducer, gets no gradient and keeps its
weights; every loss is finite.

AMP: mmengine's AmpOptimWrapper (fp16 autocast, loss scaling) on CUDA; it
refuses the CPU, so there the step runs under a bf16 CPU autocast with a
plain OptimWrapper, except the two-stage detector's: mmcv's CPU NMS kernel
refuses the bf16 boxes and float32 scores that CPU autocast gives it (on
CUDA, AMP's fp16 runs through it).
"""
import socket

import pytest
import torch
import torch.distributed as dist

from tests.test_gpu.common import DISTILLERS

pytestmark = pytest.mark.gpu


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(scope='module')
def process_group(device):
    """A one-process group: NCCL on CUDA, gloo on the CPU."""
    if dist.is_initialized():  # another module's group: use it
        yield dist.get_backend()
        return
    backend = 'nccl' if device.type == 'cuda' else 'gloo'
    dist.init_process_group(backend, init_method=f'tcp://127.0.0.1:{_free_port()}', rank=0,
                            world_size=1)
    yield backend
    dist.destroy_process_group()


def _optim_wrapper(model, device):
    from mmengine.optim import build_optim_wrapper
    kind = 'AmpOptimWrapper' if device.type == 'cuda' else 'OptimWrapper'
    return build_optim_wrapper(model, dict(type=kind, optimizer=dict(type='SGD', lr=0.01,
                                                                     momentum=0.9)))


def _ddp(model, device):
    from mmengine.model import MMDistributedDataParallel
    return MMDistributedDataParallel(module=model, broadcast_buffers=False,
                                     find_unused_parameters=True,
                                     device_ids=[device.index or 0]
                                     if device.type == 'cuda' else None)


def _step(ddp, wrapper, inputs, samples, device, task):
    """What mmengine's DDP train_step does after data preprocessing."""
    cpu_amp = torch.autocast('cpu', dtype=torch.bfloat16,
                             enabled=device.type == 'cpu' and task != 'detection')
    with wrapper.optim_context(ddp), cpu_amp:
        losses = ddp(inputs, samples, mode='loss')
    total, log_vars = ddp.module.parse_losses(losses)
    wrapper.update_params(total)
    return log_vars


@pytest.mark.parametrize('precision', ['fp32', 'bf16'])
@pytest.mark.parametrize('task', sorted(DISTILLERS))
def test_one_amp_ddp_step_leaves_the_teacher_out(process_group, device, task, precision):
    torch.manual_seed(0)
    model, (inputs, samples) = DISTILLERS[task](precision)
    model.init_weights()
    model.to(device).train()
    inputs, samples = inputs.to(device), [sample.to(device) for sample in samples]
    teacher = {id(p): p for p in model.teacher.parameters()}
    before = {name: p.detach().clone() for name, p in model.teacher.named_parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    wrapper = _optim_wrapper(model, device)
    ddp = _ddp(model, device)

    in_optimizer = [p for group in wrapper.optimizer.param_groups for p in group['params']]
    assert in_optimizer and not [p for p in in_optimizer if id(p) in teacher]
    reducer = ddp._get_ddp_logging_data()  # what DDP's reducer was built over
    assert reducer['num_parameter_tensors'] == len(trainable)
    assert reducer['total_parameter_size_bytes'] == sum(
        p.numel() * p.element_size() for p in trainable)
    assert not [p for p in model.teacher.parameters() if p.requires_grad]

    log_vars = _step(ddp, wrapper, inputs, samples, device, task)
    distill = [key for key in log_vars if key.startswith('loss_') and key in (
        'loss_dkd', 'loss_dist', 'loss_kd', 'loss_dist_aux')]
    assert distill, sorted(log_vars)
    for key in distill:
        assert torch.isfinite(torch.as_tensor(log_vars[key])), (key, log_vars[key])
    assert all(p.grad is None for p in model.teacher.parameters())
    for name, p in model.teacher.named_parameters():
        assert torch.equal(p, before[name]), name
    if device.type == 'cuda':
        assert type(wrapper).__name__ == 'AmpOptimWrapper'
