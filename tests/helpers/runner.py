"""Tiny mmengine Runner set-ups for the schedule hooks' tests (CPU, seconds)."""
import itertools

import torch
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from torch.utils.data import DataLoader, Dataset

from tests.helpers.det import tiny_faster_rcnn

_names = itertools.count()


class ListDataset(Dataset):
    """Fixed, already packed samples: ``dict(inputs=..., data_samples=...)``."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        item = self.items[index]
        return dict(inputs=item['inputs'].clone(), data_samples=item['data_samples'].clone())


def det_dataset(num: int = 4, size: int = 64, num_classes: int = 3, seed: int = 0) -> ListDataset:
    from mmdet.testing import demo_mm_inputs
    torch.manual_seed(seed)
    packed = demo_mm_inputs(num, [[3, size, size]] * num, num_items=[2] * num,
                            num_classes=num_classes)
    return ListDataset([dict(inputs=i, data_samples=s)
                        for i, s in zip(packed['inputs'], packed['data_samples'])])


def cls_dataset(num: int = 8, size: int = 16, num_classes: int = 4, seed: int = 0):
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(seed)
    items = []
    for index in range(num):
        sample = DataSample(metainfo=dict(sample_idx=index)).set_gt_label(index % num_classes)
        items.append(dict(inputs=torch.randint(0, 255, (3, size, size), generator=gen,
                                               dtype=torch.uint8), data_samples=sample))
    return ListDataset(items)


def loader(dataset, batch_size: int = 2, shuffle: bool = False,
           infinite: bool = False) -> DataLoader:
    """A DataLoader; ``infinite`` for iteration loops (mmengine sleeps 2 s
    whenever an iteration loop exhausts a finite one)."""
    if infinite:
        from mmengine.dataset import InfiniteSampler
        return DataLoader(dataset, batch_size=batch_size, collate_fn=pseudo_collate,
                          sampler=InfiniteSampler(dataset, shuffle=shuffle, seed=0))
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=pseudo_collate)


def det_distiller(**kwargs):
    from mmkd.models import DetectionDistiller
    torch.manual_seed(0)
    cfg = tiny_faster_rcnn()
    kwargs.setdefault('distill_losses', dict(loss_kd=dict(type='mmkd.KDLoss', tau=1.0)))
    return DetectionDistiller(student=cfg, teacher=tiny_faster_rcnn(), **kwargs)


def tiny_classifier(num_classes: int = 4, use_soft: bool = True):
    """An mmpretrain ImageClassifier (narrow ResNet-18, linear head); its head
    loss is CrossEntropyLoss(use_soft=True) by default, as PS-KD's config sets."""
    from mmkd.models import build_model
    torch.manual_seed(0)
    return build_model(dict(
        type='ImageClassifier',
        data_preprocessor=dict(type='ClsDataPreprocessor', mean=[128.] * 3, std=[64.] * 3),
        backbone=dict(type='ResNet', depth=18, stem_channels=8, base_channels=8,
                      out_indices=(3,)),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=64,
                  loss=dict(type='CrossEntropyLoss', use_soft=use_soft))), 'mmpretrain')


def make_runner(work_dir, model, dataloader, hooks, train_cfg, checkpoint=None, resume=False,
                load_from=None, log_level='WARNING'):
    from mmengine.runner import Runner
    default_hooks = dict(logger=dict(type='LoggerHook', interval=1),
                         checkpoint=checkpoint or dict(type='CheckpointHook', interval=10**6,
                                                       save_last=False))
    return Runner(model=model, work_dir=str(work_dir), train_dataloader=dataloader,
                  train_cfg=train_cfg,
                  optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
                  custom_hooks=hooks, default_hooks=default_hooks, resume=resume,
                  load_from=load_from, randomness=dict(seed=0), log_level=log_level,
                  experiment_name=f'schedule_test_{next(_names)}_{id(model)}')


class Recorder(Hook):
    """Runs after the hook under test (lower priority) and calls ``fn`` at
    the named points with the runner."""

    priority = 'LOW'

    def __init__(self, **callbacks):
        self.callbacks = callbacks
        self.rows = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if 'before_iter' in self.callbacks:
            self.rows.append(self.callbacks['before_iter'](runner, data_batch))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if 'after_iter' in self.callbacks:
            self.rows.append(self.callbacks['after_iter'](runner, outputs))

    def after_train_epoch(self, runner):
        if 'after_epoch' in self.callbacks:
            self.rows.append(self.callbacks['after_epoch'](runner))


class CallCounter:
    """Counts calls of every submodule of ``module`` (any teacher computation
    runs at least one of them)."""

    def __init__(self, module):
        self.count = 0
        for sub in module.modules():
            sub.register_forward_pre_hook(self._hit)

    def _hit(self, *args):
        self.count += 1
