"""ClassificationDistiller on tiny mmpretrain ResNets (CPU, 32x32 images)."""
import copy

import pytest
import torch
import torch.nn.functional as F

import mmkd  # noqa: F401
from mmkd.losses import DKDLoss
from mmkd.losses.hcl import hcl_level
from mmkd.models.base_distiller import build_model
from mmkd.models.classification_distiller import ClassificationDistiller, dkd_target
from mmkd.registry import MODELS
from tests.helpers.cls import cls_batch, tiny_resnet

LOSSES = dict(
    loss_kd=dict(type='mmkd.KDLoss', tau=2.0),
    loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.5, tau=1.0),
    loss_dist=dict(type='mmkd.DISTLoss', beta=1.0, gamma=1.0, tau=1.0))


def distiller(student=None, teacher=None, **kwargs) -> ClassificationDistiller:
    return MODELS.build(dict(type='mmkd.ClassificationDistiller',
                             student=student or tiny_resnet(), teacher=teacher or tiny_resnet(
                                 width=16), distill_losses=kwargs.pop('losses', LOSSES), **kwargs))


def logits(model, inputs):
    """Plain forward of an mmpretrain classifier: backbone, neck, head."""
    return model.head(model.extract_feat(inputs))


def kl_rows(student_logits, teacher_logits, tau):
    """tau^2 * KL(p_t || p_s) summed over classes, mean over rows, by hand
    (in float64: near-equal distributions cancel)."""
    student_logits, teacher_logits = student_logits.double(), teacher_logits.double()
    p_t = F.softmax(teacher_logits / tau, 1)
    return tau ** 2 * (p_t * (p_t.log() - F.log_softmax(student_logits / tau, 1))).sum(1).mean()


def test_teacher_equal_to_student_gives_zero_and_perturbed_teacher_does_not():
    model = distiller(teacher=tiny_resnet())
    with torch.no_grad():  # spread the logits: DIST's Pearson eps dwarfs near-uniform ones
        model.student.head.fc.weight.normal_()
    model.teacher.load_state_dict(model.student.state_dict())
    model.eval()  # BN on running statistics in both: identical logits
    inputs, samples = cls_batch(model.student, [0, 1, 2, 3, 4, 0], training=False)
    with torch.no_grad():
        losses = model.loss(inputs, samples)
    for key in ('loss_kd', 'loss_dkd'):
        assert abs(float(losses[key])) < 1e-6, key
    # Pearson with eps 1e-8: 1 - var / (var + eps) ~ eps / var on a batch of 6
    assert abs(float(losses['loss_dist'])) < 1e-4
    assert float(losses['kd_agreement']) == 1.0
    with torch.no_grad():
        model.teacher.head.fc.weight.add_(torch.randn_like(model.teacher.head.fc.weight))
        perturbed = model.loss(inputs, samples)
        expected_kd = kl_rows(logits(model.student, inputs), logits(model.teacher, inputs), 2.0)
    assert float(perturbed['loss_kd']) > 1e-3
    assert float(perturbed['loss_kd']) == pytest.approx(float(expected_kd), rel=1e-4)
    assert float(perturbed['loss_dist']) > 1e-3 and float(perturbed['loss_dkd']) > 1e-3


def test_student_trains_as_mmpretrain_with_one_forward_and_grads_only_on_student():
    model = distiller()
    model.train()
    inputs, samples = cls_batch(model.student, [0, 1, 2, 3], training=True)
    calls = []
    hook = model.student.head.register_forward_hook(lambda *a: calls.append(a[2]))
    losses = model.loss(inputs, samples)
    hook.remove()
    assert len(calls) == 1  # the student's logits come from its own loss forward
    student_logits = calls[0]
    # mmpretrain's loss on those logits: cross-entropy, mean over the batch
    labels = torch.tensor([0, 1, 2, 3])
    ce = F.cross_entropy(student_logits.detach(), labels)
    assert float(losses['loss_cls'].detach()) == pytest.approx(float(ce), rel=1e-6)
    with torch.no_grad():
        teacher_logits = logits(model.teacher, inputs)  # eval mode: what the distiller saw
    agree = (student_logits.argmax(1) == teacher_logits.argmax(1)).float().mean()
    assert float(losses['kd_agreement']) == pytest.approx(float(agree))
    assert float(losses['loss_kd'].detach()) == pytest.approx(
        float(kl_rows(student_logits.detach(), teacher_logits, 2.0)), rel=1e-4)
    # decomposed terms are logged, detached, without "loss" in the key
    for key in ('dkd_tckd', 'dkd_nckd', 'dist_inter', 'dist_intra', 'kd_agreement'):
        assert not losses[key].requires_grad
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(p.grad is not None for p in model.student.parameters())
    trainable = {id(p) for p in model.parameters()}  # what the optimizer gets
    assert not any(id(p) in trainable for p in model.teacher.parameters())
    assert not any(k.startswith('teacher.') for k in model.state_dict())


def test_dkd_target_is_gt_label_or_the_larger_mixup_score():
    from mmpretrain.structures import DataSample
    samples = [DataSample().set_gt_label(3), DataSample().set_gt_label(0)]
    assert dkd_target(samples).tolist() == [3, 0]
    mixed = [DataSample().set_gt_label(2).set_gt_score(torch.tensor([0., .3, 0., 0., .7])),
             DataSample().set_gt_label(4).set_gt_score(torch.tensor([.6, 0., 0., 0., .4]))]
    assert dkd_target(mixed).tolist() == [4, 0]


def test_mixup_soft_targets_give_dkd_the_larger_class():
    model = distiller(student=tiny_resnet(augments=dict(type='Mixup', alpha=1.0)),
                      losses=dict(loss_dkd=dict(type='mmkd.DKDLoss', beta=2.0, tau=1.0)))
    model.eval()
    inputs, samples = cls_batch(model.student, [0, 1, 2, 3, 4, 1], training=True)  # mixes
    scores = torch.stack([s.gt_score for s in samples])
    assert scores.shape == (6, 5) and bool((scores.max(1).values < 1).any())  # really mixed
    with torch.no_grad():
        losses = model.loss(inputs, samples)
        s_logits, t_logits = logits(model.student, inputs), logits(model.teacher, inputs)
    dkd = DKDLoss(beta=2.0, tau=1.0)
    larger = scores.argmax(1)
    assert float(losses['loss_dkd']) == pytest.approx(float(dkd(s_logits, t_logits, larger)),
                                                      rel=1e-5)
    smaller = torch.where(scores.max(1).values < 1, scores.argsort(1)[:, -2], larger)
    assert float(losses['loss_dkd']) != pytest.approx(float(dkd(s_logits, t_logits, smaller)))


def test_class_255_is_a_class_not_ignored():
    model = distiller(student=tiny_resnet(num_classes=300), teacher=tiny_resnet(num_classes=300),
                      losses=dict(loss_dkd=dict(type='mmkd.DKDLoss', beta=0.5, tau=1.0)))
    model.eval()
    inputs, samples = cls_batch(model.student, [255, 255], training=False)
    with torch.no_grad():
        losses = model.loss(inputs, samples)
        expected = DKDLoss(beta=0.5, tau=1.0, ignore_index=None)(
            logits(model.student, inputs), logits(model.teacher, inputs), torch.tensor([255, 255]))
    assert float(losses['loss_dkd']) > 0
    assert float(losses['loss_dkd']) == pytest.approx(float(expected), rel=1e-5)


def test_reviewkd_fuses_stages_and_pooled_feature_into_teacher_channels():
    student, teacher = tiny_resnet(out_indices=(0, 1, 2, 3)), tiny_resnet(width=16,
                                                                         out_indices=(0, 1, 2, 3))
    s_ch, t_ch = [8, 16, 32, 64, 64], [16, 32, 64, 128, 128]
    model = distiller(student, teacher, losses=dict(),
                      reviewkd=dict(connector=dict(type='mmkd.ABFConnector', in_channels=s_ch,
                                                   out_channels=t_ch, mid_channels=16),
                                    loss=dict(type='mmkd.HCLLoss', loss_weight=2.0)))
    model.eval()  # deterministic BN, so an independent forward reproduces the features
    inputs, samples = cls_batch(model.student, [0, 1, 2, 3], size=64, training=False)
    losses = model.loss(inputs, samples)
    with torch.no_grad():
        s_stages = model.student.backbone(inputs)
        t_stages = model.teacher.backbone(inputs)
        s_levels = [*s_stages, s_stages[-1].mean((2, 3), keepdim=True)]  # pooled = GAP of stage 4
        t_levels = [*t_stages, t_stages[-1].mean((2, 3), keepdim=True)]
        fused = model.connector(s_levels)
    assert [f.shape[1:] for f in fused] == [t.shape[1:] for t in t_levels]
    assert t_levels[-1].shape[-2:] == (1, 1)
    # the pooled (1x1) level is a plain MSE: every pooled size is skipped
    assert float(hcl_level(fused[-1], t_levels[-1])) == pytest.approx(
        float(((fused[-1] - t_levels[-1]) ** 2).mean()))
    expected = 2.0 * sum(hcl_level(f, t) for f, t in zip(fused, t_levels))
    assert float(losses['loss_reviewkd'].detach()) == pytest.approx(float(expected), rel=1e-5)
    losses['loss_reviewkd'].backward()
    assert all(p.grad is not None for p in model.connector.parameters())
    assert model.student.backbone.layer1[0].conv1.weight.grad is not None
    assert all(p.grad is None for p in model.teacher.parameters())
    assert any(k.startswith('connector.') for k in model.state_dict())


def test_same_seed_same_student_weights_as_a_plain_run():
    torch.manual_seed(3)
    plain = build_model(tiny_resnet(), 'mmpretrain')
    plain.init_weights()
    torch.manual_seed(3)
    model = distiller(teacher=tiny_resnet(width=16, out_indices=(0, 1, 2, 3)),
                      student=tiny_resnet(out_indices=(0, 1, 2, 3)),
                      reviewkd=dict(connector=dict(
                          type='mmkd.ABFConnector', in_channels=[8, 16, 32, 64, 64],
                          out_channels=[16, 32, 64, 128, 128], mid_channels=16)))
    model.init_weights()
    for key, value in plain.state_dict().items():
        assert torch.equal(value, model.student.state_dict()[key]), key


def test_top_level_data_preprocessor_reaches_both_models():
    bare = {k: v for k, v in tiny_resnet().items() if k != 'data_preprocessor'}
    pre = dict(num_classes=5, mean=[1., 2., 3.], std=[4., 5., 6.], to_rgb=True)
    model = distiller(student=copy.deepcopy(bare), teacher=copy.deepcopy(bare),
                      data_preprocessor=pre)
    for m in (model, model.student, model.teacher):
        assert m.data_preprocessor.mean.flatten().tolist() == [1., 2., 3.]
    # a model's own preprocessor wins, and a different one is refused
    with pytest.raises(ValueError, match='data_preprocessor differ'):
        distiller(student=copy.deepcopy(bare), teacher=tiny_resnet(), data_preprocessor=pre)


def test_bad_setups_raise_before_training():
    with pytest.raises(ValueError, match="num_classes=5, the teacher's 7"):
        distiller(teacher=tiny_resnet(num_classes=7))
    with pytest.raises(ValueError, match='data_preprocessor differ'):
        distiller(teacher=tiny_resnet(mean=[0., 0., 0.]))
    from tests.helpers.det import tiny_faster_rcnn
    detector = build_model(tiny_faster_rcnn(num_classes=5), 'mmdet')
    with pytest.raises(TypeError, match='student is a FasterRCNN; supported are mmpretrain '
                                        'ImageClassifier'):
        distiller(student=detector)
    multi = tiny_resnet()
    multi['head'] = dict(type='MultiLabelLinearClsHead', num_classes=5, in_channels=64)
    with pytest.raises(TypeError, match='MultiLabelLinearClsHead.*supported'):
        distiller(teacher=multi)
    with pytest.raises(ValueError, match=r'out_indices=\(0, 1, 2, 3\)'):
        distiller(reviewkd=dict(connector=dict(type='mmkd.ABFConnector', in_channels=[8] * 5,
                                               out_channels=[16] * 5)))
    with pytest.raises(FileNotFoundError, match='teacher_ckpt'):
        distiller(teacher_ckpt='/nonexistent/teacher.pth')
