"""DOTOptimWrapper: mdistiller's DOT step for step (its own code, run from a
fetched copy), the hand-derived limits (delta 0 is SGD on the total loss, no
distillation is plain SGD), checkpoints and resume, clipping, refusals."""
import copy

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from mmkd.engine.optim import DOTOptimWrapper, dot_group_step
from mmkd.engine.optim.dot_update import KD_BUFFER, TASK_BUFFER
from mmkd.models import ClassificationDistiller
from tests.helpers.cls import tiny_resnet
from tests.helpers.official import mdistiller_dot
from tests.helpers.runner import cls_dataset, loader

SGD = dict(lr=0.1, momentum=0.9, weight_decay=1e-4)


def distiller(**kwargs):
    torch.manual_seed(0)
    model = ClassificationDistiller(
        student=tiny_resnet(num_classes=4, width=4), teacher=tiny_resnet(num_classes=4, width=4),
        distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss', tau=1.0, loss_weight=0.5)),
        **kwargs)
    model.student.head.loss_module.loss_weight = 0.5  # mdistiller's CE 0.5 + KD 0.5
    return model.train()


def steady(*models):
    """BatchNorm on running statistics: in train mode, batch-4 statistics of
    1x1 maps make this tiny net chaotic (a 1e-6 change of one weight grows
    ~20x a step under plain SGD), so sums taken in another order, which
    agree to rounding, could not be compared after a few steps."""
    for model in models:
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
    return models


def raw_batches(steps):
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(1)
    return [dict(inputs=[torch.randint(0, 256, (3, 32, 32), generator=gen, dtype=torch.uint8)
                         for _ in range(4)],
                 data_samples=[DataSample().set_gt_label((step + i) % 4) for i in range(4)])
            for step in range(steps)]


def dot_wrapper(model, delta=0.09, **kwargs):
    return DOTOptimWrapper(torch.optim.SGD(model.parameters(), **SGD), delta=delta, **kwargs)


def student_params(model):
    return [p.detach().clone() for p in model.parameters()]


def assert_close(a, b, rtol=1e-6, atol=1e-9):
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=rtol, atol=atol)


# -- fidelity: mdistiller's own DistillationOrientedTrainer ----------------------------
def test_update_rule_equals_official_on_task_only_distill_only_and_shared_params():
    """Three parameters: one only the task loss reaches, one only the
    distillation loss, one both (every branch of the official rule),
    weight decay on, ten steps, float64."""
    Official = mdistiller_dot()
    torch.manual_seed(0)
    init = [torch.randn(5, dtype=torch.float64) for _ in range(3)]
    ours, theirs = ([p.clone().requires_grad_() for p in init] for _ in range(2))
    settings = dict(lr=0.1, momentum=0.9 - 0.09, weight_decay=5e-3)
    official = Official(theirs, momentum_kd=0.9 + 0.09, **settings)
    group = dict(lr=0.1, momentum=0.9, weight_decay=5e-3, dampening=0)
    state = {p: {} for p in ours}
    for step in range(10):
        x = torch.randn(5, dtype=torch.float64)

        def losses(a, b, c):  # (task, distillation)
            task = (a * x).sum() ** 2 + (b * x).sum().sin()
            return task, (b * c * x).sum().cos() + c.square().sum()

        task, kd = losses(*ours)
        task_grads = dict(zip(ours[:2], torch.autograd.grad(task, ours[:2], retain_graph=True)))
        kd_grads = dict(zip(ours[1:], torch.autograd.grad(kd, ours[1:])))
        dot_group_step(group, state, task_grads, kd_grads, delta=0.09)

        task, kd = losses(*theirs)
        official.zero_grad(set_to_none=True)
        kd.backward(retain_graph=True)
        official.step_kd()
        official.zero_grad(set_to_none=True)
        task.backward()
        official.step()
    assert_close(ours, [p.detach() for p in theirs], rtol=1e-12)
    for mine, their in zip(ours, theirs):
        for key in (TASK_BUFFER, KD_BUFFER):
            assert (key in state[mine]) == (key in official.state[their])
            if key in state[mine]:
                torch.testing.assert_close(state[mine][key], official.state[their][key],
                                           rtol=1e-12, atol=0)
    assert set(state[ours[0]]) == {TASK_BUFFER} and set(state[ours[2]]) == {KD_BUFFER}


def test_ten_steps_of_a_distiller_equal_mdistillers_trainer():
    """Our wrapper in mmengine's train step vs mdistiller's trainer step
    (zero_grad, loss_kd.backward(retain_graph), step_kd, zero_grad,
    loss_ce.backward, step) on the same distiller, seeds and batches."""
    Official = mdistiller_dot()
    ours, theirs = distiller(), distiller()
    wrapper = dot_wrapper(ours)
    official = Official(list(theirs.parameters()), lr=SGD['lr'], momentum=0.9 - 0.09,
                        momentum_kd=0.9 + 0.09, weight_decay=SGD['weight_decay'])
    for batch in raw_batches(10):
        ours.train_step(copy.deepcopy(batch), wrapper)
        data = theirs.data_preprocessor(copy.deepcopy(batch), True)
        losses = theirs(**data, mode='loss')
        official.zero_grad(set_to_none=True)
        losses['loss_kd'].backward(retain_graph=True)
        official.step_kd()
        official.zero_grad(set_to_none=True)
        losses['loss_cls'].backward()
        official.step()
    assert_close(student_params(ours), student_params(theirs))
    theirs_state = official.state
    for mine, their in zip(ours.parameters(), theirs.parameters(), strict=True):
        for key in (TASK_BUFFER, KD_BUFFER):
            torch.testing.assert_close(wrapper.optimizer.state[mine][key],
                                       theirs_state[their][key], rtol=1e-6, atol=1e-9)


# -- hand-derived limits ------------------------------------------------------------
def test_delta_zero_is_sgd_on_the_total_loss():
    """m +- 0: the two buffers sum to SGD's buffer of the summed gradient."""
    dot_model, sgd_model = steady(distiller(), distiller())
    dot = dot_wrapper(dot_model, delta=0.0)
    sgd = OptimWrapper(torch.optim.SGD(sgd_model.parameters(), **SGD))
    for batch in raw_batches(6):
        dot_model.train_step(copy.deepcopy(batch), dot)
        sgd_model.train_step(copy.deepcopy(batch), sgd)
    assert_close(student_params(dot_model), student_params(sgd_model), rtol=1e-5, atol=1e-7)
    assert not torch.equal(student_params(dot_model)[0], student_params(distiller())[0])


def test_without_distillation_it_is_plain_sgd_bit_for_bit():
    """An ESKD stop (distill_active False): mmengine's SGD step, which
    continues from DOT's task buffer with momentum m."""
    dot_model, sgd_model = distiller(), distiller()
    dot = dot_wrapper(dot_model)
    data = raw_batches(6)
    for batch in data[:3]:  # DOT steps first: both buffers exist
        dot_model.train_step(copy.deepcopy(batch), dot)
    sgd_model.load_state_dict(dot_model.state_dict())
    sgd = OptimWrapper(torch.optim.SGD(sgd_model.parameters(), **SGD))
    sgd.load_state_dict(copy.deepcopy(dot.state_dict()))
    dot_model.distill_active = sgd_model.distill_active = False
    for batch in data[3:]:
        dot_model.train_step(copy.deepcopy(batch), dot)
        sgd_model.train_step(copy.deepcopy(batch), sgd)
        assert not dot_model.distill_loss_keys
    for a, b in zip(student_params(dot_model), student_params(sgd_model), strict=True):
        assert torch.equal(a, b)


def test_distill_factor_scales_only_the_distillation_buffer():
    """Warm-up (distill_factor 0): the distillation gradient is zero, so the
    task buffer alone moves the parameters, with momentum m - delta."""
    model = distiller()
    model.distill_factor = 0.0
    wrapper = dot_wrapper(model)
    for batch in raw_batches(2):
        model.train_step(copy.deepcopy(batch), wrapper)
    for param in model.parameters():
        assert torch.count_nonzero(wrapper.optimizer.state[param][KD_BUFFER]) == 0


# -- checkpoints, resume, clipping --------------------------------------------------
def _runner(work_dir, max_iters, resume_from=None, hooks=(), **wrapper):
    from mmengine.runner import Runner
    wrapper = dict(type='mmkd.DOTOptimWrapper', delta=0.09, optimizer=dict(type='SGD', **SGD),
                   **wrapper)
    return Runner(
        model=distiller(), work_dir=str(work_dir),
        train_dataloader=loader(cls_dataset(8, size=32), batch_size=2, infinite=True),
        train_cfg=dict(by_epoch=False, max_iters=max_iters), optim_wrapper=wrapper,
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=list(hooks), resume=resume_from is not None, load_from=resume_from,
        randomness=dict(seed=0),
        log_level='WARNING', experiment_name=f'dot_{id(work_dir)}_{max_iters}')


def test_checkpoint_holds_both_buffers_and_resume_continues_identically(tmp_path):
    from mmkd.checkpoint import load_checkpoint_file
    straight = _runner(tmp_path / 'straight', 4)
    straight.train()
    assert isinstance(straight.optim_wrapper, DOTOptimWrapper)
    saved = load_checkpoint_file(str(tmp_path / 'straight' / 'iter_2.pth'))
    states = saved['optimizer']['state'].values()
    assert len(states) == len(list(straight.model.parameters()))
    assert all({TASK_BUFFER, KD_BUFFER} <= set(s) for s in states)

    _runner(tmp_path / 'half', 2).train()
    resumed = _runner(tmp_path / 'half', 4, resume_from=str(tmp_path / 'half' / 'iter_2.pth'))
    resumed.train()
    for a, b in zip(student_params(straight.model), student_params(resumed.model), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        for key in (TASK_BUFFER, KD_BUFFER):
            assert torch.equal(straight.optim_wrapper.optimizer.state[a][key],
                               resumed.optim_wrapper.optimizer.state[b][key])


def test_runner_with_warmup_and_eskd_hooks(tmp_path):
    """Warm-up scales the distillation gradient (by iteration here); after
    the ESKD stop at iteration 3 the steps are plain SGD: the distillation
    buffers no longer change while the parameters do."""
    from mmkd.engine.hooks import DistillWarmupHook, EarlyStopDistillHook
    from tests.helpers.runner import Recorder

    def snapshot(runner, outputs):
        state = runner.optim_wrapper.optimizer.state
        return dict(keys=runner.model.distill_loss_keys, params=student_params(runner.model),
                    kd=[state[p][KD_BUFFER].clone() for p in runner.model.parameters()])

    rows = Recorder(after_iter=snapshot)
    runner = _runner(tmp_path, 5, hooks=[DistillWarmupHook(warmup=2, by_epoch=False),
                                         EarlyStopDistillHook(stop_iter=3), rows])
    runner.train()
    assert [bool(row['keys']) for row in rows.rows] == [True] * 3 + [False] * 2
    assert not torch.equal(rows.rows[1]['kd'][0], rows.rows[2]['kd'][0])
    for before, after in zip(rows.rows[2:], rows.rows[3:]):
        assert all(torch.equal(a, b) for a, b in zip(before['kd'], after['kd']))
        assert not torch.equal(before['params'][0], after['params'][0])


def test_clip_grad_clips_the_total_gradient():
    """Norm clipping of task + distillation gradients: with delta 0 it is
    SGD with the same clip_grad, and it does clip."""
    clip = dict(max_norm=0.05)
    dot_model, sgd_model, free_model = steady(distiller(), distiller(), distiller())
    dot = dot_wrapper(dot_model, delta=0.0, clip_grad=dict(clip))
    sgd = OptimWrapper(torch.optim.SGD(sgd_model.parameters(), **SGD), clip_grad=dict(clip))
    free = dot_wrapper(free_model, delta=0.0)
    for batch in raw_batches(3):
        dot_model.train_step(copy.deepcopy(batch), dot)
        dot_norm = dot.message_hub.get_scalar('train/grad_norm').current()
        sgd_model.train_step(copy.deepcopy(batch), sgd)
        sgd_norm = sgd.message_hub.get_scalar('train/grad_norm').current()
        assert dot_norm == pytest.approx(sgd_norm, rel=1e-5) and dot_norm > clip['max_norm']
        free_model.train_step(copy.deepcopy(batch), free)
    assert_close(student_params(dot_model), student_params(sgd_model), rtol=1e-5, atol=1e-7)
    assert not torch.allclose(student_params(dot_model)[0], student_params(free_model)[0])


# -- refusals, before the first step ----------------------------------------------------
def test_config_builds_it_and_bad_set_ups_are_refused():
    model = distiller()
    built = OPTIM_WRAPPERS.build(dict(type='mmkd.DOTOptimWrapper', delta=0.09,
                                      optimizer=torch.optim.SGD(model.parameters(), **SGD)))
    assert isinstance(built, DOTOptimWrapper) and built.delta == 0.09
    params = list(model.parameters())
    with pytest.raises(ValueError, match='AMP'):
        DOTOptimWrapper(torch.optim.SGD(params, **SGD), delta=0.09, loss_scale='dynamic')
    with pytest.raises(TypeError, match="needs optimizer=dict\\(type='SGD'"):
        DOTOptimWrapper(torch.optim.AdamW(params, lr=1e-3), delta=0.09)
    with pytest.raises(ValueError, match='nesterov'):
        DOTOptimWrapper(torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True), delta=0.09)
    with pytest.raises(ValueError, match='delta must be in'):
        DOTOptimWrapper(torch.optim.SGD(params, lr=0.1, momentum=0.05), delta=0.09)
    with pytest.raises(ValueError, match='accumulative_counts=1'):
        DOTOptimWrapper(torch.optim.SGD(params, **SGD), delta=0.09, accumulative_counts=2)
    with pytest.raises(ValueError, match='norm only'):
        DOTOptimWrapper(torch.optim.SGD(params, **SGD), delta=0.09,
                        clip_grad=dict(type='value', clip_value=1.0))


def test_plain_student_autocast_and_a_loose_update_are_refused():
    model = distiller()
    student = model.student
    before = student_params(student)
    wrapper = dot_wrapper(student)
    with pytest.raises(TypeError, match='trains an mmkd distiller'):
        student.train_step(raw_batches(1)[0], wrapper)
    with pytest.raises(RuntimeError, match='autocast'):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            model.train_step(raw_batches(1)[0], dot_wrapper(model))
    loss = sum(p.sum() for p in model.parameters())
    with pytest.raises(RuntimeError, match="needs mmengine's train step"):
        dot_wrapper(model).update_params(loss)
    for a, b in zip(before, student_params(student)):
        assert torch.equal(a, b)


def test_runner_refuses_adam_before_the_first_step(tmp_path):
    from mmengine.runner import Runner
    runner = Runner(
        model=distiller(), work_dir=str(tmp_path),
        train_dataloader=loader(cls_dataset(4, size=32), batch_size=2, infinite=True),
        train_cfg=dict(by_epoch=False, max_iters=2),
        optim_wrapper=dict(type='mmkd.DOTOptimWrapper', delta=0.09,
                           optimizer=dict(type='Adam', lr=1e-3)),
        log_level='WARNING', experiment_name=f'dot_adam_{id(tmp_path)}')
    with pytest.raises(TypeError, match='not defined for other optimizers'):
        runner.train()


# -- DDP: the distillation gradient, taken without DDP's hooks, is averaged too ------
def _ddp_worker(rank, port, out_dir):
    import os

    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    try:
        model, = steady(distiller())
        ddp = MMDistributedDataParallel(module=model, device_ids=None)
        wrapper = dot_wrapper(model)
        for batch in raw_batches(3):  # each rank its half of the batch
            half = {key: value[2 * rank:2 * rank + 2] for key, value in batch.items()}
            ddp.train_step(half, wrapper)
        torch.save(dict(params=student_params(model),
                        kd=[wrapper.optimizer.state[p][KD_BUFFER] for p in model.parameters()]),
                   os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def test_ddp_on_two_processes_equals_one_process_on_the_whole_batch(tmp_path):
    """BatchNorm on running statistics and mean losses: the mean of the two
    halves' gradients is the whole batch's, so 2 ranks of 2 images step as
    1 process of 4 images, and the ranks stay identical."""
    import socket

    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    mp.start_processes(_ddp_worker, args=(port, str(tmp_path)), nprocs=2, join=True,
                       start_method='spawn')  # fork after torch's threads can deadlock
    ranks = [torch.load(tmp_path / f'rank{r}.pt', weights_only=True) for r in (0, 1)]
    single, = steady(distiller())
    wrapper = dot_wrapper(single)
    for batch in raw_batches(3):
        single.train_step(copy.deepcopy(batch), wrapper)
    for a, b in zip(ranks[0]['params'] + ranks[0]['kd'], ranks[1]['params'] + ranks[1]['kd']):
        assert torch.equal(a, b)
    assert_close(ranks[0]['params'], student_params(single), rtol=1e-5, atol=1e-7)
    assert_close(ranks[0]['kd'], [wrapper.optimizer.state[p][KD_BUFFER]
                                  for p in single.parameters()], rtol=1e-4, atol=1e-6)
