"""A cascade teacher (Cascade R-CNN) scores the student's RoIs with its stages."""
import copy
import functools

import pytest
import torch

from mmkd.registry import MODELS
from tests.helpers.det import det_batch, mmdet_model, tiny_faster_rcnn

LOSSES = dict(loss_kd=dict(type='mmkd.KDLoss', tau=1.0),
              loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.25, tau=1.0))


@functools.lru_cache()
def _cascade_cfg(channels: int, num_classes: int) -> dict:
    cfg = mmdet_model('cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py')
    cfg.backbone.update(depth=18, init_cfg=None, norm_eval=False)
    cfg.neck.update(in_channels=[64, 128, 256, 512], out_channels=channels)
    cfg.rpn_head.update(in_channels=channels, feat_channels=channels)
    cfg.roi_head.bbox_roi_extractor.out_channels = channels
    for head in cfg.roi_head.bbox_head:
        head.update(in_channels=channels, fc_out_channels=64, num_classes=num_classes)
    return cfg.to_dict()


def tiny_cascade(channels: int = 32, num_classes: int = 3) -> dict:
    """mmdet's packaged Cascade R-CNN shrunk like ``tiny_faster_rcnn(18)``."""
    return copy.deepcopy(_cascade_cfg(channels, num_classes))


STUDENT = tiny_faster_rcnn(18)


def build(**kwargs):
    cfg = dict(type='mmkd.DetectionDistiller', student=copy.deepcopy(STUDENT),
               teacher=tiny_cascade(), teacher_ckpt=None, distill_losses=copy.deepcopy(LOSSES))
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def student_into_every_stage(model):
    """Teacher = student: same backbone/neck, every stage a copy of the
    student's box head (classification part; the cascade regresses
    class-agnostically, so its fc_reg has another shape)."""
    student, teacher = model.student, model.teacher
    teacher.backbone.load_state_dict(student.backbone.state_dict())
    teacher.neck.load_state_dict(student.neck.state_dict())
    cls_part = {k: v for k, v in student.roi_head.bbox_head.state_dict().items()
                if not k.startswith('fc_reg')}
    for head in teacher.roi_head.bbox_head:
        missing, unexpected = head.load_state_dict(cls_part, strict=False)
        assert unexpected == [] and sorted(missing) == ['fc_reg.bias', 'fc_reg.weight']


def spy(model):
    seen = {}
    orig = model.distill
    model.distill = lambda s, t, target: seen.update(s=s, t=t) or orig(s, t, target)
    return seen


@pytest.mark.parametrize('stage', ['mean', 'last'])
def test_cascade_of_student_copies_gives_the_students_logits_then_perturbation(stage):
    model = build(teacher_stage=stage)
    student_into_every_stage(model)
    model.train()
    model.student.eval()  # same BN behaviour as the (eval-mode) teacher
    inputs, samples = det_batch(model)
    seen = spy(model)
    losses = model.loss(inputs, samples)
    torch.testing.assert_close(seen['t'], seen['s'].detach(), rtol=1e-5, atol=1e-5)
    for key in ('loss_kd', 'loss_dkd'):
        assert abs(losses[key].item()) < 1e-6, (key, losses[key])
    assert losses['kd_agreement'].item() == 1.0
    # perturb every stage: the teacher now disagrees, whichever stage teaches
    with torch.no_grad():
        for head in model.teacher.roi_head.bbox_head:
            head.fc_cls.weight.add_(torch.randn_like(head.fc_cls.weight) * 0.5)
    losses = model.loss(inputs, samples)
    assert losses['loss_kd'].item() > 0.05 and losses['loss_dkd'].item() > 0.05


def test_stage_option_picks_mean_last_or_index_of_the_stages_logits():
    model = build()
    model.train()
    inputs, samples = det_batch(model)
    rois = torch.tensor([[0, 2., 3., 30., 40.], [0, 10., 10., 60., 50.], [1, 0., 5., 20., 63.]])
    head = model.teacher.roi_head
    with torch.no_grad():
        feats = model.teacher.extract_feat(inputs)
        per_stage = []
        for stage in range(3):  # by hand: roi align + the stage's box head
            roi_feats = head.bbox_roi_extractor[stage](feats[:4], rois)
            per_stage.append(head.bbox_head[stage](roi_feats)[0])
        assert not torch.allclose(per_stage[0], per_stage[2])  # the stages differ
        mean = model.teacher_roi_logits(feats, rois)
        torch.testing.assert_close(mean, (per_stage[0] + per_stage[1] + per_stage[2]) / 3)
        for option, want in (('last', 2), (1, 1), (-3, 0)):
            model.teacher_stages = model._stages(option)
            torch.testing.assert_close(model.teacher_roi_logits(feats, rois), per_stage[want])
    # through the distiller's option, end to end: 'last' teaches with stage 2
    # alone, on the student's sampled RoIs
    last = build(teacher_stage='last')
    last.teacher.load_state_dict(model.teacher.state_dict())
    seen = spy(last)
    orig = last.teacher_roi_logits
    last.teacher_roi_logits = lambda f, r: seen.update(rois=r) or orig(f, r)
    last.loss(inputs, samples)
    assert seen['rois'].shape[0] == seen['s'].shape[0] > 0
    with torch.no_grad():
        by_hand = head.bbox_head[2](head.bbox_roi_extractor[2](feats[:4], seen['rois']))[0]
    torch.testing.assert_close(seen['t'], by_hand)


def test_cascade_student_and_bad_stage_and_class_mismatch_are_refused():
    with pytest.raises(TypeError, match='cascade student is not supported.*StandardRoIHead'):
        build(student=tiny_cascade(), teacher=tiny_cascade())
    with pytest.raises(ValueError, match="teacher_stage must be 'mean', 'last'"):
        build(teacher_stage=3)
    with pytest.raises(ValueError, match="teacher_stage must be"):
        build(teacher_stage='first')
    with pytest.raises(ValueError, match='cascade stage|num_classes=3.*5'):
        build(teacher=tiny_cascade(num_classes=5))
    sigmoid = tiny_cascade()
    sigmoid['roi_head']['bbox_head'][1]['loss_cls'] = dict(
        type='FocalLoss', use_sigmoid=True, loss_weight=1.0)
    with pytest.raises(TypeError, match='sigmoid'):
        build(teacher=sigmoid)
