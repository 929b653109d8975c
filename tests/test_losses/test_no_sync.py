"""No host-device sync in the logit losses' steady-state step.

On CUDA every ``.item()``, ``bool(tensor)``, boolean-mask index, ... stalls
the GPU until its queue drains. These tests count such calls on the CPU
(tests/sync_counter.py) in KD / DKD / DIST (softmax and sigmoid, and softmax
with logit standardization) forward and backward, for ``(N, C)`` rows and dense ``(N, C, H, W)`` logits, with and
without ``ignore_index``: there must be none. The one sync by design, the
target-value check, runs on a module's first call only.
"""
import pytest
import torch

from mmkd.losses import (DISTLoss, DKDLoss, KDLoss, base, dist_loss_parts, dkd_loss_parts, kd_loss,
                         utils)
from tests.sync_counter import count_syncs

LOSSES = {
    'kd': lambda: KDLoss(tau=2.0),
    'kd_sigmoid': lambda: KDLoss(tau=2.0, use_sigmoid=True),
    'dkd': lambda: DKDLoss(alpha=1.0, beta=2.0, tau=2.0),
    'dist': lambda: DISTLoss(gamma=2.0, tau=2.0),
    'dist_sigmoid': lambda: DISTLoss(gamma=2.0, tau=2.0, use_sigmoid=True),
    # logit standardization (softmax only): the z-score's statistics too
    'kd_ls': lambda: KDLoss(tau=2.0, logit_standardize=True),
    'dkd_ls': lambda: DKDLoss(alpha=1.0, beta=2.0, tau=2.0, logit_standardize=True),
    'dist_ls': lambda: DISTLoss(gamma=2.0, tau=2.0, logit_standardize=True),
}
SHAPES = {'rows': (12, 7), 'dense': (2, 7, 5, 6)}
# (target given, ignore_index, rows set to 255)
IGNORE = {
    'no_target': (False, 255, None),
    'ignore_index_none': (True, None, None),
    'ignore_255_some_ignored': (True, 255, 'some'),
    'ignore_255_all_ignored': (True, 255, 'all'),
}
CASES = [(name, shape, ignore) for name in LOSSES for shape in SHAPES for ignore in IGNORE
         if not (name.startswith('dkd') and ignore == 'no_target')]  # DKD needs a target


def _inputs(shape, ignore):
    g = torch.Generator().manual_seed(0)
    student = torch.randn(shape, generator=g) * 3
    teacher = torch.randn(shape, generator=g) * 3
    has_target, ignore_index, ignored = IGNORE[ignore]
    target = torch.randint(0, shape[1], (shape[0], ) + shape[2:], generator=g)
    if ignored == 'some':
        target.view(-1)[::3] = 255
        target[0] = 255  # a whole image / row
    elif ignored == 'all':
        target.fill_(255)
    return student, teacher, target if has_target else None, ignore_index


def _extras(name, options, rows_shape):
    """(weight, avg_factor, reduction_override) of one option set."""
    if options == 'default':
        return None, None, None
    weight = torch.rand(rows_shape, generator=torch.Generator().manual_seed(1))
    # mmdet hands avg_factor over as a tensor at times: reading it must not sync
    avg_factor = torch.tensor(5.0)
    reduction = None if name.startswith('dist') else {'weighted': 'sum', 'none': 'none'}[options]
    return weight, avg_factor if options == 'weighted' else None, reduction


@pytest.mark.parametrize('options', ['default', 'weighted', 'none'])
@pytest.mark.parametrize('chunked', [False, True], ids=['one_chunk', 'chunked'])
@pytest.mark.parametrize('name,shape,ignore', CASES)
def test_steady_state_forward_and_backward_have_no_sync(monkeypatch, name, shape, ignore, chunked,
                                                        options):
    if chunked:  # several chunks; a dense image is cut along H*W too
        monkeypatch.setattr(utils, 'CHUNK_ELEMENTS', 7 * 4)
    student, teacher, target, ignore_index = _inputs(SHAPES[shape], ignore)
    weight, avg_factor, reduction = _extras(name, options, student.shape[:1] + student.shape[2:])
    loss = LOSSES[name]()
    loss.ignore_index = ignore_index
    loss(student, teacher, target)  # the first call checks the target's values
    student.requires_grad_()
    with count_syncs() as counter:
        parts = loss.forward_parts(student, teacher, target, weight, avg_factor, reduction)
        total = sum(value.sum() for value in parts.values())
        total.backward()
    assert counter.calls == [], counter.calls
    assert student.grad is not None and torch.isfinite(student.grad).all()
    if ignore == 'ignore_255_all_ignored':
        assert torch.count_nonzero(student.grad) == 0 and total.item() == 0


@pytest.mark.parametrize('standardize', [False, True], ids=['plain', 'ls'])
@pytest.mark.parametrize('name', ['kd', 'dkd', 'dist'])
def test_functional_losses_have_no_sync_without_the_target_check(name, standardize):
    student, teacher, target, _ = _inputs(SHAPES['dense'], 'ignore_255_some_ignored')
    fn = {'kd': kd_loss, 'dkd': dkd_loss_parts, 'dist': dist_loss_parts}[name]
    student.requires_grad_()
    with count_syncs() as counter:
        out = fn(student, teacher, target, check_target=False, logit_standardize=standardize)
        (out if name == 'kd' else out['loss']).backward()
    assert counter.calls == [], counter.calls
    with count_syncs() as counter:
        fn(student, teacher, target)  # checked by default: one sync
    assert len(counter.calls) == 1, counter.calls


@pytest.mark.parametrize('name', sorted(LOSSES))
def test_target_check_runs_on_the_first_call_only_unless_asked(monkeypatch, name):
    student, teacher, target, _ = _inputs(SHAPES['dense'], 'ignore_255_some_ignored')
    loss = LOSSES[name]()
    counts = []
    for _ in range(3):
        with count_syncs() as counter:
            loss(student, teacher, target)
        counts.append(len(counter.calls))
    assert counts == [1, 0, 0]
    monkeypatch.setattr(base, 'CHECK_TARGETS_EVERY_CALL', True)
    with count_syncs() as counter:
        loss(student, teacher, target)
    assert len(counter.calls) == 1


@pytest.mark.parametrize('name', sorted(LOSSES))
def test_out_of_range_target_raises_until_a_call_has_passed_the_check(monkeypatch, name):
    student, teacher, target, _ = _inputs(SHAPES['rows'], 'ignore_255_some_ignored')
    bad = target.clone()
    bad[1] = 7
    loss = LOSSES[name]()
    for _ in range(2):  # a failed check is not a passed one
        with pytest.raises(ValueError, match=r'target value 7 is outside \[0, 7\)'):
            loss(student, teacher, bad)
    loss(student, teacher, target)
    monkeypatch.setattr(base, 'CHECK_TARGETS_EVERY_CALL', True)  # the debug switch
    with pytest.raises(ValueError, match=r'target value 7 is outside \[0, 7\)'):
        loss(student, teacher, bad)
    # an ignored row may hold any label
    loss.ignore_index = 7
    loss(student, teacher, bad.masked_fill(bad == 255, 0))


# -- the counter itself --------------------------------------------------------------
def _names(counter):
    return [call.split(' at ')[0] for call in counter.calls]


def test_counter_counts_deliberate_syncs_with_their_location():
    x = torch.randn(4, 5)
    with count_syncs() as counter:
        x[x > 0]
        x.sum().item()
        bool(x.any())
        int(x.argmax())
        float(x.max())
        x.tolist()
        x.nonzero()
        torch.unique(x)
        x.cpu()
        x.to('cpu')
        torch.where(x > 0)
        x.masked_select(x > 0)
        y = x.clone()
        y[y > 0] = 0
        y[0, x[0] > 0] += 1
        torch.equal(x, y)
    assert _names(counter) == [
        '__getitem__ with a bool mask', 'item', 'bool', 'int', 'float', 'tolist', 'nonzero',
        'unique', 'cpu', "to('cpu')", 'where(condition)', 'masked_select',
        '__setitem__ with a bool mask', '__getitem__ with a bool mask',
        '__setitem__ with a bool mask', 'equal'
    ]
    assert all('test_no_sync.py:' in call for call in counter.calls), counter.calls


def test_counter_ignores_sync_free_ops():
    x = torch.randn(4, 5, requires_grad=True)
    index = torch.tensor([0, 2])
    with count_syncs() as counter:
        y = (x * 2).masked_fill(x.detach() > 0, 0) + torch.where(x > 0, x, -x)
        y = y[0] + y[:, 1].sum() + y[index].sum(0) + y.gather(1, index.expand(4, 2)).sum()
        y = y.to(torch.float64).clamp(min=1)
        y.sum().backward()
        x.shape, x.dtype, x.device, x.numel()
    assert counter.calls == [], counter.calls


def test_counter_sees_syncs_in_backward():

    class ItemInBackward(torch.autograd.Function):

        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            grad.sum().item()
            return grad * 2

    x = torch.randn(3, requires_grad=True)
    with count_syncs() as counter:
        y = ItemInBackward.apply(x)
        assert counter.calls == []
        y.sum().backward()
    assert _names(counter) == ['item/bool/int/float in backward'], counter.calls
    assert 'test_no_sync.py:' in counter.calls[0]  # the line in backward
    with count_syncs() as counter:  # autograd's own backward of a masked index
        x[x.detach() > 0].sum().backward()
    assert _names(counter) == ['__getitem__ with a bool mask',
                               'index_put with a bool mask in backward'], counter.calls
