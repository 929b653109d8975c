"""Seeded KD / DKD / DIST results, for the check that ``logit_standardize=False``
is bit-identical to the losses before logit standardization existed.

It uses only the API both versions share, so a child process can run it
against the older ``mmkd`` (tests/test_losses/test_logit_standardize.py).
"""
from typing import Dict

import torch

from mmkd.losses import DISTLoss, DKDLoss, KDLoss, utils

SHAPES = {'rows': (12, 7), 'dense': (2, 7, 5, 6)}
LOSSES = {
    'kd': lambda **kw: KDLoss(tau=2.0, **kw),
    'kd_sigmoid': lambda **kw: KDLoss(tau=2.0, use_sigmoid=True, **kw),
    'dkd': lambda **kw: DKDLoss(alpha=1.0, beta=2.0, tau=2.0, **kw),
    'dist': lambda **kw: DISTLoss(gamma=2.0, tau=2.0, **kw),
    'dist_sigmoid': lambda **kw: DISTLoss(tau=2.0, use_sigmoid=True, **kw),
}


def compute_all(**options) -> Dict[str, torch.Tensor]:
    """Every loss's terms and student gradient on seeded inputs (rows and
    dense, some rows ignored, float32 and float64, one chunk and several),
    with ``options`` passed to each loss's constructor."""
    out = {}
    default_chunk = utils.CHUNK_ELEMENTS
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same reduction order in every process
    try:
        for chunk in (default_chunk, 7 * 4):
            utils.CHUNK_ELEMENTS = chunk
            for shape_name, shape in SHAPES.items():
                for dtype in (torch.float32, torch.float64):
                    g = torch.Generator().manual_seed(0)
                    student = (torch.randn(shape, generator=g, dtype=dtype) * 3).requires_grad_()
                    teacher = torch.randn(shape, generator=g, dtype=dtype) * 3
                    target = torch.randint(0, shape[1], (shape[0], ) + shape[2:], generator=g)
                    target.view(-1)[::3] = 255
                    for name, make in LOSSES.items():
                        key = f'{name}/{shape_name}/{dtype}/{chunk}'
                        parts = make(**options).forward_parts(student, teacher, target)
                        grad, = torch.autograd.grad(sum(v.sum() for v in parts.values()), student)
                        out.update({f'{key}/{k}': v.detach() for k, v in parts.items()})
                        out[f'{key}/grad'] = grad
    finally:
        utils.CHUNK_ELEMENTS = default_chunk
        torch.set_num_threads(threads)
    return out
