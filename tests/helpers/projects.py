"""A user's projects, run as a user runs them: a plain host-library config
(no mmkd anywhere), the README's distillation recipe on top of it, tiny
generated data, and the repository's tools started as subprocesses."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys
import textwrap
from typing import List

import numpy as np
from PIL import Image

from tests.helpers import REPO

DET_CLASSES = ('circle', 'square', 'triangle', 'star', 'cross', 'ring')
SEG_CLASSES = ('background', ) + DET_CLASSES
CLS_CLASSES = ('red', 'green', 'blue')


def free_port() -> int:
    """A TCP port free on this machine now (for a torch.distributed rendezvous)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run(cmd: List[str], **kwargs) -> str:
    """Run ``cmd`` from the repository root (one thread per process, a free
    rendezvous port for ``tools/dist_train.sh``); assert it succeeds and
    return its stdout + stderr."""
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()),
               OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
                          **kwargs)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    return out


def scalars(work_dir) -> List[dict]:
    """Every row of every ``scalars.json`` mmengine wrote under ``work_dir``."""
    rows = []
    for dirpath, _, files in os.walk(work_dir):
        for f in files:
            if f == 'scalars.json':
                with open(osp.join(dirpath, f)) as fh:
                    rows += [json.loads(line) for line in fh]
    return rows


def distill_config(base: str, distiller: str, teacher_ckpt: str, **losses: str) -> str:
    """The README's recipe, verbatim in shape: ``custom_imports`` and one
    wrapper dict around the model of the user's config ``base``.

    Args:
        base: The user's config file name, next to the written file.
        distiller: The wrapper's registered type, e.g. ``'mmkd.DetectionDistiller'``.
        teacher_ckpt: The teacher's checkpoint path.
        **losses: The wrapper's loss arguments as config text, e.g.
            ``distill_losses="dict(loss_kd=dict(type='mmkd.KDLoss'))"``.

    Returns:
        The config file's text.
    """
    args = ['_delete_=True', f"type='{distiller}'", 'student={{_base_.model}}',
            'teacher={{_base_.model}}', f"teacher_ckpt='{teacher_ckpt}'"]
    args += [f'{name}={value}' for name, value in losses.items()]
    return (f"_base_ = './{base}'\n"
            "custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)\n"
            'model = dict(\n    ' + ',\n    '.join(args) + ')\n')


def plain_mmdet_config(data: str) -> str:
    """A user's existing mmdet detector config: no mmkd anywhere."""
    return textwrap.dedent(f"""
        _base_ = ['mmdet::_base_/models/faster-rcnn_r50_fpn.py',
                  'mmdet::_base_/default_runtime.py']
        model = dict(
            backbone=dict(depth=18, base_channels=16, init_cfg=None),
            neck=dict(in_channels=[16, 32, 64, 128], out_channels=16),
            rpn_head=dict(in_channels=16, feat_channels=16, anchor_generator=dict(scales=[4])),
            roi_head=dict(bbox_roi_extractor=dict(out_channels=16),
                          bbox_head=dict(in_channels=16, fc_out_channels=32, num_classes=6)),
            train_cfg=dict(rpn_proposal=dict(nms_pre=200, max_per_img=50),
                           rcnn=dict(sampler=dict(num=32))),
            test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=50)))
        metainfo = dict(classes={DET_CLASSES!r})
        pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                    dict(type='Resize', scale=(96, 96), keep_ratio=True), dict(type='PackDetInputs')]
        train_dataloader = dict(
            batch_size=2, num_workers=0, sampler=dict(type='InfiniteSampler', shuffle=True),
            dataset=dict(type='CocoDataset', data_root='{data}', metainfo=metainfo,
                         ann_file='annotations/instances_train.json',
                         data_prefix=dict(img='train/'), pipeline=pipeline))
        val_dataloader = dict(
            batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(type='CocoDataset', data_root='{data}', metainfo=metainfo,
                         ann_file='annotations/instances_val.json', data_prefix=dict(img='val/'),
                         test_mode=True, pipeline=pipeline))
        test_dataloader = val_dataloader
        val_evaluator = dict(type='CocoMetric', ann_file='{data}/annotations/instances_val.json',
                             metric='bbox')
        test_evaluator = val_evaluator
        train_cfg = dict(type='IterBasedTrainLoop', max_iters=4, val_interval=4)
        val_cfg = dict(type='ValLoop')
        test_cfg = dict(type='TestLoop')
        optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
        default_hooks = dict(logger=dict(type='LoggerHook', interval=1),
                             checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2))
        log_processor = dict(by_epoch=False)
        """)


def det_distill_config(teacher_ckpt: str) -> str:
    """DKD on the RoI logits of the detector in ``./det.py``."""
    return distill_config(
        'det.py', 'mmkd.DetectionDistiller', teacher_ckpt,
        distill_losses="dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.25, tau=1.0))")


def plain_mmseg_config(data: str) -> str:
    """A user's existing mmseg segmentor config: no mmkd anywhere."""
    return textwrap.dedent(f"""
        _base_ = ['mmseg::_base_/models/deeplabv3_r50-d8.py',
                  'mmseg::_base_/default_runtime.py']
        bn = dict(type='BN', requires_grad=True)
        model = dict(
            data_preprocessor=dict(size=(64, 64)),
            pretrained=None,
            backbone=dict(depth=18, stem_channels=16, base_channels=16, norm_cfg=bn),
            decode_head=dict(in_channels=128, channels=16, dilations=(1, 2, 3, 4),
                             num_classes=7, norm_cfg=bn),
            auxiliary_head=dict(in_channels=64, channels=8, num_classes=7, norm_cfg=bn))
        metainfo = dict(classes={SEG_CLASSES!r})
        train_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                          dict(type='RandomFlip', prob=0.5), dict(type='PackSegInputs')]
        test_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                         dict(type='PackSegInputs')]
        dataset = dict(type='BaseSegDataset', data_root='{data}', metainfo=metainfo,
                       img_suffix='.png', seg_map_suffix='.png')
        train_dataloader = dict(
            batch_size=2, num_workers=0, sampler=dict(type='InfiniteSampler', shuffle=True),
            dataset=dict(dataset, data_prefix=dict(img_path='train', seg_map_path='train_sem'),
                         pipeline=train_pipeline))
        val_dataloader = dict(
            batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(dataset, data_prefix=dict(img_path='val', seg_map_path='val_sem'),
                         pipeline=test_pipeline))
        test_dataloader = val_dataloader
        val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
        test_evaluator = val_evaluator
        train_cfg = dict(type='IterBasedTrainLoop', max_iters=4, val_interval=4)
        val_cfg = dict(type='ValLoop')
        test_cfg = dict(type='TestLoop')
        optim_wrapper = dict(type='OptimWrapper',
                             optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4))
        param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=100,
                                by_epoch=False)]
        default_hooks = dict(
            timer=dict(type='IterTimerHook'),
            logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False),
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2),
            sampler_seed=dict(type='DistSamplerSeedHook'),
            visualization=dict(type='SegVisualizationHook'))
        """)


def seg_distill_config(teacher_ckpt: str) -> str:
    """DIST on the decode and the auxiliary head of the segmentor in ``./seg.py``."""
    return distill_config(
        'seg.py', 'mmkd.SegmentationDistiller', teacher_ckpt,
        distill_losses="dict(loss_dist=dict(type='mmkd.DISTLoss', beta=1.0, gamma=1.0, tau=1.0))",
        aux_distill_losses="dict(loss_dist_aux=dict(type='mmkd.DISTLoss', loss_weight=0.4))")


def draw_images(root, split: str, per_class: int, seed: int) -> None:
    """An image folder ``root/split/<class>/<i>.png``: 32x32 noise images with
    a bright square in the class's colour channel."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLS_CLASSES):
        folder = root / split / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 90, (32, 32, 3), dtype=np.uint8)
            y, x = rng.integers(0, 16, 2)
            image[y:y + 16, x:x + 16, label] = 255
            Image.fromarray(image).save(folder / f'{i}.png')


def plain_mmpretrain_config(data: str) -> str:
    """A user's existing mmpretrain classifier config: no mmkd anywhere."""
    return textwrap.dedent(f"""
        _base_ = ['mmpretrain::_base_/models/resnet18.py',
                  'mmpretrain::_base_/default_runtime.py']
        model = dict(backbone=dict(stem_channels=8, base_channels=8),
                     head=dict(num_classes=3, in_channels=64, topk=(1, )))
        data_preprocessor = dict(num_classes=3, mean=[123.675, 116.28, 103.53],
                                 std=[58.395, 57.12, 57.375], to_rgb=True)
        pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
        train_dataloader = dict(
            batch_size=4, num_workers=0, sampler=dict(type='InfiniteSampler', shuffle=True),
            dataset=dict(type='CustomDataset', data_root='{data}', data_prefix='train',
                         pipeline=pipeline))
        val_dataloader = dict(
            batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(type='CustomDataset', data_root='{data}', data_prefix='val',
                         pipeline=pipeline))
        test_dataloader = val_dataloader
        val_evaluator = dict(type='Accuracy', topk=(1, ))
        test_evaluator = val_evaluator
        train_cfg = dict(by_epoch=False, max_iters=4, val_interval=4)
        val_cfg = dict()
        test_cfg = dict()
        optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
        default_hooks = dict(logger=dict(type='LoggerHook', interval=1),
                             checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2))
        log_processor = dict(by_epoch=False)
        """)


def cls_distill_config(teacher_ckpt: str) -> str:
    """DKD on the logits of the classifier in ``./cls.py``."""
    return distill_config(
        'cls.py', 'mmkd.ClassificationDistiller', teacher_ckpt,
        distill_losses="dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.5, tau=1.0))")
