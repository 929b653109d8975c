"""bench/teacher_precision.py on randomly initialised teachers and a few
generated images (the demo's trained teachers are not needed): the fp32 and
bf16 runs are paired (fp32 against fp32 differs in nothing, the detection
RoIs included), bf16 really changes the teacher, and the rows counted are
the ones the losses see."""
import importlib.util
import math
import os.path as osp

import pytest
import torch

HERE = osp.dirname(osp.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    'bench_teacher_precision', osp.join(HERE, '..', '..', 'bench', 'teacher_precision.py'))
tp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tp)

#: (train, val) sizes of each task's generated data: scenes (det, seg) or
#: images per class (cls); batches come from the demo's own train dataloader.
SMALL = dict(det=(8, 1), seg=(8, 1), cls=(1, 1))


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def measure(task, tmp_path, precisions, methods=('kd', )):
    num_train, num_val = SMALL[task]
    return tp.measure_task(task, list(methods), batches=1, precisions=precisions,
                           teacher_ckpt=None, data_dir=str(tmp_path / task),
                           num_train=num_train, num_val=num_val)


def test_det_fp32_twice_is_identical(tmp_path):
    """The seeding makes the student's RPN and sampler draw the same RoIs,
    so two fp32 runs agree exactly: any bf16 difference is the teacher's."""
    result = measure('det', tmp_path, ('fp32', 'fp32'))
    assert result['teacher_ckpt'] is None
    kd = result['methods']['kd']
    assert kd['same_rois'] is True
    assert kd['losses']['loss_kd']['rel_diff'] == 0.0
    assert kd['agreement'] == 1.0 and kd['max_abs_logit_diff'] == 0.0
    # the box sampler's RoIs: 64 per image (the demo's rcnn sampler), 8 images
    assert kd['rows'] == 8 * 64


def test_cls_bf16_changes_the_teacher_only_slightly(tmp_path):
    result = measure('cls', tmp_path, ('fp32', 'bf16'), methods=('dkd', ))
    assert result['precisions'] == ['fp32', 'bf16']
    res = result['methods']['dkd']
    loss = res['losses']['loss_dkd']
    assert math.isfinite(loss['fp32']) and math.isfinite(loss['bf16'])
    assert loss['rel_diff'] == pytest.approx(abs(loss['bf16'] - loss['fp32']) / abs(loss['fp32']))
    assert res['rows'] == 32  # one batch of the demo's train dataloader: images
    assert 0 < res['max_abs_logit_diff'] < 0.1  # bf16 is on, and close
    assert 0.0 <= res['agreement'] <= 1.0


def test_seg_rows_are_the_student_head_pixels(tmp_path):
    result = measure('seg', tmp_path, ('fp32', 'bf16'))
    kd = result['methods']['kd']
    assert set(kd['losses']) == {'loss_kd', 'loss_kd_aux'}
    # 8 images of 128 px; the heads' logits are at 1/8 resolution (16 x 16);
    # the scenes label no pixel with ignore_index
    assert kd['rows'] == kd['rows_aux'] == 8 * 16 * 16
    assert 0 < kd['max_abs_logit_diff'] < 0.1
    table = tp.format_table(dict(tasks=dict(seg=result)))
    assert 'loss_kd_aux' in table and str(kd['rows']) in table
