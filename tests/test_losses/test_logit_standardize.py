"""Logit standardization (Sun et al., CVPR 2024) on KD, DKD and DIST.

* fidelity: the authors' own ``kd_loss`` / ``dkd_loss`` (run from a fetched
  copy, tests/helpers/official_ls.py) equal ours in float64, loss and
  gradient, to 1e-9 relative;
* the paper's formulas in numpy (tests/test_losses/reference.py), rows and
  dense, ignored rows, several chunks; gradients by finite differences;
* hand-derived properties: invariance to adding a constant to a row and to
  scaling it, KD = TCKD + (1 - p_g^t) NCKD on the standardized scores;
* ``logit_standardize=False`` is bit for bit the code before this option
  existed (run from that commit in a child process);
* refusals: with ``use_sigmoid``, with a single class.
"""
import os
import subprocess
import sys
import tarfile
import warnings

import numpy as np
import pytest
import torch

from mmkd.losses import DISTLoss, DKDLoss, KDLoss, dist_loss_parts, kd_loss, utils
from tests.helpers.official_ls import official_dkd_loss, official_kd_loss
from tests.test_losses import reference as ref
from tests.test_losses.ls_off_cases import compute_all

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: The last commit before ``logit_standardize`` (its parent commit).
PRE_LS_COMMIT = 'c6064189739b81ebc29ea0b0a0f6927481be2ba1'


def _logits(shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    # Means and spreads that differ per row, so the z-score has work to do.
    scale = torch.rand(shape[:1] + (1, ) + shape[2:], generator=g, dtype=dtype) * 4 + 0.5
    offset = torch.randn(shape[:1] + (1, ) + shape[2:], generator=g, dtype=dtype) * 5
    student = torch.randn(shape, generator=g, dtype=dtype) * scale + offset
    teacher = torch.randn(shape, generator=g, dtype=dtype) * 3 - offset
    target = torch.randint(0, shape[1], (shape[0], ) + shape[2:], generator=g)
    return student, teacher, target


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize('tau', [1.0, 2.0, 4.0])
@pytest.mark.parametrize('num_classes', [2, 10, 100])
def test_equals_the_official_kd_and_dkd_in_float64(tau, num_classes):
    official_kd, official_dkd = official_kd_loss(), official_dkd_loss()
    student, teacher, target = _logits((64, num_classes), seed=num_classes)
    student.requires_grad_()
    ours = {
        'kd': KDLoss(tau=tau, logit_standardize=True)(student, teacher),
        'dkd': DKDLoss(alpha=1.0, beta=8.0, tau=tau, logit_standardize=True)(student, teacher,
                                                                             target),
    }
    with warnings.catch_warnings():  # their DKD passes the deprecated size_average
        warnings.simplefilter('ignore', UserWarning)
        theirs = {
            'kd': official_kd(student, teacher, tau, True),
            'dkd': official_dkd(student, teacher, target, 1.0, 8.0, tau, True),
        }
    for name in ours:
        assert _rel(ours[name], theirs[name]) <= 1e-9, name
        if num_classes == 2:
            # Two z-scored classes are +-1/sqrt(2) whatever the logits: the
            # loss is flat up to the 1e-7 and its gradient (~1e-11) is
            # rounding noise on both sides, nothing to compare.
            continue
        ga, = torch.autograd.grad(ours[name], student)
        gb, = torch.autograd.grad(theirs[name], student)
        assert _rel(ga, gb) <= 1e-9, name


def _ref_rows(s, t, y):
    """(M, C) numpy rows of the kept positions of (N, C, ...) logits."""
    c = s.shape[1]
    s = np.moveaxis(s.detach().numpy(), 1, -1).reshape(-1, c)
    t = np.moveaxis(t.numpy(), 1, -1).reshape(-1, c)
    y = y.reshape(-1).numpy()
    keep = y != 255
    return ref.zscore(s[keep]), ref.zscore(t[keep]), y[keep]


@pytest.mark.parametrize('chunk', [1 << 20, 7 * 4], ids=['one_chunk', 'chunked'])
@pytest.mark.parametrize('shape', [(12, 7), (2, 7, 5, 6)], ids=['rows', 'dense'])
def test_matches_the_paper_formulas_with_ignored_rows(monkeypatch, shape, chunk):
    monkeypatch.setattr(utils, 'CHUNK_ELEMENTS', chunk)
    student, teacher, target = _logits(shape)
    target.view(-1)[::4] = 255
    zs, zt, y = _ref_rows(student, teacher, target)
    tau = 2.0
    kd = KDLoss(tau=tau, logit_standardize=True)(student, teacher, target)
    np.testing.assert_allclose(kd.item(), np.mean([ref.kd_row(a, b, tau) for a, b in zip(zs, zt)]),
                               rtol=1e-10)
    parts = DKDLoss(alpha=1.0, beta=2.0, tau=tau, logit_standardize=True).forward_parts(
        student, teacher, target)
    tn = np.array([ref.tckd_nckd_row(a, b, g, tau) for a, b, g in zip(zs, zt, y)]).mean(0)
    np.testing.assert_allclose([parts['tckd'].item(), parts['nckd'].item()], tn, rtol=1e-10)
    dist = DISTLoss(tau=tau, logit_standardize=True).forward_parts(student, teacher, target)
    np.testing.assert_allclose([dist['inter'].item(), dist['intra'].item()],
                               ref.dist_terms(zs, zt, tau), rtol=1e-9)


@pytest.mark.parametrize('chunk', [1 << 20, 7 * 4], ids=['one_chunk', 'chunked'])
@pytest.mark.parametrize('shape', [(6, 7), (2, 7, 2, 3)], ids=['rows', 'dense'])
@pytest.mark.parametrize('name', ['kd', 'dkd', 'dist'])
def test_gradient_matches_finite_differences(monkeypatch, name, shape, chunk):
    monkeypatch.setattr(utils, 'CHUNK_ELEMENTS', chunk)
    student, teacher, target = _logits(shape, seed=3)
    target.view(-1)[::5] = 255
    loss = {
        'kd': KDLoss(tau=2.0, logit_standardize=True),
        'dkd': DKDLoss(alpha=1.0, beta=2.0, tau=2.0, logit_standardize=True),
        'dist': DISTLoss(gamma=2.0, tau=2.0, logit_standardize=True),
    }[name]
    weight = torch.rand(target.shape, generator=torch.Generator().manual_seed(1),
                        dtype=torch.float64)
    loss(student, teacher, target)  # the first call's target check
    assert torch.autograd.gradcheck(
        lambda s: sum(v.sum() for v in loss.forward_parts(s, teacher, target, weight).values()),
        (student.requires_grad_(), ))


@pytest.mark.parametrize('name', ['kd', 'dkd', 'dist'])
@pytest.mark.parametrize('side', ['student', 'teacher'])
def test_invariant_to_shifting_and_scaling_a_row(name, side):
    loss = {
        'kd': KDLoss(tau=2.0, logit_standardize=True),
        'dkd': DKDLoss(alpha=1.0, beta=2.0, tau=2.0, logit_standardize=True),
        'dist': DISTLoss(gamma=2.0, tau=2.0, logit_standardize=True),
    }[name]
    student, teacher, target = _logits((8, 10), seed=5)
    base = loss.forward_parts(student, teacher, target)
    moved = {'student': student.clone(), 'teacher': teacher.clone()}
    moved[side][2] += 37.5  # a constant added to one row
    moved[side][5] *= 6.0  # one row scaled by a positive factor
    other = loss.forward_parts(moved['student'], moved['teacher'], target)
    for key in base:
        # Exact in real numbers but for the 1e-7 added to the std: a scaled
        # row's z-score moves by about 1e-7 relative.
        torch.testing.assert_close(other[key], base[key], rtol=1e-6, atol=1e-12)
    unscaled = KDLoss(tau=2.0)
    assert not torch.allclose(unscaled(moved['student'], moved['teacher']),
                              unscaled(student, teacher))


def test_shifted_student_row_has_the_same_gradient():
    student, teacher, target = _logits((8, 10), seed=6)
    for loss in (KDLoss(tau=2.0, logit_standardize=True),
                 DKDLoss(alpha=1.0, beta=2.0, tau=2.0, logit_standardize=True),
                 DISTLoss(tau=2.0, logit_standardize=True)):
        grads = []
        for shift in (0.0, 25.0):
            s = (student + shift).requires_grad_()
            loss(s, teacher, target).backward()
            grads.append(s.grad)
        torch.testing.assert_close(grads[1], grads[0], rtol=1e-9, atol=1e-12)


def test_kd_decomposes_into_tckd_and_nckd_on_standardized_scores():
    student, teacher, target = _logits((16, 9), seed=7)
    tau = 2.0
    kd = KDLoss(tau=tau, reduction='none', logit_standardize=True)(student, teacher)
    parts = DKDLoss(tau=tau, reduction='none', logit_standardize=True).forward_parts(
        student, teacher, target)
    zt = torch.from_numpy(ref.zscore(teacher.numpy()))
    p_g = torch.softmax(zt / tau, 1).gather(1, target.unsqueeze(1)).squeeze(1)
    torch.testing.assert_close(kd, parts['tckd'] + (1 - p_g) * parts['nckd'], rtol=1e-12,
                               atol=1e-14)


def test_constant_row_has_a_finite_gradient():
    student, teacher, target = _logits((4, 6), seed=8)
    student[1] = 3.0  # std 0: the z-score is 0 (autograd through torch.std gives NaN)
    student.requires_grad_()
    for loss in (KDLoss(logit_standardize=True), DKDLoss(logit_standardize=True),
                 DISTLoss(logit_standardize=True)):
        student.grad = None
        loss(student, teacher, target).backward()
        assert torch.isfinite(student.grad).all()


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_logits_agree_with_float64(dtype):
    student, teacher, target = _logits((2, 19, 6, 5), seed=9)
    for loss in (KDLoss(tau=2.0, logit_standardize=True),
                 DKDLoss(tau=2.0, beta=2.0, logit_standardize=True),
                 DISTLoss(tau=2.0, logit_standardize=True)):
        exact = student.clone().requires_grad_()
        low = student.to(dtype).requires_grad_()
        loss(exact, teacher, target).backward()
        value = loss(low, teacher.to(dtype), target)
        value.backward()
        assert value.dtype == torch.float32 and low.grad.dtype == dtype
        expected = loss(exact.detach().to(dtype).double(), teacher.to(dtype).double(), target)
        torch.testing.assert_close(value.double(), expected, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(low.grad.double(), exact.grad, rtol=0.1, atol=2e-2 * float(
            exact.grad.abs().max()))


def test_refused_with_sigmoids_and_with_one_class():
    for make in (lambda: KDLoss(use_sigmoid=True, logit_standardize=True),
                 lambda: DISTLoss(use_sigmoid=True, logit_standardize=True)):
        with pytest.raises(ValueError, match='softmax.*sigmoid'):
            make()
    s, t = torch.randn(3, 4), torch.randn(3, 4)
    with pytest.raises(ValueError, match='softmax.*sigmoid'):
        kd_loss(s, t, use_sigmoid=True, logit_standardize=True)
    with pytest.raises(ValueError, match='softmax.*sigmoid'):
        dist_loss_parts(s, t, use_sigmoid=True, logit_standardize=True)
    with pytest.raises(ValueError, match='at least 2 classes'):
        KDLoss(logit_standardize=True)(torch.randn(3, 1), torch.randn(3, 1))
    assert 'logit_standardize=True' in repr(DKDLoss(logit_standardize=True))


def test_off_is_bit_identical_to_the_code_before_the_option(tmp_path):
    old = tmp_path / 'pre_ls'
    archive = subprocess.run(['git', '-C', ROOT, 'archive', '--format=tar', PRE_LS_COMMIT, 'mmkd'],
                             capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f'commit {PRE_LS_COMMIT} (before logit_standardize) is not in this checkout\'s '
                    f'git history: {archive.stderr.decode().strip()}')
    (tmp_path / 'pre_ls.tar').write_bytes(archive.stdout)
    with tarfile.open(tmp_path / 'pre_ls.tar') as tar:
        tar.extractall(old, filter='data')
    out = tmp_path / 'old.pt'
    script = (f'import sys; sys.path[:0] = [{str(old)!r}, {ROOT!r}]; import torch, mmkd; '
              f'assert mmkd.__file__.startswith({str(old)!r}), mmkd.__file__; '
              'from tests.test_losses.ls_off_cases import compute_all; '
              f'torch.save(compute_all(), {str(out)!r})')
    subprocess.run([sys.executable, '-c', script], check=True, cwd=tmp_path)
    before = torch.load(out)
    now = compute_all(logit_standardize=False)
    assert sorted(now) == sorted(before)
    for key in now:
        assert torch.equal(now[key], before[key]), key
