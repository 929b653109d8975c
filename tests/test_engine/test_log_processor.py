"""mmkd.DistillLogProcessor: the decomposed terms in the log a user reads are
averaged over the losses' window, so the identities of
docs/loss_magnitudes.md hold there (DKD = alpha * TCKD + beta * NCKD)."""
import json

import pytest
from mmengine.runner import Runner

from tests.helpers.runner import det_dataset, det_distiller, loader

ALPHA, BETA = 1.0, 0.25


def logged(tmp_path, log_processor):
    model = det_distiller(distill_losses=dict(
        loss_dkd=dict(type='mmkd.DKDLoss', alpha=ALPHA, beta=BETA, tau=1.0)))
    runner = Runner(
        model=model, work_dir=str(tmp_path), train_dataloader=loader(det_dataset(4), 2,
                                                                      infinite=True),
        train_cfg=dict(by_epoch=False, max_iters=10, val_interval=100),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=5),
                           checkpoint=dict(type='CheckpointHook', interval=10**6,
                                           save_last=False)),
        log_processor=log_processor, randomness=dict(seed=0), log_level='WARNING',
        experiment_name=f'log_processor_{tmp_path.name}')
    runner.train()
    with open(next(tmp_path.glob('*/vis_data/scalars.json'))) as f:
        return [json.loads(line) for line in f]


def test_decomposed_terms_are_window_means_like_the_losses(tmp_path):
    rows = logged(tmp_path, dict(type='mmkd.DistillLogProcessor', window_size=5))
    assert {5, 10} <= {row['iter'] for row in rows}
    for row in rows:
        assert row['loss_dkd'] == pytest.approx(ALPHA * row['dkd_tckd'] + BETA * row['dkd_nckd'],
                                                rel=1e-4, abs=1e-6), row


def test_the_plain_processor_shows_one_iterations_terms(tmp_path):
    """What the processor fixes (this test fails if mmengine ever averages
    every key): with mmengine's own processor the identity breaks."""
    rows = logged(tmp_path, dict(type='LogProcessor', window_size=5))
    assert any(row['loss_dkd'] != pytest.approx(ALPHA * row['dkd_tckd'] + BETA * row['dkd_nckd'],
                                                rel=1e-4, abs=1e-6) for row in rows)
