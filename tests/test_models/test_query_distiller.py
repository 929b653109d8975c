"""QueryDistiller: DINO, two-stage Deformable DETR and DAB-DETR, the teacher
decoding the student's matching-query reference boxes."""
import copy
import functools

import pytest
import torch
from mmengine.config import ConfigDict

from mmkd.models import build_model
from mmkd.models.capture import CallRecorder
from mmkd.registry import MODELS
from tests.helpers.det import det_batch, tiny
from tests.helpers.detr import tiny_detr

LOSSES = dict(loss_kd=dict(type='mmkd.KDLoss', use_sigmoid=True),
              loss_dist=dict(type='mmkd.DISTLoss', use_sigmoid=True))


@functools.lru_cache()
def _detector(family: str, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    model = build_model(tiny_detr(family, **kwargs), 'mmdet')
    model.init_weights()
    # Random-init class branches give nearly constant sigmoid rows, whose
    # Pearson distance (DIST) is all eps; spread the logits.
    with torch.no_grad():
        head = model.bbox_head
        for branch in getattr(head, 'cls_branches', [getattr(head, 'fc_cls', None)]):
            branch.weight.normal_(0, 0.2)
            branch.bias.normal_(0, 1.0)
    return model


def detector(family: str, seed: int = 0, **kwargs):
    """A fresh copy of a cached tiny detector (building one is slow)."""
    return copy.deepcopy(_detector(family, seed, **kwargs))


def eps_terms(logits):
    """DIST of identical sigmoid rows ``(N, C)``: only the eps of its norm
    product is left, 1 - r = eps / (|y - mean y|^2 + eps), per row and class."""
    y = torch.sigmoid(logits.double())
    rows = ((y - y.mean(1, keepdim=True))**2).sum(1)
    cols = ((y - y.mean(0, keepdim=True))**2).sum(0)
    return float((1e-8 / (rows + 1e-8)).mean() + (1e-8 / (cols + 1e-8)).mean())


def build(student, teacher=None, **kwargs):
    cfg = dict(type='mmkd.QueryDistiller', student=student,
               teacher=copy.deepcopy(student) if teacher is None else teacher,
               teacher_ckpt=None, distill_losses=copy.deepcopy(LOSSES))
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.train()
    return model


def both_sides(model, inputs, samples):
    """The student's recorded side and the teacher's, as one step computes them."""
    with CallRecorder(model.capture_points()) as calls:
        model.student_loss(inputs, samples)
    student = model.read_student(calls, inputs, samples)
    return student, model.run_teacher(inputs, student)


@pytest.mark.parametrize('family', ['dino', 'ddetr_two_stage', 'dab_detr'])
def test_identical_teacher_reproduces_the_students_logits_and_losses_vanish(family):
    model = build(detector(family))
    inputs, samples = det_batch(model.student)
    student, teacher = both_sides(model, inputs, samples)
    assert student['logits'].shape == teacher['logits'].shape == (1, 2, 20, 3)
    torch.testing.assert_close(teacher['logits'], student['logits'].detach(), atol=1e-5, rtol=1e-5)
    terms = model.distill_terms(student, teacher, samples)
    assert abs(float(terms['loss_kd'])) < 1e-6
    # DIST's Pearson distances: only its eps is left (near-constant sigmoid
    # rows of a random-init head make that eps visible)
    eps = eps_terms(student['logits'][-1].detach().flatten(0, 1))
    assert abs(float(terms['loss_dist']) - eps) < 1e-4 + 1e-2 * eps
    assert float(terms['kd_agreement']) == 1.0
    with torch.no_grad():  # a perturbed teacher teaches something
        # the last decoder layer's (the one after it scores the encoder's proposals)
        head = model.teacher.bbox_head
        branch = head.cls_branches[1] if hasattr(head, 'cls_branches') else head.fc_cls
        branch.bias.add_(torch.tensor([1.0, -1.0, 0.5]))
    terms = model.distill_terms(student, model.run_teacher(inputs, student), samples)
    assert float(terms['loss_kd']) > 1e-3 and float(terms['loss_dist']) > 1e-2


def _by_hand(teacher, inputs, samples, boxes):
    """mmdet's own eval forward of a DINO teacher, its top-k reference boxes
    swapped for ``boxes`` and its content queries cut to their number."""
    original = teacher.pre_decoder

    def pre_decoder(*args, **kwargs):
        decoder_inputs, head_inputs = original(*args, **kwargs)
        decoder_inputs['reference_points'] = boxes
        decoder_inputs['query'] = decoder_inputs['query'][:, :boxes.shape[1]]
        return decoder_inputs, head_inputs

    teacher.pre_decoder = pre_decoder
    try:
        with torch.no_grad():
            return teacher(inputs, samples, mode='tensor')[0][-1]
    finally:
        del teacher.pre_decoder


def test_teacher_logits_are_its_decoder_on_the_students_boxes():
    # another teacher: more queries, another depth, its own weights
    teacher = detector('dino', seed=1, num_queries=30, layers=3)
    model = build(detector('dino'), teacher)
    inputs, samples = det_batch(model.student)
    student, got = both_sides(model, inputs, samples)
    assert student['boxes'].shape == (2, 20, 4) and not student['boxes'].requires_grad
    expected = _by_hand(model.teacher, inputs, samples, student['boxes'])
    torch.testing.assert_close(got['logits'][0], expected, atol=1e-5, rtol=1e-5)


def test_denoising_rows_never_reach_a_loss():
    model = build(detector('dino'))
    inputs, samples = det_batch(model.student)
    seen = []
    for loss in model.distill_losses.values():
        orig = loss.forward_parts
        loss.forward_parts = functools.partial(
            lambda orig, s, t, *a: seen.append((s.shape, t.shape)) or orig(s, t, *a), orig)
    with CallRecorder({'head': (model.student.bbox_head, 'forward')}) as calls:
        model.loss(inputs, samples)
    all_rows = calls.only('head').output[0].shape[2]
    dn_rows = all_rows - 20
    assert dn_rows > 0  # the student did train with denoising queries
    assert seen and all(s == t == (2 * 20, 3) for s, t in seen)


def test_teacher_runs_no_matcher_loss_top_k_or_denoising():
    model = build(detector('dino'))
    inputs, samples = det_batch(model.student)
    t = model.teacher
    points = {'pre_decoder (top-k)': (t, 'pre_decoder'), 'loss': (t.bbox_head, 'loss'),
              'loss_by_feat': (t.bbox_head, 'loss_by_feat'),
              'matcher': (t.bbox_head.assigner, 'assign'),
              'denoising': (t.dn_query_generator, 'forward'), 'decoder': (t.decoder, 'forward')}
    with CallRecorder(points) as calls:
        losses = model.loss(inputs, samples)
    assert len(calls.calls.pop('decoder')) == 1
    assert all(not c for c in calls.calls.values()), {k: len(v) for k, v in calls.calls.items()}
    assert {'loss_kd', 'loss_dist', 'dn_loss_cls', 'enc_loss_cls'} <= set(losses)


@pytest.mark.parametrize('student,teacher', [('dino', 'dino'), ('ddetr_two_stage', 'dino'),
                                             ('ddetr_two_stage', 'ddetr_two_stage'),
                                             ('dab_detr', 'dino')])
def test_training_step_and_eskd_stop(student, teacher):
    other = detector(teacher, seed=1, num_queries=30) if teacher != student else None
    model = build(detector(student), other)
    inputs, samples = det_batch(model.student)
    losses = model.loss(inputs, samples)
    total, _ = model.parse_losses(losses)
    total.backward()
    assert torch.isfinite(total) and float(losses['loss_kd']) > 0
    assert all(p.grad is None for p in model.teacher.parameters())
    head = model.student.bbox_head
    branch = head.cls_branches[1] if hasattr(head, 'cls_branches') else head.fc_cls
    assert branch.weight.grad is not None
    model.distill_active = False  # ESKD's stop: the teacher never runs
    with CallRecorder({'teacher': (model.teacher, 'extract_feat')}) as calls:
        losses = model.loss(inputs, samples)
    assert not calls.calls['teacher'] and 'loss_kd' not in losses


def test_all_decoder_layers_and_teacher_max_score_weighting():
    model = build(detector('dino'), decoder_layers='all', weighting='teacher_max_score')
    inputs, samples = det_batch(model.student)
    student, teacher = both_sides(model, inputs, samples)
    assert student['logits'].shape[0] == teacher['logits'].shape[0] == 2
    with torch.no_grad():
        model.teacher.bbox_head.cls_branches[0].bias.add_(1.0)
    teacher = model.run_teacher(inputs, student)
    terms = model.distill_terms(student, teacher, samples)
    assert {'d0.loss_kd', 'd0.loss_dist', 'loss_kd', 'loss_dist', 'd0.dist_inter'} <= set(terms)
    s, t = student['logits'][0].flatten(0, 1), teacher['logits'][0].flatten(0, 1)
    kd = model.distill_losses['loss_kd']
    weight = t.sigmoid().max(-1).values
    torch.testing.assert_close(terms['d0.loss_kd'], kd(s, t, weight=weight))
    assert not torch.allclose(terms['d0.loss_kd'], kd(s, t))


def test_refusals():
    dino = detector('dino')
    with pytest.raises(TypeError, match=r'DETR.*supported are'):
        build(detector('detr'))
    with pytest.raises(TypeError, match=r'DETR.*supported are'):
        build(detector('ddetr'), dino)
    with pytest.raises(TypeError, match=r'teacher is a RetinaNet; supported are'):
        build(dino, tiny())
    with pytest.raises(ValueError, match=r'num_queries=10: use a teacher with num_queries >= 20'):
        build(dino, detector('dino', num_queries=10))
    with pytest.raises(ValueError, match=r'DKD is not defined for query-based heads'):
        build(dino, distill_losses=dict(loss_dkd=dict(type='mmkd.DKDLoss', tau=1.0)))
    with pytest.raises(ValueError, match=r'set use_sigmoid=True in KDLoss'):
        build(dino, distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss')))
    with pytest.raises(ValueError, match=r'student has 2 decoder layers and the teacher 3'):
        build(dino, detector('dino', layers=3), decoder_layers='all')
    with pytest.raises(ValueError, match=r'weighting must be one of'):
        build(dino, weighting='foreground')


def test_schedule_hooks_in_a_runner_and_the_exported_student_loads_into_mmdet(tmp_path):
    """Warm-up scales the distillation losses, ESKD's stop leaves the teacher
    out of later steps, and the checkpoint's student loads into a plain mmdet
    DINO with no missing or unexpected keys (what tools/export_student.py
    writes), which then predicts."""
    from mmkd.engine.hooks import DistillWarmupHook, EarlyStopDistillHook
    from mmkd.models.base_distiller import student_state_dict
    from tests.helpers.runner import CallCounter, Recorder, det_dataset, loader, make_runner
    model = build(detector('dino'), detector('dino', seed=1, num_queries=30))
    counter = CallCounter(model.teacher)
    seen = []

    def after_iter(runner, outputs):
        seen.append((model.distill_factor, 'loss_kd' in outputs, counter.count))

    make_runner(tmp_path, model, loader(det_dataset(4), infinite=True),
                [DistillWarmupHook(warmup=2, by_epoch=False), EarlyStopDistillHook(stop_iter=2),
                 Recorder(after_iter=after_iter)],
                dict(by_epoch=False, max_iters=3)).train()
    assert [(factor, distilled) for factor, distilled, _ in seen] == [
        (0.5, True), (1.0, True), (1.0, False)]
    assert seen[1][2] > seen[0][2] > 0 and seen[2][2] == seen[1][2]  # no teacher at step 3
    plain = build_model(tiny_detr('dino'), 'mmdet')
    result = plain.load_state_dict(student_state_dict(model.state_dict()), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    plain.eval()
    inputs, samples = det_batch(plain)
    with torch.no_grad():
        assert len(plain.predict(inputs, samples)) == 2


def test_pskd_snapshot_hook_runs_with_a_query_distiller(tmp_path):
    """PS-KD's snapshot teacher (the student one "epoch" ago) decodes the
    student's boxes like any teacher: epoch 0 trains the student alone,
    epoch 1 distils from the snapshot."""
    from mmkd.engine.hooks import PSKDSnapshotHook
    from tests.helpers.runner import Recorder, det_dataset, loader, make_runner
    model = build(detector('dino'),
                  distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss', tau=1.0, use_sigmoid=True)))
    seen = []
    make_runner(tmp_path, model, loader(det_dataset(4), infinite=True),
                [PSKDSnapshotHook(interval=1),
                 Recorder(after_iter=lambda runner, out: seen.append('loss_kd' in out))],
                dict(by_epoch=False, max_iters=2)).train()
    assert seen == [False, True]
    assert model.student_loss_scales['loss_cls'] < 1 and 0 < model.distill_factor < 1


def test_one_config_dict_for_student_and_teacher_builds_both():
    """``teacher={{_base_.model}}`` hands the student's dict object to the
    teacher too; mmdet's DETR detectors write into their head's config while
    building, so building from the dict itself made the teacher refuse it."""
    shared = ConfigDict(tiny_detr('dino'))
    before = copy.deepcopy(shared)
    cfg = ConfigDict(type='mmkd.QueryDistiller', teacher_ckpt=None,
                     distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss', use_sigmoid=True)))
    cfg.student = cfg.teacher = shared  # what a config file's {{_base_.model}} gives twice
    assert cfg.student is cfg.teacher
    model = MODELS.build(cfg)
    assert type(model.student).__name__ == type(model.teacher).__name__ == 'DINO'
    assert shared == before  # the config is left as the user wrote it
