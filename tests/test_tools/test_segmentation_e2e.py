"""End to end, as a user runs it: an existing mmseg config gains distillation
with ``custom_imports`` + one wrapper dict (the README's recipe), trains for a
few iterations with ``tools/dist_train.sh`` on 2 gloo processes, reports mIoU
from mmseg's IoUMetric, resumes, is evaluated by ``tools/test.py``, and its
exported student passes mmseg's own ``tools/test.py`` with no missing keys."""
import os.path as osp
import sys
import textwrap

import pytest
import torch

from .test_detection_e2e import run, scalars

CLASSES = ('background', 'circle', 'square', 'triangle', 'star', 'cross', 'ring')


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
        metainfo = dict(classes={CLASSES!r})
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


def distill_config(teacher_ckpt: str) -> str:
    """The README's recipe, verbatim in shape."""
    return textwrap.dedent(f"""
        _base_ = './seg.py'
        custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
        model = dict(
            _delete_=True,
            type='mmkd.SegmentationDistiller',
            student={{{{_base_.model}}}},
            teacher={{{{_base_.model}}}},
            teacher_ckpt='{teacher_ckpt}',
            distill_losses=dict(loss_dist=dict(type='mmkd.DISTLoss', beta=1.0, gamma=1.0, tau=1.0)),
            aux_distill_losses=dict(loss_dist_aux=dict(type='mmkd.DISTLoss', loss_weight=0.4)))
        """)


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    from mmengine.config import Config

    from mmkd.demo.shapes import generate_shapes
    from mmkd.models.base_distiller import build_model
    root = tmp_path_factory.mktemp('seg_project')
    data = root / 'data'
    generate_shapes(data, num_train=8, num_val=4, image_size=64, seed=0)
    (root / 'seg.py').write_text(plain_mmseg_config(str(data)))
    teacher = build_model(Config.fromfile(str(root / 'seg.py')).model, 'mmseg')
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, root / 'teacher.pth')
    (root / 'distill.py').write_text(distill_config(str(root / 'teacher.pth')))
    return root


def test_dist_train_resume_test_export_and_mmseg_test(project):
    work = project / 'work'
    out = run(['bash', 'tools/dist_train.sh', str(project / 'distill.py'), '2',
               '--work-dir', str(work)])
    assert 'No CUDA: distributed backend nccl -> gloo.' in out
    rows = scalars(work)
    train = [r for r in rows if 'loss_dist' in r]
    assert len(train) == 4
    for key in ('decode.loss_ce', 'aux.loss_ce', 'loss_dist_aux', 'dist_inter', 'dist_intra',
                'dist_aux_inter', 'kd_agreement', 'aux_kd_agreement'):
        assert key in train[-1], key
    val = [r for r in rows if 'mIoU' in r]
    assert val and 0.0 <= val[-1]['mIoU'] <= 100.0
    ckpt = torch.load(work / 'iter_4.pth', map_location='cpu', weights_only=False)
    assert not any(k.startswith('teacher.') for k in ckpt['state_dict'])

    out = run([sys.executable, 'tools/train.py', str(project / 'distill.py'), '--work-dir',
               str(work), '--resume', '--cfg-options', 'train_cfg.max_iters=6'])
    assert 'resumed epoch: 0, iter: 4' in out
    resumed = torch.load(work / 'iter_6.pth', map_location='cpu', weights_only=False)
    assert resumed['meta']['iter'] == 6

    # mmkd's test tool evaluates the student of the distiller checkpoint
    out = run([sys.executable, 'tools/test.py', str(project / 'distill.py'),
               str(work / 'iter_6.pth'), '--work-dir', str(project / 'mmkd_test')])
    assert 'mIoU' in out

    # export the student; mmseg's own test script evaluates it
    run([sys.executable, 'tools/export_student.py', str(project / 'distill.py'),
         str(work / 'iter_6.pth'), str(project / 'student.pth')])
    exported = torch.load(project / 'student.pth', map_location='cpu', weights_only=False)
    assert set(exported['state_dict']) == {k[len('student.'):] for k in resumed['state_dict']
                                          if k.startswith('student.')}
    assert 'mmkd' not in (project / 'student.py').read_text()
    import mmseg
    mmseg_test = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', 'test.py')
    out = run([sys.executable, mmseg_test, str(project / 'student.py'),
               str(project / 'student.pth'), '--work-dir', str(project / 'mmseg_test')])
    assert 'mIoU' in out
    assert 'missing keys' not in out and 'unexpected key' not in out
