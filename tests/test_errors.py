"""Every misuse listed in docs/errors.md raises the documented error (one
test per row), and every row of the document has its test here."""
import copy
import os.path as osp
import re

import pytest
import torch

from mmkd.registry import MODELS
from tests.helpers.det import det_batch, mmdet_model, tiny, tiny_faster_rcnn
from tests.helpers.detr import query_distiller

DOC = osp.join(osp.dirname(__file__), '..', 'docs', 'errors.md')
DKD = dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.25, tau=1.0))


def det(**kwargs):
    cfg = dict(type='mmkd.DetectionDistiller', student=tiny_faster_rcnn(18),
               teacher=tiny_faster_rcnn(18), teacher_ckpt=None, distill_losses=copy.deepcopy(DKD))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def saved_teacher(tmp_path, state_dict=None, **extra):
    from mmkd.models import build_model
    if state_dict is None:
        state_dict = build_model(tiny_faster_rcnn(18), 'mmdet').state_dict()
    path = str(tmp_path / 'teacher.pth')
    torch.save(dict(state_dict=state_dict, **extra), path)
    return path


def row_missing_teacher_ckpt(tmp_path):
    det(teacher_ckpt=str(tmp_path / 'nope.pth'))


def row_distiller_ckpt_as_teacher(tmp_path):
    sd = {f'student.{k}': v for k, v in det().state_dict().items()}
    det(teacher_ckpt=saved_teacher(tmp_path, sd))


def row_missing_unexpected_keys(tmp_path):
    from mmkd.models import build_model
    sd = build_model(tiny_faster_rcnn(18), 'mmdet').state_dict()
    sd.pop('roi_head.bbox_head.fc_cls.weight')
    sd['extra.weight'] = torch.zeros(1)
    det(teacher_ckpt=saved_teacher(tmp_path, sd))


def row_shape_mismatch(tmp_path):
    det(teacher=tiny_faster_rcnn(18, channels=64), teacher_ckpt=saved_teacher(tmp_path))


def row_class_count(tmp_path):
    det(teacher=tiny_faster_rcnn(18, num_classes=5))


def row_normalisation(tmp_path):
    teacher = tiny_faster_rcnn(18)
    teacher['data_preprocessor'].update(mean=[103.53, 116.28, 123.675], std=[1.0, 1.0, 1.0],
                                        bgr_to_rgb=False)
    det(teacher=teacher)


def row_unsupported_model(tmp_path):
    retina = mmdet_model('retinanet/retinanet_r18_fpn_1x_coco.py')
    retina.backbone.init_cfg = None
    det(student=retina)


def row_tau(tmp_path):
    det(distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss', tau=0)))


def row_negative_weight(tmp_path):
    det(distill_losses=dict(loss_dist=dict(type='mmkd.DISTLoss', beta=-1.0)))


def row_target_out_of_range(tmp_path):
    loss = MODELS.build(dict(type='mmkd.DKDLoss'))
    loss(torch.randn(4, 5), torch.randn(4, 5), torch.tensor([0, 1, 7, 2]))


def row_logit_shape(tmp_path):
    loss = MODELS.build(dict(type='mmkd.KDLoss'))
    loss(torch.randn(4, 5), torch.randn(4, 6))


def row_dkd_without_target(tmp_path):
    MODELS.build(dict(type='mmkd.DKDLoss'))(torch.randn(4, 5), torch.randn(4, 5))


def row_non_finite_teacher(tmp_path):
    model = det()
    model.init_weights()
    with torch.no_grad():
        model.teacher.roi_head.bbox_head.fc_cls.bias.fill_(float('nan'))
    model.loss(*det_batch(model))


def row_teacher_fp16_overflow(tmp_path):
    model = det(teacher_precision='fp16')
    model.init_weights()
    with torch.no_grad():  # FPN features beyond fp16's 65504 (the box head runs in fp32)
        for conv in model.teacher.neck.fpn_convs:
            conv.conv.bias.fill_(1e6)
    model.loss(*det_batch(model))


def row_teacher_precision(tmp_path):
    det(teacher_precision='int8')


def row_key_without_loss(tmp_path):
    det(distill_losses=dict(dkd=dict(type='mmkd.DKDLoss')))


def row_key_clash(tmp_path):
    model = det(distill_losses=dict(loss_cls=dict(type='mmkd.KDLoss')))
    model.init_weights()
    model.loss(*det_batch(model))


def row_untrusted_checkpoint(tmp_path, monkeypatch=None):
    import os
    os.environ.pop('MMKD_TRUST_CHECKPOINTS', None)
    from tests.helpers.checkpoints import crafted_checkpoint
    det(teacher_ckpt=crafted_checkpoint(tmp_path / 'evil.pth', tmp_path / 'marker'))


def row_amp_on_cpu(tmp_path):
    from mmengine.config import Config
    from mmkd.utils import check_amp, has_amp_device
    if has_amp_device():  # on an accelerator --amp is legitimate: nothing to refuse
        raise SystemExit('--amp (AmpOptimWrapper) needs a CUDA ... (accelerator present)')
    check_amp(Config(dict(optim_wrapper=dict(type='AmpOptimWrapper'))))


def row_teacher_check(tmp_path):
    from mmkd.engine.hooks.teacher_check_hook import TeacherCheckError, TeacherCheckHook
    hook = TeacherCheckHook(num_batches=1, min_score=50.0)
    hook.score = lambda *a: (0.0, 'coco/bbox_mAP')
    runner = _FakeRunner()
    try:
        hook.before_train(runner)
    except TeacherCheckError:
        raise


class _FakeRunner:
    """Just what TeacherCheckHook reads; the scoring itself is tested with a
    real Runner in tests/test_engine/test_teacher_check_hook.py."""

    class _Hub:
        def update_info(self, *a):
            pass

    def __init__(self):
        self.model = det()
        self.val_loop = type('L', (), dict(dataloader=None, evaluator=None))()
        self.message_hub = self._Hub()


#: id -> (trigger, exception type, message pattern)
ROWS = {
    'missing-teacher-ckpt': (row_missing_teacher_ckpt, FileNotFoundError, r'teacher_ckpt .* could not be read'),
    'distiller-ckpt-as-teacher': (row_distiller_ckpt_as_teacher, RuntimeError, r'is a distiller checkpoint'),
    'missing-unexpected-keys': (row_missing_unexpected_keys, RuntimeError,
                                r'missing keys: roi_head.bbox_head.fc_cls.weight(.|\n)*unexpected keys: extra.weight'),
    'shape-mismatch': (row_shape_mismatch, RuntimeError, r'shape mismatch: neck'),
    'class-count': (row_class_count, ValueError, r'num_classes=3, the teacher\'s 5'),
    'normalisation': (row_normalisation, ValueError, r'data_preprocessor differ'),
    'unsupported-model': (row_unsupported_model, TypeError, r'RetinaNet; supported are two-stage'),
    'tau': (row_tau, ValueError, r'tau .* must be > 0, got 0'),
    'negative-weight': (row_negative_weight, ValueError, r'beta must be >= 0'),
    'target-out-of-range': (row_target_out_of_range, ValueError, r'target value 7 is outside \[0, 5\)'),
    'logit-shape': (row_logit_shape, ValueError, r'differ in shape'),
    'dkd-without-target': (row_dkd_without_target, ValueError, r'DKD needs the ground-truth class'),
    'non-finite-teacher': (row_non_finite_teacher, FloatingPointError,
                           r'teacher produced \d+ non-finite logits(.|\n)*iteration .*samples'),
    'teacher-fp16-overflow': (row_teacher_fp16_overflow, FloatingPointError,
                              r'fp16 overflow(.|\n)*teacher_precision=\'bf16\''),
    'teacher-precision': (row_teacher_precision, ValueError, r'teacher_precision must be one of'),
    'key-without-loss': (row_key_without_loss, ValueError, r'must contain "loss"'),
    'key-clash': (row_key_clash, ValueError, r'clash with the student\'s own loss keys'),
    'untrusted-checkpoint': (row_untrusted_checkpoint, RuntimeError, r'builtins\.exec'),
    'amp-on-cpu': (row_amp_on_cpu, SystemExit, r'--amp \(AmpOptimWrapper\) needs a CUDA'),
    'teacher-check': (row_teacher_check, RuntimeError, r'teacher is not the model its config describes'),
    'query-teacher-queries': (lambda tmp_path: query_distiller(teacher=dict(num_queries=10)), ValueError,
                              r'num_queries=10: use a teacher with num_queries >= 20'),
    'query-non-detr-teacher': (lambda tmp_path: query_distiller(teacher=tiny()), TypeError,
                               r'teacher is a RetinaNet; supported are query-based detectors'),
    'query-unsupported-family': (lambda tmp_path: query_distiller('detr'), TypeError,
                                 r'one learned, image-independent query set(.|\n)*supported are'),
    'query-dkd': (lambda tmp_path: query_distiller(distill_losses=copy.deepcopy(DKD)), ValueError,
                  r'DKD is not defined for query-based heads'),
}


@pytest.mark.parametrize('row', sorted(ROWS))
def test_catalogue_row_raises_the_documented_error(row, tmp_path):
    trigger, error, pattern = ROWS[row]
    with pytest.raises(error, match=pattern):
        trigger(tmp_path)


def test_every_documented_row_is_tested():
    ids = re.findall(r'^\| `([a-z0-9-]+)` \|', open(DOC).read(), flags=re.M)
    assert len(ids) >= 15
    assert sorted(ids) == sorted(set(ids)), 'duplicate row ids in docs/errors.md'
    assert set(ids) == set(ROWS), (set(ids) ^ set(ROWS))


def test_empty_rois_and_all_ignored_pixels_give_a_zero_in_the_graph():
    """Not errors: documented as rows without an exception."""
    for loss_cfg in DKD.values():
        loss = MODELS.build(loss_cfg)
        s = torch.randn(0, 5, requires_grad=True)
        out = loss(s, torch.randn(0, 5), torch.zeros(0, dtype=torch.long))
        assert out.item() == 0 and out.requires_grad
        s = torch.randn(2, 5, 3, 3, requires_grad=True)
        out = loss(s, torch.randn(2, 5, 3, 3), torch.full((2, 3, 3), 255))
        assert out.item() == 0 and out.requires_grad
        out.backward()
        assert torch.equal(s.grad, torch.zeros_like(s))
