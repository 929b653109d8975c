"""End to end, as a user runs it, for each host library: an existing mmdet,
mmseg or mmpretrain config gains distillation with ``custom_imports`` + one
wrapper dict (the README's recipe), trains with ``tools/dist_train.sh`` on 2
gloo processes, reports the host's metric (COCO bbox mAP from mmdet's
CocoMetric, mIoU from mmseg's IoUMetric, top-1 from mmpretrain's Accuracy),
resumes with ``--resume``, is evaluated by mmkd's ``tools/test.py``, and its
exported student passes the host's own ``tools/test.py`` with no missing
keys."""
import os.path as osp
import sys
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Callable, Tuple

import pytest
import torch
from mmengine.config import Config

from mmkd.demo.shapes import generate_shapes
from mmkd.models import build_model
from tests.helpers.projects import (cls_distill_config, det_distill_config, draw_images,
                                    plain_mmdet_config, plain_mmpretrain_config,
                                    plain_mmseg_config, run, scalars, seg_distill_config)


@dataclass(frozen=True)
class Task:
    """One host library's project and what its run must show.

    Attributes:
        host: The host package: the scope its models build in, and the
            package whose own ``tools/test.py`` evaluates the student.
        config: The file name of the user's plain config.
        plain_config: The user's config text, given the data root.
        distill_config: The README's recipe on top of it, given the teacher.
        write_data: Writes the tiny data set under the given folder.
        loss: The distillation loss key: it marks the training rows.
        train_keys: More keys every training row logs.
        metric: The host metric's key, in the logs and in the test tools' output.
        metric_max: The metric's upper bound (1 for mAP, 100 for percentages).
        loss_terms: When set, mmengine's logged total ``loss`` is their sum.
    """

    host: str
    config: str
    plain_config: Callable[[str], str]
    distill_config: Callable[[str], str]
    write_data: Callable[[Path], None]
    loss: str
    train_keys: Tuple[str, ...]
    metric: str
    metric_max: float
    loss_terms: Tuple[str, ...] = ()


def shapes_scenes(image_size: int) -> Callable[[Path], None]:
    """mmkd's shapes generator (COCO boxes and semantic maps), 8 + 4 images."""
    return lambda data: generate_shapes(data, num_train=8, num_val=4, image_size=image_size,
                                        seed=0)


def colour_squares(data: Path) -> None:
    """An image folder, 4 train and 2 val images per class."""
    draw_images(data, 'train', 4, seed=0)
    draw_images(data, 'val', 2, seed=1)


TASKS = {
    'det': Task('mmdet', 'det.py', plain_mmdet_config, det_distill_config, shapes_scenes(96),
                loss='loss_dkd',
                train_keys=('loss_rpn_cls', 'loss_cls', 'dkd_tckd', 'dkd_nckd', 'kd_agreement'),
                metric='coco/bbox_mAP', metric_max=1.0),
    'seg': Task('mmseg', 'seg.py', plain_mmseg_config, seg_distill_config, shapes_scenes(64),
                loss='loss_dist',
                train_keys=('decode.loss_ce', 'aux.loss_ce', 'loss_dist_aux', 'dist_inter',
                            'dist_intra', 'dist_aux_inter', 'kd_agreement', 'aux_kd_agreement'),
                metric='mIoU', metric_max=100.0),
    # mmengine logs the total as "loss": the student's cross-entropy + DKD
    'cls': Task('mmpretrain', 'cls.py', plain_mmpretrain_config, cls_distill_config,
                colour_squares, loss='loss_dkd',
                train_keys=('loss_cls', 'dkd_tckd', 'dkd_nckd', 'kd_agreement'),
                metric='accuracy/top1', metric_max=100.0, loss_terms=('loss_cls', 'loss_dkd')),
}


@pytest.fixture(scope='module', params=list(TASKS))
def project(request, tmp_path_factory):
    """The user's project folder (data, plain config, random teacher,
    distillation config) and its task."""
    task = TASKS[request.param]
    root = tmp_path_factory.mktemp(f'{request.param}_project')
    task.write_data(root / 'data')
    (root / task.config).write_text(task.plain_config(str(root / 'data')))
    teacher = build_model(Config.fromfile(str(root / task.config)).model, task.host)
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, root / 'teacher.pth')
    (root / 'distill.py').write_text(task.distill_config(str(root / 'teacher.pth')))
    return root, task


def check_dist_train(root: Path, work: Path, task: Task) -> None:
    """4 iterations on 2 gloo processes: every row logs the distillation
    terms, the val metric is in range, checkpoints hold the student only."""
    out = run(['bash', 'tools/dist_train.sh', str(root / 'distill.py'), '2',
               '--work-dir', str(work)])
    assert 'No CUDA: distributed backend nccl -> gloo.' in out
    rows = scalars(work)
    train = [r for r in rows if task.loss in r]
    assert len(train) == 4
    for key in task.train_keys:
        assert key in train[-1], key
    if task.loss_terms:
        assert train[-1]['loss'] == pytest.approx(
            sum(train[-1][key] for key in task.loss_terms), abs=1e-3)
    val = [r for r in rows if task.metric in r]
    assert val and 0.0 <= val[-1][task.metric] <= task.metric_max
    keys = torch.load(work / 'iter_4.pth', map_location='cpu', weights_only=False)['state_dict']
    assert not any(k.startswith('teacher.') for k in keys)
    assert any(k.startswith('student.') for k in keys)
    assert says_teacher_loaded(work, root) == [True]


def says_teacher_loaded(work: Path, root: Path) -> list:
    """Per run log file (one per run, in its timestamp folder): whether the
    log a user reads says where the teacher was loaded from."""
    return [f'loaded from {root / "teacher.pth"}' in log.read_text()
            for log in sorted(work.glob('*/*.log'))]


def check_resume(root: Path, work: Path) -> dict:
    """Resume from iteration 4 and go on to 6; return the last checkpoint."""
    out = run([sys.executable, 'tools/train.py', str(root / 'distill.py'), '--work-dir',
               str(work), '--resume', '--cfg-options', 'train_cfg.max_iters=6'])
    assert 'resumed epoch: 0, iter: 4' in out
    resumed = torch.load(work / 'iter_6.pth', map_location='cpu', weights_only=False)
    assert resumed['meta']['iter'] == 6
    assert says_teacher_loaded(work, root) == [True, True]  # the resumed run's log too
    return resumed


def check_export_and_host_test(root: Path, work: Path, task: Task, resumed: dict) -> None:
    """The exported student is the checkpoint's student; its config has no
    mmkd, and the host's own test script loads it without key mismatches."""
    run([sys.executable, 'tools/export_student.py', str(root / 'distill.py'),
         str(work / 'iter_6.pth'), str(root / 'student.pth')])
    exported = torch.load(root / 'student.pth', map_location='cpu', weights_only=False)
    assert set(exported['state_dict']) == {k[len('student.'):] for k in resumed['state_dict']
                                          if k.startswith('student.')}
    assert 'mmkd' not in (root / 'student.py').read_text()
    host = import_module(task.host)
    host_test = osp.join(osp.dirname(host.__file__), '.mim', 'tools', 'test.py')
    out = run([sys.executable, host_test, str(root / 'student.py'), str(root / 'student.pth'),
               '--work-dir', str(root / 'host_test')])
    assert task.metric in out
    assert 'missing keys' not in out and 'unexpected key' not in out


def test_dist_train_resume_test_export_and_host_test(project):
    root, task = project
    work = root / 'work'
    check_dist_train(root, work, task)
    resumed = check_resume(root, work)
    # mmkd's test tool evaluates the distiller checkpoint's student
    out = run([sys.executable, 'tools/test.py', str(root / 'distill.py'),
               str(work / 'iter_6.pth'), '--work-dir', str(root / 'mmkd_test')])
    assert task.metric in out
    check_export_and_host_test(root, work, task, resumed)
