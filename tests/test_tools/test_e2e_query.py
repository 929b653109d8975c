"""End to end for ``mmkd.QueryDistiller`` (issue #19), as a user runs it:
a plain mmdet DINO config, the README's recipe around it with the teacher
given as a config file (as the shipped ``configs/kd/dino_swin-l_r50_coco.py``
does), 2 CPU iterations with ``tools/train.py``, ``tools/export_student.py``,
then mmdet's own ``tools/test.py`` on the exported student (COCO bbox mAP,
no missing or unexpected keys) and mmkd's ``tools/test.py`` on the same
files."""
import os.path as osp
import sys
import textwrap

import mmdet
import torch
from mmengine.config import Config

from mmkd.demo.shapes import generate_shapes
from mmkd.models import build_model
from tests.helpers.detr import tiny_detr
from tests.helpers.projects import (DET_CLASSES, distill_config, plain_mmdet_config, run,
                                    scalars)

MISMATCH = ('missing keys', 'unexpected key')  # mmengine's load_state_dict report


def plain_dino_config() -> str:
    """A user's DINO config: the det project's data and runtime (``./det.py``)
    with its model replaced by a tiny DINO for the shapes' classes."""
    model = tiny_detr('dino')
    model['bbox_head']['num_classes'] = len(DET_CLASSES)
    return textwrap.dedent(f"""
        _base_ = './det.py'
        model = dict(_delete_=True, **{model!r})
        """)


TEACHER = """
_base_ = './dino.py'
model = dict(num_queries=30, test_cfg=dict(max_per_img=30))
"""


def test_dino_student_trains_exports_and_passes_mmdet_test(tmp_path):
    """2 distilled steps, export, then both test scripts on the exported files."""
    root = tmp_path
    generate_shapes(root / 'data', num_train=4, num_val=2, image_size=96, seed=0)
    (root / 'det.py').write_text(plain_mmdet_config(str(root / 'data')))
    (root / 'dino.py').write_text(plain_dino_config())
    (root / 'teacher_dino.py').write_text(TEACHER)  # a DINO with more queries
    plain = build_model(Config.fromfile(str(root / 'dino.py')).model, 'mmdet')
    teacher = build_model(Config.fromfile(str(root / 'teacher_dino.py')).model, 'mmdet')
    assert type(plain).__name__ == type(teacher).__name__ == 'DINO'
    assert teacher.num_queries == 30 and plain.num_queries == 20
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, root / 'teacher.pth')
    recipe = distill_config(
        'dino.py', 'mmkd.QueryDistiller', str(root / 'teacher.pth'),
        distill_losses="dict(loss_kd=dict(type='mmkd.KDLoss', use_sigmoid=True))")
    # The teacher as a config file, as the shipped DINO configs give it. With the recipe's
    # teacher={{_base_.model}}, student and teacher are one ConfigDict, which mmdet's DINO
    # updates while the student builds (bbox_head.as_two_stage, ...), and the teacher's
    # build then fails in tools/train.py (a bug in mmkd, outside this test).
    assert 'teacher={{_base_.model}}' in recipe
    (root / 'distill.py').write_text(
        recipe.replace('teacher={{_base_.model}}', f"teacher='{root / 'teacher_dino.py'}'"))

    work = root / 'work'
    run([sys.executable, 'tools/train.py', str(root / 'distill.py'), '--work-dir', str(work),
         '--cfg-options', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2'])
    ckpt = torch.load(work / 'iter_2.pth', map_location='cpu', weights_only=False)
    student = {k[len('student.'):]: v for k, v in ckpt['state_dict'].items()
               if k.startswith('student.')}
    assert student and not any(k.startswith('teacher.') for k in ckpt['state_dict'])
    train = [row for row in scalars(work) if 'loss_kd' in row]  # every step distilled
    assert [row['iter'] for row in train] == [1, 2]
    assert all(row['loss_kd'] >= 0 and 'loss_cls' in row for row in train)

    out = run([sys.executable, 'tools/export_student.py', str(root / 'distill.py'),
               str(work / 'iter_2.pth'), str(root / 'student.pth')])
    assert f'student: {len(student)} tensors' in out
    exported = torch.load(root / 'student.pth', map_location='cpu', weights_only=False)
    assert set(exported['state_dict']) == set(plain.state_dict())
    for key, value in student.items():
        assert torch.equal(exported['state_dict'][key], value), key
    student_cfg = (root / 'student.py').read_text()
    assert 'mmkd' not in student_cfg and "type='DINO'" in student_cfg

    host_test = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'test.py')
    for script, name in ((host_test, 'mmdet_test'), ('tools/test.py', 'mmkd_test')):
        out = run([sys.executable, script, str(root / 'student.py'), str(root / 'student.pth'),
                   '--work-dir', str(root / name)])
        assert f'Load checkpoint from {root / "student.pth"}' in out, name
        assert 'coco/bbox_mAP:' in out, name
        assert not any(word in out for word in MISMATCH), (name, out[-3000:])
