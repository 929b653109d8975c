"""DistillWarmupHook: mdistiller's min(epoch / warmup, 1) with epochs counted
from 1, per epoch or per iteration, through a real Runner and after resume."""
import json
import os

import pytest
import torch

from mmkd.engine.hooks import DistillWarmupHook
from tests.helpers.det import det_batch
from tests.helpers.runner import Recorder, det_dataset, det_distiller, loader, make_runner


def test_factors_by_epoch_follow_mdistiller():
    hook = DistillWarmupHook(warmup=4)
    # mdistiller's epochs 1, 2, 3, 4, 5 are runner.epoch 0..4
    assert [hook.factor(e) for e in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    # DKD's ImageNet YAMLs: WARMUP 1 is no warm-up at all
    assert DistillWarmupHook(warmup=1).factor(0) == 1.0


def test_factors_by_iter_ramp_per_iteration():
    hook = DistillWarmupHook(warmup=8, by_epoch=False)
    assert [hook.factor(i) for i in (0, 1, 3, 7, 100)] == [0.125, 0.25, 0.5, 1.0, 1.0]


@pytest.mark.parametrize('warmup', [0, -1, 1.5, True])
def test_bad_warmup_is_refused(warmup):
    with pytest.raises(ValueError, match='warmup must be an integer >= 1'):
        DistillWarmupHook(warmup=warmup)


def test_factor_scales_distillation_losses_only():
    model = det_distiller()
    model.train()
    inputs, samples = det_batch(model)

    def losses(factor):
        model.distill_factor = factor
        torch.manual_seed(3)  # same RPN proposals and RoI samples
        return model.loss(inputs, samples)

    full, scaled = losses(1.0), losses(0.25)
    assert torch.allclose(scaled['loss_kd'], 0.25 * full['loss_kd'], rtol=1e-5)
    for key in ('loss_cls', 'loss_bbox'):
        assert torch.allclose(scaled[key], full[key])
    assert torch.allclose(scaled['kd_agreement'], full['kd_agreement'])


def _logged_factors(work_dir):
    rows = []
    for root, _, files in os.walk(work_dir):
        for name in files:
            if name == 'scalars.json':
                with open(os.path.join(root, name)) as fh:
                    rows += [json.loads(line) for line in fh]
    return [r['distill_factor'] for r in sorted(rows, key=lambda r: r['step'])
            if 'distill_factor' in r]


def test_runner_epoch_warmup_logged_and_resumed(tmp_path):
    seen = Recorder(before_iter=lambda runner, batch: runner.model.distill_factor)
    data = loader(det_dataset(4), batch_size=2)
    hooks = [DistillWarmupHook(warmup=3), seen]
    ckpt = dict(type='CheckpointHook', interval=1, by_epoch=True)
    make_runner(tmp_path, det_distiller(), data, hooks, dict(by_epoch=True, max_epochs=2),
                checkpoint=ckpt).train()
    assert seen.rows == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert _logged_factors(tmp_path) == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3])

    # --resume after epoch 1: the ramp goes on at epoch 2, not from the start
    resumed = Recorder(before_iter=lambda runner, batch: runner.model.distill_factor)
    make_runner(tmp_path, det_distiller(), data, [DistillWarmupHook(warmup=3), resumed],
                dict(by_epoch=True, max_epochs=4), checkpoint=ckpt,
                resume=True, load_from=str(tmp_path / 'epoch_1.pth')).train()
    assert resumed.rows == pytest.approx([2 / 3, 2 / 3, 1.0, 1.0, 1.0, 1.0])


def test_runner_iteration_warmup(tmp_path):
    seen = Recorder(before_iter=lambda runner, batch: runner.model.distill_factor)
    make_runner(tmp_path, det_distiller(), loader(det_dataset(2), infinite=True),
                [DistillWarmupHook(warmup=2, by_epoch=False), seen],
                dict(by_epoch=False, max_iters=3)).train()
    assert seen.rows == pytest.approx([0.5, 1.0, 1.0])


def test_epoch_warmup_in_iteration_loop_is_refused(tmp_path):
    runner = make_runner(tmp_path, det_distiller(), loader(det_dataset(2)),
                         [DistillWarmupHook(warmup=2)], dict(by_epoch=False, max_iters=2))
    with pytest.raises(ValueError, match='iteration-based'):
        runner.train()
