import copy

import pytest
import torch

from mmkd.models.detection_distiller import build_detector
from mmkd.registry import MODELS
from tests.helpers.det import det_batch, mmdet_model, tiny_faster_rcnn

LOSSES = dict(
    loss_kd=dict(type='mmkd.KDLoss', tau=1.0),
    loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.25, tau=1.0),
    loss_dist=dict(type='mmkd.DISTLoss'))
REVIEWKD = dict(
    connector=dict(type='mmkd.ABFConnector', in_channels=[32] * 5, out_channels=[32] * 5,
                   mid_channels=16),
    loss=dict(type='mmkd.HCLLoss', loss_weight=1.2))


def build(teacher_depth=18, reviewkd=None, **kwargs):
    cfg = dict(type='mmkd.DetectionDistiller', student=tiny_faster_rcnn(18),
               teacher=tiny_faster_rcnn(teacher_depth), teacher_ckpt=None,
               distill_losses=copy.deepcopy(LOSSES), reviewkd=reviewkd)
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def copy_student_into_teacher(model):
    model.teacher.load_state_dict(model.student.state_dict())


def test_identical_teacher_gives_zero_logit_losses_and_perturbed_does_not():
    """Teacher == student scores the same RoIs identically only if rows align."""
    model = build()
    copy_student_into_teacher(model)
    model.train()
    model.student.eval()  # same BN behaviour as the (eval-mode) teacher
    inputs, samples = det_batch(model)
    seen = {}
    orig = model.distill
    model.distill = lambda s, t, target: seen.update(t=t) or orig(s, t, target)
    losses = model.loss(inputs, samples)
    for key in ('loss_kd', 'loss_dkd'):
        assert abs(losses[key].item()) < 1e-6, (key, losses[key])
    # DIST of identical logits is exactly its eps term (1e-8 in the norm
    # product): 1 - r = eps / (|y - mean y|^2 + eps), per row and per class.
    p = torch.softmax(seen['t'].double(), 1)
    rows = ((p - p.mean(1, keepdim=True))**2).sum(1)
    cols = ((p - p.mean(0, keepdim=True))**2).sum(0)
    expected = (1e-8 / (rows + 1e-8)).mean() + (1e-8 / (cols + 1e-8)).mean()
    assert losses['loss_dist'].item() == pytest.approx(expected.item(), rel=1e-3, abs=1e-7)
    assert losses['kd_agreement'].item() == 1.0
    with torch.no_grad():
        for p in model.teacher.roi_head.bbox_head.fc_cls.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    losses = model.loss(inputs, samples)
    for key in ('loss_kd', 'loss_dkd', 'loss_dist'):
        assert losses[key].item() > 0.1, (key, losses[key])


def test_student_losses_kept_and_decomposed_terms_logged_without_loss_in_name():
    model = build()
    inputs, samples = det_batch(model)
    losses = model.loss(inputs, samples)
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'acc'):
        assert key in losses
    for key in ('dkd_tckd', 'dkd_nckd', 'dist_inter', 'dist_intra', 'kd_agreement'):
        assert key in losses and not losses[key].requires_grad


def test_rows_are_the_students_sampled_rois():
    model = build()
    inputs, samples = det_batch(model, batch_size=2)
    seen = {}
    orig = model.distill

    def spy(s, t, target):
        seen.update(s=s, t=t, target=target)
        return orig(s, t, target)

    model.distill = spy
    model.loss(inputs, samples)
    num_rows = 2 * 32  # sampler.num per image
    assert seen['s'].shape == seen['t'].shape == (num_rows, 4)
    assert seen['target'].shape == (num_rows, )
    assert int(seen['target'].max()) == 3  # background label = num_classes
    assert int(seen['target'].min()) >= 0


def test_gradients_reach_only_student_and_connector():
    model = build(reviewkd=REVIEWKD)
    inputs, samples = det_batch(model)
    losses = model.loss(inputs, samples)
    assert 'loss_reviewkd' in losses and losses['loss_reviewkd'].item() > 0
    total, _ = model.parse_losses(losses)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(not p.requires_grad for p in model.teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.connector.parameters())
    assert model.student.neck.lateral_convs[0].conv.weight.grad.abs().sum() > 0
    ids = {id(p) for p in model.parameters()}
    assert not ids & {id(p) for p in model.teacher.parameters()}
    assert ids >= {id(p) for p in model.student.parameters()}


def test_teacher_stays_in_eval_mode_and_out_of_state_dict():
    model = build(reviewkd=REVIEWKD)
    model.train()
    assert model.student.training and not model.teacher.training
    assert not any(m.training for m in model.teacher.modules())
    sd = model.state_dict()
    assert not any(k.startswith('teacher.') for k in sd)
    assert any(k.startswith('student.') for k in sd) and any(k.startswith('connector.') for k in sd)
    fresh = build(reviewkd=REVIEWKD)
    result = fresh.load_state_dict(sd, strict=True)  # teacher keys are not "missing"
    assert not result.missing_keys and not result.unexpected_keys


def test_predict_runs_the_student_only():
    model = build()
    model.eval()
    inputs, samples = det_batch(model)
    calls = []
    model.teacher.register_forward_pre_hook(lambda *a: calls.append(1))
    model.teacher.backbone.register_forward_pre_hook(lambda *a: calls.append(1))
    out = model(inputs, samples, mode='predict')
    assert len(out) == 2 and 'pred_instances' in out[0]
    assert not calls


def test_teacher_checkpoint_loaded_and_mismatches_listed(tmp_path):
    teacher = build_detector(tiny_faster_rcnn(18))
    path = tmp_path / 'teacher.pth'
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, path)
    model = build(teacher_ckpt=str(path))
    for k, v in teacher.state_dict().items():
        torch.testing.assert_close(model.teacher.state_dict()[k], v)
    model.init_weights()  # the runner calls this after building: must keep the teacher
    for k, v in teacher.state_dict().items():
        torch.testing.assert_close(model.teacher.state_dict()[k], v)

    sd = teacher.state_dict()
    sd.pop('roi_head.bbox_head.fc_cls.weight')
    sd['extra.weight'] = torch.zeros(1)
    torch.save({'state_dict': sd}, path)
    with pytest.raises(RuntimeError, match=r'missing keys: roi_head.bbox_head.fc_cls.weight'
                       r'(.|\n)*unexpected keys: extra.weight'):
        build(teacher_ckpt=str(path))
    torch.save({'state_dict': teacher.state_dict()}, path)
    with pytest.raises(RuntimeError, match='shape mismatch: neck'):
        build(teacher=tiny_faster_rcnn(18, channels=64), teacher_ckpt=str(path))
    with pytest.raises(FileNotFoundError, match='teacher_ckpt'):
        build(teacher_ckpt=str(tmp_path / 'nope.pth'))


def test_class_count_mismatch_and_unsupported_models_raise():
    with pytest.raises(ValueError, match='num_classes=3.*5'):
        build(teacher=tiny_faster_rcnn(18, num_classes=5))
    retina = mmdet_model('retinanet/retinanet_r18_fpn_1x_coco.py')
    retina.backbone.init_cfg = None
    with pytest.raises(TypeError, match='supported are two-stage'):
        build(student=retina)
    cascade = mmdet_model('cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py')
    cascade.backbone.update(depth=18, init_cfg=None)
    cascade.neck.in_channels = [64, 128, 256, 512]
    with pytest.raises(TypeError, match='CascadeRoIHead'):  # as a student; teachers: see
        build(student=cascade, teacher=cascade)             # test_cascade_teacher.py
    with pytest.raises(ValueError, match='must contain "loss"'):
        build(distill_losses=dict(dkd=dict(type='mmkd.DKDLoss')))
    with pytest.raises(ValueError, match='tau'):
        build(distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss', tau=0)))


def test_a_bf16_teacher_scores_the_rois_in_float32():
    """mmcv's RoIAlign has no bf16 kernel: the teacher's backbone and neck run
    in bf16, its box head on the student's RoIs in float32; the losses stay
    within 2% of an fp32 teacher's."""
    from tests.helpers.det import det_batch, tiny_faster_rcnn
    from mmkd.models import DetectionDistiller
    losses = {}
    for precision in ('fp32', 'bf16'):
        torch.manual_seed(0)
        model = DetectionDistiller(tiny_faster_rcnn(), tiny_faster_rcnn(),
                                   distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss', tau=4.0)),
                                   teacher_precision=precision)
        inputs, samples = det_batch(model)
        torch.manual_seed(1)  # the same RPN proposals and sampled RoIs
        losses[precision] = float(model.loss(inputs, samples)['loss_kd'].detach())
    assert losses['bf16'] == pytest.approx(losses['fp32'], rel=0.02)
