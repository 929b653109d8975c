import numpy as np
import pytest

from mmkd.analysis import correlation_difference


def test_identical_logits_have_no_gap_and_known_matrices_differ_as_computed_by_hand():
    x = np.random.randn(50, 5)
    assert np.abs(correlation_difference(x, x.copy())).max() < 1e-12
    # teacher: class 1 = class 0 (corr 1); student: class 1 = -class 0 (corr -1)
    a = np.random.randn(40)
    t = np.stack([a, a, np.random.randn(40)], 1)
    s = np.stack([a, -a, t[:, 2]], 1)
    diff = correlation_difference(t, s)
    assert diff[0, 1] == pytest.approx(2.0) and diff[1, 0] == pytest.approx(2.0)
    assert diff[0, 2] == pytest.approx(0.0, abs=1e-12) and diff[2, 2] == pytest.approx(0.0)


def test_constant_class_counts_as_uncorrelated_and_bad_input_raises():
    t = np.random.randn(10, 3)
    s = t.copy()
    s[:, 2] = 1.0  # never varies: no NaN, correlation taken as 0
    diff = correlation_difference(t, s)
    assert np.isfinite(diff).all()
    assert diff[0, 2] == pytest.approx(np.corrcoef(t, rowvar=False)[0, 2])
    with pytest.raises(ValueError, match='shapes differ'):
        correlation_difference(t, t[:, :2])
    with pytest.raises(ValueError, match='two boxes'):
        correlation_difference(t[:1], t[:1])
