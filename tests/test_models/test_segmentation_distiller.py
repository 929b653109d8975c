import copy

import pytest
import torch

from mmkd.models.base_distiller import build_model
from mmkd.registry import MODELS
from tests.helpers.seg import PSPNET, seg_batch, tiny_segmentor

LOSSES = dict(
    loss_kd=dict(type='mmkd.KDLoss', tau=1.0),
    loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.25, tau=1.0),
    loss_dist=dict(type='mmkd.DISTLoss'))
AUX = dict(loss_dist_aux=dict(type='mmkd.DISTLoss', loss_weight=0.4))
REVIEWKD = dict(  # tiny D8 ResNet-18 (width 8): stages of 8/16/32/64 channels
    connector=dict(type='mmkd.ABFConnector', in_channels=[8, 16, 32, 64],
                   out_channels=[8, 16, 32, 64], mid_channels=8),
    loss=dict(type='mmkd.HCLLoss', loss_weight=1.0))
DISTILL_KEYS = ('loss_kd', 'loss_dkd', 'loss_dist', 'dkd_tckd', 'dkd_nckd', 'dist_inter',
                'dist_intra', 'kd_agreement')


def build(student=None, teacher=None, **kwargs):
    cfg = dict(type='mmkd.SegmentationDistiller', student=student or tiny_segmentor(),
               teacher=teacher or tiny_segmentor(), teacher_ckpt=None,
               distill_losses=copy.deepcopy(LOSSES))
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def head_mask(ignore):
    """An image-resolution ignore mask at D8 head resolution (8x8 blocks)."""
    return ignore[:, ::8, ::8]


def test_identical_teacher_gives_zero_and_perturbed_teacher_does_not():
    model = build(aux_distill_losses=copy.deepcopy(AUX))
    with torch.no_grad():  # confident rows: DIST's eps is negligible against them
        for head in (model.student.decode_head, model.student.auxiliary_head):
            head.conv_seg.weight.mul_(30)
    model.teacher.load_state_dict(model.student.state_dict())
    model.train()
    model.student.eval()  # no dropout, BN as the eval-mode teacher
    inputs, samples = seg_batch()
    losses = model.loss(inputs, samples)
    for key in ('loss_kd', 'loss_dkd'):
        assert abs(losses[key].item()) < 1e-6, (key, losses[key])
    # DIST's eps (1e-8) leaves 1 - r ~ eps / |y - 1/C|^2 per row
    for key in ('loss_dist', 'loss_dist_aux'):
        assert abs(losses[key].item()) < 1e-4, (key, losses[key])
    assert losses['kd_agreement'].item() == 1.0 and losses['aux_kd_agreement'].item() == 1.0
    with torch.no_grad():
        for head in (model.teacher.decode_head, model.teacher.auxiliary_head):
            head.conv_seg.weight.add_(torch.randn_like(head.conv_seg.weight) * 2)
    losses = model.loss(inputs, samples)
    for key in ('loss_kd', 'loss_dkd', 'loss_dist', 'loss_dist_aux'):
        assert losses[key].item() > 0.05, (key, losses[key])
    assert losses['kd_agreement'].item() < 0.9


def test_student_trains_as_mmseg_trains_it_in_one_forward():
    model = build()
    inputs, samples = seg_batch()
    torch.manual_seed(1)
    plain = model.student.loss(inputs, samples)
    calls = []
    model.student.backbone.register_forward_pre_hook(lambda *a: calls.append('student'))
    model.teacher.auxiliary_head.register_forward_pre_hook(lambda *a: calls.append('t_aux'))
    torch.manual_seed(1)  # same dropout masks
    losses = model.loss(inputs, samples)
    assert calls == ['student']  # one student forward; teacher aux head not asked for
    for key in ('decode.loss_ce', 'decode.acc_seg', 'aux.loss_ce'):
        torch.testing.assert_close(losses[key], plain[key])
    for key in DISTILL_KEYS:
        assert key in losses
    for key in ('dkd_tckd', 'dkd_nckd', 'dist_inter', 'dist_intra', 'kd_agreement'):
        assert not losses[key].requires_grad
    assert not any('aux' in k and k not in plain for k in losses)


def test_teacher_logits_at_ignored_pixels_change_no_loss():
    ignore = torch.zeros(2, 64, 64, dtype=torch.bool)
    ignore[0, :, :24] = True  # whole 8x8 blocks: columns 0-2 of the head map
    ignore[1, 40:] = True
    model = build(aux_distill_losses=copy.deepcopy(AUX))
    model.student.eval()
    inputs, samples = seg_batch(ignore=ignore)
    before = model.loss(inputs, samples)
    mask = head_mask(ignore)[:, None].float()  # (N, 1, 8, 8); read by the wrappers
    noise = torch.randn(4, 2, 5, 8, 8) * 10

    def add(forward, i):  # mmseg heads call self.forward: wrap it, not a hook
        return lambda *args: forward(*args) + noise[i] * mask

    for i, head in enumerate((model.teacher.decode_head, model.teacher.auxiliary_head,
                              model.student.decode_head, model.student.auxiliary_head)):
        head.forward = add(head.forward, i)
    after = model.loss(inputs, samples)
    for key in DISTILL_KEYS + ('loss_dist_aux', 'dist_aux_inter', 'dist_aux_intra',
                               'aux_kd_agreement'):
        torch.testing.assert_close(after[key], before[key], rtol=1e-5, atol=1e-6)
    mask = 1 - mask  # control: the same noise on kept pixels changes every loss
    changed = model.loss(inputs, samples)
    for key in ('loss_kd', 'loss_dkd', 'loss_dist', 'loss_dist_aux'):
        assert abs(changed[key].item() - before[key].item()) > 1e-2, key


def test_all_ignored_batch_gives_zero_in_the_graph():
    model = build(aux_distill_losses=copy.deepcopy(AUX))
    inputs, samples = seg_batch(ignore=torch.ones(2, 64, 64, dtype=torch.bool))
    losses = model.loss(inputs, samples)
    for key in ('loss_kd', 'loss_dkd', 'loss_dist', 'loss_dist_aux'):
        assert losses[key].item() == 0.0 and losses[key].requires_grad, key
    assert losses['kd_agreement'].item() == 0.0
    sum(losses[k] for k in ('loss_kd', 'loss_dkd', 'loss_dist', 'loss_dist_aux')).backward()


def test_pspnet_student_under_deeplabv3_teacher_trains_a_step():
    model = build(student=tiny_segmentor(PSPNET), aux_distill_losses=copy.deepcopy(AUX),
                  reviewkd=copy.deepcopy(REVIEWKD))
    assert type(model.student.decode_head).__name__ == 'PSPHead'
    assert type(model.teacher.decode_head).__name__ == 'ASPPHead'
    teacher_before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    inputs, samples = seg_batch()
    losses = model.loss(inputs, samples)
    assert losses['loss_reviewkd'].item() > 0
    total, _ = model.parse_losses(losses)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    total.backward()
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())
    for module in (model.student.backbone.layer1, model.student.decode_head.conv_seg,
                   model.student.auxiliary_head.conv_seg, model.connector):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    optimizer.step()
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), k


def test_teacher_at_another_resolution_is_resized_bilinearly():
    # D16 teacher: its decode head sees 4x4 maps where the D8 student's sees 8x8
    model = build(teacher=tiny_segmentor(strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2)))
    seen, raw = {}, []
    model.teacher.decode_head.register_forward_hook(lambda m, a, out: raw.append(out))
    orig = model.distill

    def spy(s, t, target, losses=None, prefix=''):
        seen.update(s=s, t=t, target=target)
        return orig(s, t, target, losses, prefix)

    model.distill = spy
    inputs, samples = seg_batch()
    losses = model.loss(inputs, samples)
    assert raw[0].shape[-2:] == (4, 4)
    assert seen['s'].shape == seen['t'].shape == (2, 5, 8, 8)
    src, out = raw[0], seen['t']
    # align_corners=False, scale 2: output 0 is input 0 (clamped); output 1
    # samples input coordinate 0.25, output 2 samples 0.75
    torch.testing.assert_close(out[..., 0, 0], src[..., 0, 0])
    torch.testing.assert_close(out[..., 1, 1], 0.5625 * src[..., 0, 0] + 0.1875 * (
        src[..., 0, 1] + src[..., 1, 0]) + 0.0625 * src[..., 1, 1])
    torch.testing.assert_close(out[..., 0, 2], 0.75 * src[..., 0, 1] + 0.25 * src[..., 0, 0])
    # targets: the label blocks, nearest-resized to 8x8
    torch.testing.assert_close(seen['target'], samples_labels(samples)[:, ::8, ::8])
    assert torch.isfinite(losses['loss_dist'])


def samples_labels(samples):
    return torch.cat([s.gt_sem_seg.data for s in samples]).long()


def test_aux_head_distilled_only_when_asked_with_its_own_weight():
    model = build()
    assert model.aux_distill_losses is None
    model = build(aux_distill_losses=dict(loss_kd_aux=dict(type='mmkd.KDLoss', loss_weight=0.4)))
    model.student.eval()
    inputs, samples = seg_batch()
    calls = []
    model.teacher.auxiliary_head.register_forward_pre_hook(lambda *a: calls.append(1))
    student_aux, forward = [], model.student.auxiliary_head.forward

    def record(*args):
        student_aux.append(forward(*args))
        return student_aux[-1]

    model.student.auxiliary_head.forward = record
    losses = model.loss(inputs, samples)
    assert calls == [1] and 'loss_kd_aux' in losses and 'aux_kd_agreement' in losses
    # by hand: 0.4 * mean over pixels of sum_c p_t (log p_t - log p_s), aux logits
    with torch.no_grad():
        t = model.teacher.auxiliary_head(model.teacher.extract_feat(inputs))
    s = student_aux[0]
    p_t = t.softmax(1)
    kl = (p_t * (p_t.log() - s.log_softmax(1))).sum(1).mean()
    torch.testing.assert_close(losses['loss_kd_aux'], 0.4 * kl, rtol=1e-5, atol=1e-7)


def test_a_list_of_auxiliary_heads_gets_one_key_each():
    def two_aux():
        cfg = tiny_segmentor()
        first = copy.deepcopy(cfg['auxiliary_head'])
        second = dict(first, in_index=1, in_channels=16)
        cfg['auxiliary_head'] = [first, second]
        return cfg

    model = build(student=two_aux(), teacher=two_aux(), aux_distill_losses=copy.deepcopy(AUX))
    losses = model.loss(*seg_batch())
    for i in (0, 1):
        for key in ('loss_dist_aux', 'dist_aux_inter', 'aux_kd_agreement'):
            assert f'{key}_{i}' in losses
        assert f'aux_{i}.loss_ce' in losses
    assert losses['loss_dist_aux_0'].item() != losses['loss_dist_aux_1'].item()


def test_distilled_student_starts_from_the_plain_students_weights():
    torch.manual_seed(3)
    plain = build_model(tiny_segmentor(), 'mmseg')
    plain.init_weights()
    torch.manual_seed(3)
    model = build(reviewkd=copy.deepcopy(REVIEWKD))
    for k, v in plain.state_dict().items():
        assert torch.equal(model.student.state_dict()[k], v), k


def test_teacher_frozen_out_of_state_dict_and_predict_runs_the_student():
    model = build(reviewkd=copy.deepcopy(REVIEWKD))
    model.train()
    assert model.student.training and not any(m.training for m in model.teacher.modules())
    sd = model.state_dict()
    assert not any(k.startswith('teacher.') for k in sd)
    assert any(k.startswith('connector.') for k in sd)
    model.eval()
    calls = []
    model.teacher.backbone.register_forward_pre_hook(lambda *a: calls.append(1))
    inputs, samples = seg_batch()
    out = model(inputs, samples, mode='predict')
    assert len(out) == 2 and out[0].pred_sem_seg.data.shape == (1, 64, 64)
    assert not calls


def test_bad_setups_raise_while_building(tmp_path):
    with pytest.raises(ValueError, match='num_classes=5.*7'):
        build(teacher=tiny_segmentor(num_classes=7))
    bgr = tiny_segmentor()
    bgr['data_preprocessor']['bgr_to_rgb'] = False
    with pytest.raises(ValueError, match='data_preprocessor differ'):
        build(teacher=bgr)
    with pytest.raises(ValueError, match='auxiliary head, but the teacher has none'):
        build(teacher=tiny_segmentor(aux=False), aux_distill_losses=copy.deepcopy(AUX))
    with pytest.raises(ValueError, match='used twice'):
        build(aux_distill_losses=dict(loss_dist=dict(type='mmkd.DISTLoss')))
    with pytest.raises(ValueError, match='must contain "loss"'):
        build(aux_distill_losses=dict(dist_aux=dict(type='mmkd.DISTLoss')))
    sigmoid = tiny_segmentor(num_classes=2)
    sigmoid['decode_head'].update(out_channels=1, loss_decode=dict(
        type='CrossEntropyLoss', use_sigmoid=True))
    with pytest.raises(TypeError, match='sigmoid'):
        build(student=sigmoid, teacher=tiny_segmentor(num_classes=2))
    cascade = tiny_segmentor()
    fcn = dict(cascade['auxiliary_head'], in_index=3, in_channels=64)
    ocr = dict(type='OCRHead', in_channels=64, in_index=3, channels=16, ocr_channels=8,
               num_classes=5, norm_cfg=fcn['norm_cfg'])
    cascade.update(type='CascadeEncoderDecoder', num_stages=2, decode_head=[fcn, ocr])
    with pytest.raises(TypeError, match='CascadeEncoderDecoder.*supported are mmseg'):
        build(teacher=cascade)
    wrong = copy.deepcopy(REVIEWKD)
    wrong['connector']['out_channels'] = [8, 16, 32, 128]
    with pytest.raises(ValueError, match='reviewkd: stage 3'):
        build(reviewkd=wrong)
    with pytest.raises(FileNotFoundError, match='teacher_ckpt'):
        build(teacher_ckpt=str(tmp_path / 'missing.pth'))
    teacher = build_model(tiny_segmentor(), 'mmseg')
    sd = teacher.state_dict()
    sd.pop('decode_head.conv_seg.weight')
    torch.save({'state_dict': sd}, tmp_path / 't.pth')
    with pytest.raises(RuntimeError, match='missing keys: decode_head.conv_seg.weight'):
        build(teacher_ckpt=str(tmp_path / 't.pth'))


def test_teacher_checkpoint_is_loaded_strictly_and_kept(tmp_path):
    teacher = build_model(tiny_segmentor(), 'mmseg')
    teacher.init_weights()
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, tmp_path / 't.pth')
    model = build(teacher_ckpt=str(tmp_path / 't.pth'))  # build() calls init_weights too
    for k, v in teacher.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[k], v), k


def test_runner_level_data_preprocessor_fills_in_only_where_missing():
    """mmengine's Runner passes mmseg configs' top-level data_preprocessor
    (often just ``dict(size=crop_size)``) to the model, which keeps its own."""
    bare = tiny_segmentor()
    own = bare.pop('data_preprocessor')
    model = build(student=tiny_segmentor(), teacher=bare,
                  data_preprocessor=dict(own, size=(32, 32)))
    assert model.data_preprocessor is model.student.data_preprocessor
    assert model.student.data_preprocessor.size is None  # its own, kept
    assert model.teacher.data_preprocessor.size == (32, 32)  # filled in
