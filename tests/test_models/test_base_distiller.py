"""What BaseDistiller owns, on a toy task distiller: the teacher's handling
(loading, freezing, eval mode, out of the optimizer and checkpoints), the one
student forward and one no_grad teacher forward per step, the schedule
switches, the loss dict, the log line, and the call recorder's restore."""
import pytest
import torch
from torch import nn

from mmkd.models import BaseDistiller
from mmkd.models import base_distiller as base_module
from mmkd.models.capture import CallRecorder
from tests.helpers.toy import ToyClassifier, ToyDistiller, toy_batch

KD = dict(loss_kd=dict(type='mmkd.KDLoss', tau=1.0))
DKD = dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=2.0, tau=1.0))


def toy(distill_losses=KD, **kwargs):
    torch.manual_seed(0)
    return ToyDistiller(ToyClassifier(), ToyClassifier(width=16), distill_losses=distill_losses,
                        **kwargs)


# -- the call recorder -----------------------------------------------------------------
class Thing:
    def f(self, x, y=1):
        return x + y


def test_recorder_records_args_kwargs_and_output_and_removes_its_wrapper():
    thing = Thing()
    with CallRecorder({'f': (thing, 'f')}) as calls:
        assert thing.f(2, y=3) == 5
    call = calls.only('f')
    assert call.args == (2, ) and call.kwargs == dict(y=3) and call.output == 5
    assert call.arg(0, 'x') == 2 and call.arg(1, 'y') == 3
    assert 'f' not in vars(thing)  # nothing left behind: the class method again
    assert thing.f(1) == 2


def test_recorder_puts_back_an_attribute_the_object_had_of_its_own():
    thing = Thing()
    own = lambda x, y=1: 100  # noqa: E731  (someone else's instance override)
    thing.f = own
    with CallRecorder({'f': (thing, 'f')}) as calls:
        assert thing.f(0) == 100
    assert vars(thing)['f'] is own and len(calls.calls['f']) == 1


def test_recorder_restores_on_an_exception_and_on_a_failed_wrap():
    thing = Thing()
    with pytest.raises(ZeroDivisionError):
        with CallRecorder({'f': (thing, 'f')}):
            thing.f(1 / 0)
    assert 'f' not in vars(thing)
    with pytest.raises(AttributeError):  # the second point does not exist
        with CallRecorder({'f': (thing, 'f'), 'g': (thing, 'missing')}):
            pass
    assert 'f' not in vars(thing)


def test_recorder_counts_calls_and_says_which_point_misbehaved():
    thing = Thing()
    with CallRecorder({'f': (thing, 'f')}) as calls:
        thing.f(1)
        thing.f(2)
    assert calls.first('f').args == (1, ) and calls.last('f').args == (2, )
    with pytest.raises(RuntimeError, match='ran 2 times'):
        calls.only('f')
    with CallRecorder({'f': (thing, 'f')}) as calls:
        pass
    with pytest.raises(RuntimeError, match='never ran'):
        calls.first('f')


# -- the teacher -----------------------------------------------------------------------
def test_teacher_is_frozen_in_eval_mode_out_of_parameters_and_state_dict():
    model = toy()
    model.train()
    assert not model.teacher.training and model.student.training
    assert all(not p.requires_grad for p in model.teacher.parameters())
    teacher_params = {id(p) for p in model.teacher.parameters()}
    assert teacher_params and not teacher_params & {id(p) for p in model.parameters()}
    keys = model.state_dict().keys()
    assert keys and all(k.startswith('student.') for k in keys)
    model.load_state_dict(model.state_dict())  # no missing teacher keys


def test_teacher_loads_from_its_checkpoint_and_init_weights_keeps_it(tmp_path):
    source = ToyClassifier(width=16)
    ckpt = tmp_path / 'teacher.pth'
    torch.save(dict(state_dict=source.state_dict()), ckpt)
    model = toy(teacher_ckpt=str(ckpt))
    model.init_weights()
    for name, value in source.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[name], value), name


def test_a_missing_teacher_checkpoint_names_the_hint(tmp_path):
    with pytest.raises(FileNotFoundError, match='Run make demo first'):
        toy(teacher_ckpt=str(tmp_path / 'none.pth'), teacher_ckpt_hint='Run make demo first.')


def test_a_task_distiller_must_say_its_host():
    class NoScope(ToyDistiller):
        scope = ''

    with pytest.raises(TypeError, match='scope'):
        NoScope(ToyClassifier(), ToyClassifier())


def test_the_student_runs_once_and_the_teacher_once_without_grad():
    model = toy()
    inputs, labels = toy_batch()
    losses = model.loss(inputs, labels)
    assert model.student.forwards == 1 and model.teacher.forwards == 1
    assert model.teacher_grad_enabled == [False]
    assert set(losses) == {'loss_cls', 'loss_kd', 'kd_agreement'}
    assert losses['loss_kd'].requires_grad and not losses['kd_agreement'].requires_grad


def test_the_captured_logits_are_the_students_own():
    """KD between the distiller's two models equals KD computed by hand on
    the two models' logits: the rows the losses see are the host's."""
    model = toy()
    inputs, labels = toy_batch()
    got = model.loss(inputs, labels)['loss_kd']
    s = model.student.head(torch.relu(model.student.backbone(inputs)))
    t = model.teacher.head(torch.relu(model.teacher.backbone(inputs)))
    by_hand = (t.softmax(1) * (t.log_softmax(1) - s.log_softmax(1))).sum(1).mean()
    torch.testing.assert_close(got, by_hand)


# -- the schedule switches and the loss dict -----------------------------------------------
def test_a_stopped_distillation_does_not_run_the_teacher():
    model = toy()
    model.distill_active = False
    losses = model.loss(*toy_batch())
    assert model.teacher.forwards == 0 and set(losses) == {'loss_cls'}


def test_the_warmup_factor_scales_distillation_losses_only():
    inputs, labels = toy_batch()
    full = toy().loss(inputs, labels)
    model = toy()
    model.distill_factor = 0.25
    scaled = model.loss(inputs, labels)
    torch.testing.assert_close(scaled['loss_kd'], 0.25 * full['loss_kd'])
    torch.testing.assert_close(scaled['loss_cls'], full['loss_cls'])
    torch.testing.assert_close(scaled['kd_agreement'], full['kd_agreement'])


def test_student_loss_scales_apply_to_named_keys_and_refuse_unknown_ones():
    inputs, labels = toy_batch()
    full = toy().loss(inputs, labels)
    model = toy()
    model.student_loss_scales = {'loss_cls': 0.5}
    torch.testing.assert_close(model.loss(inputs, labels)['loss_cls'], 0.5 * full['loss_cls'])
    model.student_loss_scales = {'loss_bbox': 0.5}
    with pytest.raises(KeyError, match='loss_bbox'):
        model.loss(inputs, labels)


def test_a_distillation_key_that_clashes_with_the_students_is_refused():
    with pytest.raises(ValueError, match='clash'):
        toy(distill_losses=dict(loss_cls=dict(type='mmkd.KDLoss'))).loss(*toy_batch())


def test_decomposed_terms_are_logged_detached_and_listed_for_the_log_processor():
    model = toy(distill_losses=DKD)
    losses = model.loss(*toy_batch())
    assert {'dkd_tckd', 'dkd_nckd', 'kd_agreement'} <= set(losses)
    assert model.logged_terms == {'dkd_tckd', 'dkd_nckd', 'kd_agreement'}
    # DKD = alpha * TCKD + beta * NCKD (tau 1) on the logged values
    torch.testing.assert_close(losses['loss_dkd'],
                               losses['dkd_tckd'] + 2.0 * losses['dkd_nckd'])


def test_a_non_finite_teacher_is_named_with_the_iteration_and_samples():
    model = toy()
    with torch.no_grad():
        model.teacher.head.bias[0] = float('nan')
    with pytest.raises(FloatingPointError, match='teacher produced'):
        model.loss(*toy_batch())


def test_the_first_step_logs_where_the_teacher_came_from(monkeypatch, tmp_path):
    lines = []
    monkeypatch.setattr(base_module, 'print_log', lambda msg, **kw: lines.append(msg))
    ckpt = tmp_path / 'teacher.pth'
    torch.save(ToyClassifier(width=16).state_dict(), ckpt)
    model = toy(teacher_ckpt=str(ckpt))
    model.loss(*toy_batch())
    model.loss(*toy_batch())
    assert len(lines) == 1, lines  # once per run, at its first step
    assert f'loaded from {ckpt}' in lines[0] and 'loss_kd (KDLoss)' in lines[0]


def test_inference_is_the_students():
    model = toy()
    inputs, _ = toy_batch()
    assert torch.equal(model(inputs, mode='predict'), model.student.predict(inputs))
    assert torch.equal(model(inputs, mode='tensor'), model.student._forward(inputs))
    assert model.teacher.forwards == 0


def test_base_distiller_has_no_task():
    assert issubclass(ToyDistiller, BaseDistiller)
    with pytest.raises(TypeError):
        BaseDistiller(nn.Linear(1, 1), nn.Linear(1, 1))


# -- the teacher's precision and the deferred finiteness check ------------------------------
class DtypeProbe(ToyDistiller):
    """Records the dtype the teacher's head computes in."""

    def teacher_forward(self, inputs, student):
        out = super().teacher_forward(inputs, student)
        self.teacher_dtype = out['logits'].dtype
        return out


@pytest.mark.parametrize('precision, dtype', [('fp32', torch.float32), ('bf16', torch.bfloat16),
                                              ('fp16', torch.float16)])
def test_the_teacher_runs_in_its_own_precision_and_hands_float32_on(precision, dtype):
    torch.manual_seed(0)
    model = DtypeProbe(ToyClassifier(), ToyClassifier(width=16), distill_losses=KD,
                       teacher_precision=precision)
    inputs, labels = toy_batch()
    student = dict(logits=None)
    # an outer (student) autocast in bf16 does not decide the teacher's precision
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = model.run_teacher(inputs, student)
    assert model.teacher_dtype == dtype and out['logits'].dtype == torch.float32


def test_a_bf16_teacher_is_close_to_the_fp32_teacher():
    inputs, labels = toy_batch(n=64)
    exact = toy().loss(inputs, labels)['loss_kd']
    half = toy(teacher_precision='bf16').loss(inputs, labels)['loss_kd']
    assert half.dtype == torch.float32
    assert abs(float(half.detach()) - float(exact.detach())) <= 0.02 * float(exact.detach())


def test_an_unknown_teacher_precision_is_refused():
    with pytest.raises(ValueError, match='teacher_precision'):
        toy(teacher_precision='int8')


def test_an_fp16_overflow_is_named_and_suggests_bf16():
    model = toy(teacher_precision='fp16')
    with torch.no_grad():
        model.teacher.head.weight.mul_(1e6)  # logits beyond fp16's 65504
    with pytest.raises(FloatingPointError, match=r'fp16 overflow(.|\n)*bf16'):
        model.loss(*toy_batch())


def test_in_a_training_loop_a_non_finite_teacher_stops_the_next_step_without_nan_gradients():
    """Once mmengine parses the losses, the step with a broken teacher logs
    a NaN loss but leaves every gradient finite, and the next step raises
    naming the broken step's samples."""
    from mmengine.logging import MessageHub
    model = toy()
    hub = MessageHub.get_instance('test_deferred_teacher_check')
    inputs, labels = toy_batch()
    model.parse_losses(model.loss(inputs, labels))  # mmengine's train step: deferred from now
    with torch.no_grad():
        model.teacher.head.bias[0] = float('inf')
    losses = model.loss(inputs, labels)
    assert torch.isnan(losses['loss_kd'])
    total, log_vars = model.parse_losses(losses)
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    for key, value in log_vars.items():  # what mmengine's RuntimeInfoHook does
        hub.update_scalar(f'train/{key}', value)
    with pytest.raises(FloatingPointError, match=r'teacher produced 6 non-finite(.|\n)*iteration'):
        model.loss(inputs, labels)


def test_parse_losses_splits_the_total_into_task_and_distillation_parts():
    """The contract an optimizer wrapper such as DOT reads: the task's part is
    the student's own loss keys, the distillation's the distillation losses;
    logged terms (no "loss" in the key) are in neither; they sum to the total."""
    model = toy(distill_losses=DKD)
    losses = model.loss(*toy_batch())
    total, _ = model.parse_losses(losses)
    task, distill = model.loss_parts
    assert model.distill_loss_keys == {'loss_dkd'}
    torch.testing.assert_close(task, losses['loss_cls'])
    torch.testing.assert_close(distill, losses['loss_dkd'])
    torch.testing.assert_close(task + distill, total)
    model.distill_active = False  # after an ESKD stop: all of it is the task's
    total, _ = model.parse_losses(model.loss(*toy_batch()))
    assert model.distill_loss_keys == frozenset()
    torch.testing.assert_close(model.loss_parts[0], total)
    assert float(model.loss_parts[1]) == 0
