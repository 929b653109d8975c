"""What the demo's same-start tests share: two training iterations of a demo
config through mmengine's Runner (as the demo builds its runs), recording the
student's initial weights and the batches it is handed.

Not a test module: the test modules import from here, never from one another.
"""
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from tests.helpers import REPO


class Record(Hook):
    """What the Runner hands to training: the student's weights after
    ``init_weights`` and the batches of the first iterations."""

    def before_train(self, runner):
        student = getattr(runner.model, 'student', runner.model)
        self.weights = {k: v.clone() for k, v in student.state_dict().items()}
        self.batches = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.batches.append([(s.img_path, s.metainfo.get('flip'))
                             for s in data_batch['data_samples']])


def run(config, seed, data_root, work_dir):
    """Two training iterations of a demo config through mmengine's Runner."""
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.merge_from_dict({'randomness.seed': seed, 'train_dataloader.sampler.seed': seed,
                         'train_dataloader.dataset.data_root': data_root,
                         'train_dataloader.batch_size': 4, 'train_cfg.max_iters': 2,
                         'train_cfg.val_interval': 100, 'default_hooks.checkpoint.interval': 100,
                         'default_hooks.checkpoint.save_last': False})
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    if 'teacher' in cfg.model:
        cfg.model.teacher_ckpt = None  # a trained teacher would not change the student
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'same_start_{osp.basename(str(work_dir))}'
    cfg.visualizer.name = cfg.experiment_name
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    record = Record()
    runner.register_hook(record)
    runner.train()
    return record


def assert_same(a, b):
    """Two state dicts hold the same keys and equal tensors."""
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
