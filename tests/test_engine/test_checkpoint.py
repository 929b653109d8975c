"""Checkpoints are loaded weights_only with an allow-list: an mmengine
checkpoint resumes, a crafted pickle is refused everywhere a file is read
(teacher_ckpt, load_from, --resume, model-zoo URLs) without running."""
import os
import os.path as osp

import pytest
import torch
from mmengine.runner.checkpoint import _load_checkpoint

from mmkd.engine.checkpoint import TRUST_ENV, UntrustedCheckpointError
from tests.helpers.checkpoints import crafted_checkpoint


@pytest.fixture
def no_trust(monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)


def toy_runner(work_dir, **cfg):
    from mmengine.runner import Runner
    from mmengine.registry import DATASETS, METRICS, MODELS
    from mmengine.testing.runner_test_case import ToyDataset, ToyMetric, ToyModel
    MODELS.register_module(module=ToyModel, force=True)
    DATASETS.register_module(module=ToyDataset, force=True)
    METRICS.register_module(module=ToyMetric, force=True)
    loader = dict(dataset=dict(type='ToyDataset'), sampler=dict(type='DefaultSampler'),
                  batch_size=3, num_workers=0)
    base = dict(work_dir=str(work_dir), model=dict(type='ToyModel'), train_dataloader=loader,
                optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
                train_cfg=dict(by_epoch=False, max_iters=2),
                default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False,
                                                   interval=2)),
                default_scope='mmengine', experiment_name=f'toy{abs(hash(str(cfg)))}')
    base.update(cfg)
    return Runner(**base)


def test_mmengine_checkpoint_needs_the_allow_list_and_resumes_with_it(tmp_path, no_trust):
    runner = toy_runner(tmp_path / 'a')
    runner.train()
    ckpt = str(tmp_path / 'a' / 'iter_2.pth')
    # The message hub's HistoryBuffer and numpy values: torch's default refuses them...
    with pytest.raises(Exception, match='weights_only|Unsupported'):
        torch.load(ckpt, weights_only=True)
    # ...mmkd's loader accepts exactly them, without a full unpickle.
    loaded = _load_checkpoint(ckpt, map_location='cpu')
    assert 'message_hub' in loaded and loaded['meta']['iter'] == 2
    resumed = toy_runner(tmp_path / 'b', resume=True, load_from=ckpt,
                         train_cfg=dict(by_epoch=False, max_iters=3))
    resumed.train()
    assert resumed.iter == 3


def test_crafted_teacher_checkpoint_is_refused_and_runs_nothing(tmp_path, no_trust):
    from mmkd.registry import MODELS
    from tests.helpers.det import tiny_faster_rcnn
    marker = tmp_path / 'pwned'
    path = crafted_checkpoint(tmp_path / 'teacher.pth', marker)
    with pytest.raises(UntrustedCheckpointError, match=r'builtins\.exec(.|\n)*' + TRUST_ENV):
        MODELS.build(dict(type='mmkd.DetectionDistiller', student=tiny_faster_rcnn(18),
                          teacher=tiny_faster_rcnn(18), teacher_ckpt=path))
    assert not marker.exists()


@pytest.mark.parametrize('how', ['load_from', 'resume'])
def test_crafted_load_from_and_resume_are_refused(tmp_path, no_trust, how):
    marker = tmp_path / 'pwned'
    path = crafted_checkpoint(tmp_path / 'evil.pth', marker)
    runner = toy_runner(tmp_path / how, load_from=path, resume=how == 'resume')
    with pytest.raises(UntrustedCheckpointError, match=r'builtins\.exec'):
        runner.train()
    assert not marker.exists()


def test_crafted_model_zoo_url_is_refused(tmp_path, no_trust, monkeypatch):
    """A URL is downloaded to torch hub's cache and read like a local file."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'hub'))
    marker = tmp_path / 'pwned'
    os.makedirs(tmp_path / 'hub' / 'checkpoints')
    crafted_checkpoint(tmp_path / 'hub' / 'checkpoints' / 'zoo_teacher.pth', marker)
    with pytest.raises(UntrustedCheckpointError, match=r'builtins\.exec'):
        _load_checkpoint('https://download.example.invalid/models/zoo_teacher.pth')
    assert not marker.exists()


def test_explicit_trust_loads_in_full(tmp_path, monkeypatch):
    """The opt-in works, and shows the crafted file really does run code."""
    marker = tmp_path / 'pwned'
    path = crafted_checkpoint(tmp_path / 'mine.pth', marker)
    other = crafted_checkpoint(tmp_path / 'other.pth', tmp_path / 'other_marker')
    monkeypatch.setenv(TRUST_ENV, path)
    loaded = _load_checkpoint(path, map_location='cpu')
    assert 'state_dict' in loaded and marker.read_text() == 'pwned'
    with pytest.raises(UntrustedCheckpointError):  # trust is per file
        _load_checkpoint(other, map_location='cpu')
    assert not osp.exists(tmp_path / 'other_marker')


def test_config_trust_checkpoints_sets_the_opt_in(tmp_path, monkeypatch):
    import argparse
    from mmkd.utils import load_config
    monkeypatch.delenv(TRUST_ENV, raising=False)
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(f"trust_checkpoints = [{str(tmp_path / 'a.pth')!r}]\n")
    args = argparse.Namespace(config=str(cfg_file), launcher='none', cfg_options=None,
                              work_dir=str(tmp_path), local_rank=0)
    load_config(args)
    assert os.environ[TRUST_ENV] == str(tmp_path / 'a.pth')


def test_an_accelerator_map_location_keeps_the_pskd_memory_on_the_cpu(tmp_path, no_trust):
    """mmengine's --resume maps a checkpoint to the GPU; PS-KD's memory (2.56 GB
    at ImageNet size) must stay on the CPU, everything else moves. 'meta'
    stands in for the GPU here: a device that is not the CPU."""
    from mmkd.checkpoint import CPU_RESIDENT_KEYS, load_checkpoint_file
    from mmkd.engine.hooks.pskd_hook import CHECKPOINT_KEY
    assert CHECKPOINT_KEY in CPU_RESIDENT_KEYS
    path = str(tmp_path / 'ckpt.pth')
    torch.save(dict(state_dict=dict(w=torch.ones(2)), optimizer=dict(state={0: dict(
        momentum_buffer=torch.zeros(2))}), pskd_memory=torch.zeros(4, 3, dtype=torch.float16),
                    meta=dict(iter=3)), path)
    loaded = load_checkpoint_file(path, map_location='meta')
    assert loaded['state_dict']['w'].device.type == 'meta'
    assert loaded['optimizer']['state'][0]['momentum_buffer'].device.type == 'meta'
    assert loaded['pskd_memory'].device.type == 'cpu'
    assert loaded['pskd_memory'].dtype == torch.float16 and loaded['meta'] == dict(iter=3)
    on_cpu = load_checkpoint_file(path, map_location='cpu')
    assert on_cpu['state_dict']['w'].device.type == 'cpu'
