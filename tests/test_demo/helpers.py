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


def pretrained_backbone(pretrain_config, path):
    """A stand-in for the demo's backbone pretraining: the classifier of a
    ``configs/demo_pretrain`` config built and initialised (seed 123, not a
    run's seed) and saved as an mmengine checkpoint at ``path``; returns its
    backbone's weights, keyed as the detector / segmentor / classifier that
    loads it keys them (``backbone.*``)."""
    from mmengine.registry import DefaultScope
    from mmengine.runner import set_random_seed
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo_pretrain', pretrain_config))
    set_random_seed(123)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save({'state_dict': model.state_dict()}, path)
    return {k: v.clone() for k, v in model.state_dict().items() if k.startswith('backbone.')}


def with_pretrained(cfg, checkpoint):
    """Point a demo config's student backbone at a pretrained checkpoint."""
    prefix = 'model.student.' if 'teacher' in cfg.model else 'model.'
    cfg.merge_from_dict({f'{prefix}backbone.init_cfg.checkpoint': str(checkpoint)})
    return cfg


def run(config, seed, data_root, work_dir, pretrained):
    """Two training iterations of a demo config through mmengine's Runner,
    its student's backbone loaded from the checkpoint ``pretrained``."""
    cfg = with_pretrained(Config.fromfile(osp.join(REPO, config)), pretrained)
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


def assert_backbone_is(weights, backbone):
    """A student's initial weights hold ``backbone`` (``backbone.*``) as is."""
    for k, v in backbone.items():
        if not k.endswith('num_batches_tracked'):
            assert torch.equal(weights[k], v), k


def assert_same(a, b):
    """Two state dicts hold the same keys and equal tensors."""
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
