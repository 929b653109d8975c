"""Straight-from-the-paper float64 numpy formulas the tests compare against.

Written per row with explicit divisions, one-hot selections and np.corrcoef,
deliberately unlike mmkd's fused implementation.
"""
import numpy as np


def softmax(z, tau):
    z = np.asarray(z, dtype=np.float64) / tau
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def kl(p, q):
    p = np.asarray(p)
    q = np.asarray(q)
    nz = p > 0
    return float((p[nz] * (np.log(p[nz]) - np.log(q[nz]))).sum())


def kd_row(zs, zt, tau):
    return tau**2 * kl(softmax(zt, tau), softmax(zs, tau))


def tckd_nckd_row(zs, zt, g, tau):
    """(TCKD, NCKD) of one row by the DKD paper's definitions."""
    ps, pt = softmax(zs, tau), softmax(zt, tau)
    bs = np.array([ps[g], 1 - ps[g]])
    bt = np.array([pt[g], 1 - pt[g]])
    others = [j for j in range(len(zs)) if j != g]
    # p_hat_j = p_j / (1 - p_g) = exp(z_j / T) / sum_{k != g} exp(z_k / T): the
    # right-hand form, so 1 - p_g never cancels in float64.
    hat_s = softmax(np.asarray(zs, dtype=np.float64)[others], tau)
    hat_t = softmax(np.asarray(zt, dtype=np.float64)[others], tau)
    return tau**2 * kl(bt, bs), tau**2 * kl(hat_t, hat_s)


def pearson_distance(u, v, eps=1e-8):
    """1 - Pearson correlation, with DIST's eps in the norm product."""
    u = np.asarray(u, np.float64) - np.mean(u)
    v = np.asarray(v, np.float64) - np.mean(v)
    return 1.0 - (u * v).sum() / (np.sqrt((u * u).sum()) * np.sqrt((v * v).sum()) + eps)


def dist_terms(zs, zt, tau):
    """(inter, intra) of DIST on (M, C) logits."""
    ys, yt = softmax(zs, tau), softmax(zt, tau)
    inter = np.mean([pearson_distance(ys[i], yt[i]) for i in range(len(ys))])
    intra = np.mean([pearson_distance(ys[:, j], yt[:, j]) for j in range(ys.shape[1])])
    return inter, intra


def zscore(z, eps=1e-7):
    """Logit standardization (Sun et al., CVPR 2024) of each row of ``z``
    (last axis): ``(z - mean) / (std + eps)``, std with ``ddof=1``."""
    z = np.asarray(z, dtype=np.float64)
    mean = z.mean(-1, keepdims=True)
    return (z - mean) / (z.std(-1, ddof=1, keepdims=True) + eps)
