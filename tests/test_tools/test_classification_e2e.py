"""End to end, as a user runs it: an existing mmpretrain config gains
distillation with ``custom_imports`` + one wrapper dict (the README's recipe),
trains with ``tools/dist_train.sh`` on 2 gloo processes on a generated image
folder, reports top-1 from mmpretrain's Accuracy, resumes, and its exported
student passes mmpretrain's own ``tools/test.py`` with no missing keys."""
import os.path as osp
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from tests.test_tools.test_detection_e2e import run, scalars

CLASSES = ('red', 'green', 'blue')


def draw_images(root, split: str, per_class: int, seed: int) -> None:
    """32x32 noise images with a bright square in the class's colour channel."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES):
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


def distill_config(teacher_ckpt: str) -> str:
    """The README's recipe, verbatim in shape."""
    return textwrap.dedent(f"""
        _base_ = './cls.py'
        custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
        model = dict(
            _delete_=True,
            type='mmkd.ClassificationDistiller',
            student={{{{_base_.model}}}},
            teacher={{{{_base_.model}}}},
            teacher_ckpt='{teacher_ckpt}',
            distill_losses=dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.5, tau=1.0)))
        """)


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    from mmengine.config import Config

    from mmkd.models.base_distiller import build_model
    root = tmp_path_factory.mktemp('cls_project')
    data = root / 'data'
    draw_images(data, 'train', 4, seed=0)
    draw_images(data, 'val', 2, seed=1)
    (root / 'cls.py').write_text(plain_mmpretrain_config(str(data)))
    teacher = build_model(Config.fromfile(str(root / 'cls.py')).model, 'mmpretrain')
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, root / 'teacher.pth')
    (root / 'distill.py').write_text(distill_config(str(root / 'teacher.pth')))
    return root


def test_dist_train_resume_export_and_mmpretrain_test(project):
    work = project / 'work'
    out = run(['bash', 'tools/dist_train.sh', str(project / 'distill.py'), '2',
               '--work-dir', str(work)])
    assert 'No CUDA: distributed backend nccl -> gloo.' in out
    rows = scalars(work)
    train = [r for r in rows if 'loss_dkd' in r]
    assert train and all(k in train[-1] for k in ('loss_cls', 'dkd_tckd', 'dkd_nckd',
                                                  'kd_agreement'))
    # mmengine logs the total as "loss": the student's cross-entropy + DKD
    assert train[-1]['loss'] == pytest.approx(train[-1]['loss_cls'] + train[-1]['loss_dkd'],
                                              abs=1e-3)
    val = [r for r in rows if 'accuracy/top1' in r]
    assert val and 0.0 <= val[-1]['accuracy/top1'] <= 100.0
    ckpt = torch.load(work / 'iter_4.pth', map_location='cpu', weights_only=False)
    assert not any(k.startswith('teacher.') for k in ckpt['state_dict'])
    assert any(k.startswith('student.') for k in ckpt['state_dict'])

    # resume from iter 4 and go on to 6
    out = run([sys.executable, 'tools/train.py', str(project / 'distill.py'), '--work-dir',
               str(work), '--resume', '--cfg-options', 'train_cfg.max_iters=6'])
    assert 'resumed epoch: 0, iter: 4' in out
    resumed = torch.load(work / 'iter_6.pth', map_location='cpu', weights_only=False)
    assert resumed['meta']['iter'] == 6

    # mmkd's test tool evaluates the distiller checkpoint's student
    out = run([sys.executable, 'tools/test.py', str(project / 'distill.py'),
               str(work / 'iter_6.pth'), '--work-dir', str(project / 'mmkd_test')])
    assert 'accuracy/top1' in out

    # export the student; mmpretrain's own test script evaluates it
    run([sys.executable, 'tools/export_student.py', str(project / 'distill.py'),
         str(work / 'iter_6.pth'), str(project / 'student.pth')])
    exported = torch.load(project / 'student.pth', map_location='cpu', weights_only=False)
    assert set(exported['state_dict']) == {k[len('student.'):] for k in resumed['state_dict']
                                          if k.startswith('student.')}
    assert 'mmkd' not in (project / 'student.py').read_text()
    import mmpretrain
    host_test = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools', 'test.py')
    out = run([sys.executable, host_test, str(project / 'student.py'), str(project / 'student.pth'),
               '--work-dir', str(project / 'host_test')])
    assert 'accuracy/top1' in out
    assert 'missing keys' not in out and 'unexpected key' not in out
