"""End to end, as a user runs it: an existing mmdet config gains distillation
with ``custom_imports`` + one wrapper dict (the README's recipe), trains with
``tools/dist_train.sh`` on 2 gloo processes, reports COCO bbox mAP from
mmdet's CocoMetric, resumes, and its exported student passes mmdet's own
``tools/test.py`` with no missing keys."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CLASSES = ('circle', 'square', 'triangle', 'star', 'cross', 'ring')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run(cmd, **kwargs):
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()),
               OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
                          **kwargs)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    return out


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
        metainfo = dict(classes={CLASSES!r})
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


def distill_config(teacher_ckpt: str) -> str:
    """The README's recipe, verbatim in shape."""
    return textwrap.dedent(f"""
        _base_ = './det.py'
        custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
        model = dict(
            _delete_=True,
            type='mmkd.DetectionDistiller',
            student={{{{_base_.model}}}},
            teacher={{{{_base_.model}}}},
            teacher_ckpt='{teacher_ckpt}',
            distill_losses=dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.25, tau=1.0)))
        """)


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    from mmengine.config import Config

    from mmkd.demo.shapes import generate_shapes
    from mmkd.models.detection_distiller import build_detector
    root = tmp_path_factory.mktemp('project')
    data = root / 'data'
    generate_shapes(data, num_train=8, num_val=4, image_size=96, seed=0)
    (root / 'det.py').write_text(plain_mmdet_config(str(data)))
    teacher = build_detector(Config.fromfile(str(root / 'det.py')).model)
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, root / 'teacher.pth')
    (root / 'distill.py').write_text(distill_config(str(root / 'teacher.pth')))
    return root


def scalars(work_dir):
    rows = []
    for dirpath, _, files in os.walk(work_dir):
        for f in files:
            if f == 'scalars.json':
                with open(osp.join(dirpath, f)) as fh:
                    rows += [json.loads(line) for line in fh]
    return rows


def test_dist_train_resume_export_and_mmdet_test(project):
    work = project / 'work'
    out = run(['bash', 'tools/dist_train.sh', str(project / 'distill.py'), '2',
               '--work-dir', str(work)])
    assert 'No CUDA: distributed backend nccl -> gloo.' in out
    rows = scalars(work)
    train = [r for r in rows if 'loss_dkd' in r]
    assert train and all(k in train[-1] for k in ('loss_rpn_cls', 'loss_cls', 'dkd_tckd',
                                                  'dkd_nckd', 'kd_agreement'))
    val = [r for r in rows if 'coco/bbox_mAP' in r]
    assert val and 0.0 <= val[-1]['coco/bbox_mAP'] <= 1.0
    ckpt = torch.load(work / 'iter_4.pth', map_location='cpu', weights_only=False)
    keys = ckpt['state_dict'].keys()
    assert not any(k.startswith('teacher.') for k in keys)
    assert any(k.startswith('student.') for k in keys)

    # resume from iter 4 and go on to 6 with the same weights
    out = run([sys.executable, 'tools/train.py', str(project / 'distill.py'), '--work-dir',
               str(work), '--resume', '--cfg-options', 'train_cfg.max_iters=6'])
    assert 'resumed epoch: 0, iter: 4' in out
    resumed = torch.load(work / 'iter_6.pth', map_location='cpu', weights_only=False)
    assert resumed['meta']['iter'] == 6

    # export the student; mmdet's own test script evaluates it
    out = run([sys.executable, 'tools/export_student.py', str(project / 'distill.py'),
               str(work / 'iter_6.pth'), str(project / 'student.pth')])
    exported = torch.load(project / 'student.pth', map_location='cpu', weights_only=False)
    assert set(exported['state_dict']) == {k[len('student.'):] for k in resumed['state_dict']
                                          if k.startswith('student.')}
    student_cfg = (project / 'student.py').read_text()
    assert 'mmkd' not in student_cfg
    import mmdet
    mmdet_test = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'test.py')
    out = run([sys.executable, mmdet_test, str(project / 'student.py'), str(project / 'student.pth'),
               '--work-dir', str(project / 'mmdet_test')])
    assert 'coco/bbox_mAP' in out
    assert 'missing keys' not in out and 'unexpected key' not in out
