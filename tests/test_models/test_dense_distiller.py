"""DenseDistiller: single-stage detectors' per-prior logits (RetinaNet, FCOS)."""
import copy
from types import SimpleNamespace

import pytest
import torch

from mmkd.models.dense_distiller import prior_logits
from mmkd.registry import MODELS
from tests.helpers.det import SIGMOID_LOSSES, det_batch, tiny, tiny_faster_rcnn


def build(student=None, teacher=None, **kwargs):
    cfg = dict(type='mmkd.DenseDistiller', student=student or tiny(),
               teacher=teacher or tiny(), teacher_ckpt=None,
               distill_losses=copy.deepcopy(SIGMOID_LOSSES))
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def spy(model):
    seen = {}
    orig = model.distill
    model.distill = lambda s, t, target: seen.update(s=s, t=t, target=target) or orig(s, t, target)
    return seen


def eps_terms(logits):
    """DIST of identical sigmoid rows: only the eps of its norm product is left,
    1 - r = eps / (|y - mean y|^2 + eps), per row and per class."""
    y = torch.sigmoid(logits.double()).transpose(1, 2).reshape(-1, logits.shape[1])
    rows = ((y - y.mean(1, keepdim=True))**2).sum(1)
    cols = ((y - y.mean(0, keepdim=True))**2).sum(0)
    return (1e-8 / (rows + 1e-8)).mean() + (1e-8 / (cols + 1e-8)).mean()


@pytest.mark.parametrize('family', ['retinanet', 'fcos'])
def test_identical_teacher_gives_zero_and_perturbed_teacher_does_not(family):
    model = build(tiny(family), tiny(family))
    cls_conv = 'retina_cls' if family == 'retinanet' else 'conv_cls'
    with torch.no_grad():  # spread the class scores (mmdet's init puts every prior at 0.01)
        getattr(model.student.bbox_head, cls_conv).weight.normal_(0, 0.3)
    model.teacher.load_state_dict(model.student.state_dict())
    model.train()
    model.student.eval()  # same BN behaviour as the (eval-mode) teacher
    inputs, samples = det_batch(model)
    seen = spy(model)
    losses = model.loss(inputs, samples)
    assert seen['target'] is None
    torch.testing.assert_close(seen['t'], seen['s'].detach())
    assert abs(losses['loss_kd'].item()) < 1e-6
    assert losses['loss_dist'].item() == pytest.approx(eps_terms(seen['t']).item(), rel=1e-3,
                                                       abs=1e-7)
    assert losses['kd_agreement'].item() == 1.0
    for key in ('loss_cls', 'loss_bbox'):
        assert key in losses  # the student's own losses
    with torch.no_grad():
        conv = getattr(model.teacher.bbox_head, cls_conv)
        conv.weight.add_(torch.randn_like(conv.weight) * 0.5)
        conv.bias.add_(torch.randn_like(conv.bias))
    losses = model.loss(inputs, samples)
    assert losses['loss_kd'].item() > 0.05 and losses['loss_dist'].item() > 0.05


@pytest.mark.parametrize('family', ['retinanet', 'fcos'])
def test_rows_are_every_prior_of_every_level_and_only_the_student_learns(family):
    model = build(tiny(family), tiny(family))
    model.train()
    inputs, samples = det_batch(model, batch_size=2, size=64)
    seen = spy(model)
    losses = model.loss(inputs, samples)
    head = model.student.bbox_head
    sizes = [f.shape[-2:] for f in model.student.extract_feat(inputs)]
    num_priors = sum(p.shape[0] for p in head.prior_generator.grid_priors(sizes, device='cpu'))
    assert seen['s'].shape[1] == 3  # sigmoid heads: num_classes, no background
    assert seen['s'].shape[0] * seen['s'].shape[2] == 2 * num_priors
    total = sum(v if torch.is_tensor(v) else sum(v) for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert head.cls_convs[0].conv.weight.grad.abs().sum() > 0


def test_prior_logits_puts_each_anchor_class_score_in_its_own_row():
    b, c = 2, 4
    maps = [torch.randn(b, 3 * c, 5, 6), torch.randn(b, 3 * c, 2, 3)]
    head = SimpleNamespace(cls_out_channels=c, prior_generator=SimpleNamespace(num_base_priors=[3, 3]))
    rows = prior_logits(maps, head)  # (B * A, C, sum H*W)
    assert rows.shape == (b * 3, c, 30 + 6)
    # image 1, anchor 2, class 3 at (h=1, w=2) of level 1: channel a * C + c (mmdet's layout)
    assert rows[1 * 3 + 2, 3, 30 + 1 * 3 + 2] == maps[1][1, 2 * c + 3, 1, 2]
    # SSD-like levels with different anchors per location: (B, C, sum A_l * H * W)
    maps = [torch.randn(b, 2 * c, 2, 2), torch.randn(b, 3 * c, 1, 1)]
    head.prior_generator.num_base_priors = [2, 3]
    rows = prior_logits(maps, head)
    assert rows.shape == (b, c, 8 + 3)
    assert rows[1, 3, 8 + 2] == maps[1][1, 2 * c + 3, 0, 0]
    with pytest.raises(RuntimeError, match='per-prior class logits'):
        prior_logits([torch.randn(b, 5, 2, 2), torch.randn(b, 3 * c, 1, 1)], head)


def test_prior_layout_mismatch_names_both_layouts():
    bigger = tiny()
    bigger['bbox_head']['anchor_generator']['octave_base_scale'] = 8
    both = r'(?s)prior layout.*student: .*anchor_sizes.*\(32.0, 32.0\).*teacher: .*\(64.0, 64.0\)'
    with pytest.raises(ValueError, match=both):  # octave_base_scale 4 -> 8: 32 -> 64 pixels
        build(teacher=bigger)
    fcos = tiny('fcos')
    strided = tiny('fcos', strides=[8, 16, 32, 64, 256])
    with pytest.raises(ValueError, match=r"(?s)student: .*\(128, 128\).*teacher: .*\(256, 256\)"):
        build(fcos, strided)
    with pytest.raises(ValueError, match='(?s)student: .*MlvlPointGenerator.*teacher: .*AnchorGen'):
        build(fcos, tiny())  # FCOS's points are not RetinaNet's anchors


def test_bad_pairs_and_losses_are_refused_before_training():
    with pytest.raises(ValueError, match='DKD is not defined for dense heads.*use_sigmoid=True'):
        build(distill_losses=dict(loss_dkd=dict(type='mmkd.DKDLoss')))
    with pytest.raises(ValueError, match='sigmoid, so set use_sigmoid=True in DISTLoss'):
        build(distill_losses=dict(loss_dist=dict(type='mmkd.DISTLoss')))
    with pytest.raises(ValueError, match='num_classes=3.*5'):
        build(teacher=tiny(num_classes=5))
    with pytest.raises(TypeError, match='supported are single-stage.*RetinaNet'):
        build(student=tiny_faster_rcnn(18))
    with pytest.raises(TypeError, match='DenseDistiller'):  # and the other way round
        MODELS.build(dict(type='mmkd.DetectionDistiller', student=tiny(), teacher=tiny()))
