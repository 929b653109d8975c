"""mmkd's KD / DKD / DIST against the straightforward paper formulation.

Dense logits (8, 19, 128, 256), 10% of pixels ignored, forward + backward on
the CPU. The straightforward side does what the reference code does:
permute to (pixels, classes), drop ignored rows by boolean indexing, one-hot
masks, the "-1000 on the target logit" trick for DKD, full-size temporaries,
autograd through all of it. mmkd's side is the loss module, as a distiller
calls it, in its steady state: its first call (the equality check, or a
no-grad call in the child) has checked the target values, the one step that
waits for the device. Both sides are checked equal (loss and gradient)
first. Time: median over interleaved rounds in this process. Peak memory: each
side runs once more in a fresh child process that reports its peak resident
memory above what its inputs already used.

``--logit-standardize``: both sides z-score each row first (Sun et al., CVPR
2024), the straightforward side as the authors' code does (``(z - mean) /
(std + 1e-7)`` on the kept rows, autograd through it), mmkd's with
``logit_standardize=True``.

    python bench/losses.py [--rounds 7] [--shape 8 19 128 256] [--logit-standardize]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from mmkd.losses import DISTLoss, DKDLoss, KDLoss  # noqa: E402

TAU, ALPHA, BETA = 1.0, 1.0, 0.25


#: Whether both sides standardize the logits (``--logit-standardize``).
STANDARDIZE = False


def standardize(z):
    """The authors' z-score of each row (their ``normalize``)."""
    return (z - z.mean(1, keepdim=True)) / (1e-7 + z.std(1, keepdim=True))


def rows(s, t, target):
    c = s.shape[1]
    keep = target.reshape(-1) != 255
    s = s.permute(0, 2, 3, 1).reshape(-1, c)[keep]
    t = t.permute(0, 2, 3, 1).reshape(-1, c)[keep]
    if STANDARDIZE:
        s, t = standardize(s), standardize(t)
    return s, t, target.reshape(-1)[keep]


def kd_paper(s, t, target):
    s, t, _ = rows(s, t, target)
    log_ps = F.log_softmax(s / TAU, dim=1)
    pt = F.softmax(t / TAU, dim=1)
    return F.kl_div(log_ps, pt, reduction='none').sum(1).mean() * TAU**2


def dkd_paper(s, t, target):
    s, t, y = rows(s, t, target)
    gt = torch.zeros_like(s).scatter_(1, y.unsqueeze(1), 1).bool()
    other = torch.ones_like(s).scatter_(1, y.unsqueeze(1), 0).bool()
    ps, pt = F.softmax(s / TAU, dim=1), F.softmax(t / TAU, dim=1)
    bs = torch.cat([(ps * gt).sum(1, keepdim=True), (ps * other).sum(1, keepdim=True)], 1)
    bt = torch.cat([(pt * gt).sum(1, keepdim=True), (pt * other).sum(1, keepdim=True)], 1)
    tckd = F.kl_div(torch.log(bs), bt, reduction='sum') * TAU**2 / y.shape[0]
    hat_t = F.softmax(t / TAU - 1000.0 * gt, dim=1)
    log_hat_s = F.log_softmax(s / TAU - 1000.0 * gt, dim=1)
    nckd = F.kl_div(log_hat_s, hat_t, reduction='sum') * TAU**2 / y.shape[0]
    return ALPHA * tckd + BETA * nckd


def _pearson(a, b, eps=1e-8):
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def dist_paper(s, t, target):
    s, t, _ = rows(s, t, target)
    ys, yt = F.softmax(s / TAU, dim=1), F.softmax(t / TAU, dim=1)
    inter = 1 - _pearson(ys, yt).mean()
    intra = 1 - _pearson(ys.transpose(0, 1), yt.transpose(0, 1)).mean()
    return TAU**2 * (inter + intra)


def methods(ls: bool = False):
    """name -> (mmkd's loss module, the straightforward formulation)."""
    return {
        'KD': (KDLoss(tau=TAU, logit_standardize=ls), kd_paper),
        'DKD': (DKDLoss(alpha=ALPHA, beta=BETA, tau=TAU, logit_standardize=ls), dkd_paper),
        'DIST': (DISTLoss(tau=TAU, logit_standardize=ls), dist_paper),
    }


METHODS = methods()


def make_inputs(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = (torch.randn(*shape, generator=g) * 2).requires_grad_()
    t = torch.randn(*shape, generator=g) * 2
    n, c, h, w = shape
    target = torch.randint(0, c, (n, h, w), generator=g)
    target[torch.rand(n, h, w, generator=g) < 0.1] = 255
    return s, t, target


def step(fn, s, t, y):
    s.grad = None
    fn(s, t, y).backward()


def rss_kib(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(field)


def child(method, side, shape):
    """Peak resident memory of one fwd+bwd above the inputs, in MiB."""
    s, t, y = make_inputs(shape)
    fn = METHODS[method][0 if side == 'mmkd' else 1]
    if side == 'mmkd':
        with torch.no_grad():
            fn(s, t, y)  # the module's first call checks the targets
    s.grad = torch.zeros_like(s)  # both sides end holding a gradient; count it as input
    s.grad = None
    base = rss_kib('VmRSS')
    with open('/proc/self/clear_refs', 'w') as f:  # reset VmHWM to the current RSS
        f.write('5')
    step(fn, s, t, y)
    print(json.dumps({'peak_mib': (rss_kib('VmHWM') - base) / 1024}))


def peak_mib(method, side, shape):
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536', MALLOC_TRIM_THRESHOLD_='0')
    flags = ['--logit-standardize'] if STANDARDIZE else []
    out = subprocess.run([sys.executable, __file__, '--child', method, side, '--shape',
                          *map(str, shape), *flags], env=env, check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])['peak_mib']


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--shape', type=int, nargs=4, default=[8, 19, 128, 256])
    parser.add_argument('--logit-standardize', action='store_true',
                        help='z-score each row of logits first, on both sides')
    parser.add_argument('--child', nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    global STANDARDIZE, METHODS
    STANDARDIZE = args.logit_standardize
    METHODS = methods(STANDARDIZE)
    if args.child:
        return child(*args.child, args.shape)

    s, t, y = make_inputs(args.shape)
    print(f'logits {tuple(args.shape)}, tau={TAU}, {torch.get_num_threads()} threads, '
          f'torch {torch.__version__}; forward + backward'
          f'{"; logit standardization on both sides" if STANDARDIZE else ""}')
    # Timings assume an otherwise idle machine: other busy processes make every
    # multi-threaded op wait for a core, which penalises the side issuing more ops.
    print('load average before: {:.2f} {:.2f} {:.2f}'.format(*os.getloadavg()))
    results = []
    for name, (ours, paper) in METHODS.items():
        la, lb = ours(s, t, y), paper(s, t, y)
        ga, gb = torch.autograd.grad(la, s)[0], torch.autograd.grad(lb, s)[0]
        torch.testing.assert_close(la, lb, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(ga, gb, rtol=1e-3, atol=1e-9)
        times = {'mmkd': [], 'paper': []}
        for _ in range(args.rounds):
            for side, fn in (('mmkd', ours), ('paper', paper)):
                start = time.perf_counter()
                step(fn, s, t, y)
                times[side].append(time.perf_counter() - start)
        t_ours, t_paper = statistics.median(times['mmkd']), statistics.median(times['paper'])
        m_ours, m_paper = peak_mib(name, 'mmkd', args.shape), peak_mib(name, 'paper', args.shape)
        results.append((name, t_ours, t_paper, m_ours, m_paper))

    print(f'{"loss":<6}{"mmkd ms":>10}{"paper ms":>10}{"time x":>8}'
          f'{"mmkd MiB":>10}{"paper MiB":>11}{"memory x":>10}')
    for name, t_ours, t_paper, m_ours, m_paper in results:
        print(f'{name:<6}{t_ours * 1e3:>10.1f}{t_paper * 1e3:>10.1f}{t_ours / t_paper:>8.2f}'
              f'{m_ours:>10.1f}{m_paper:>11.1f}{m_ours / m_paper:>10.2f}')
    print('targets: time x <= 0.60, memory x <= 0.50 (values checked equal first)')


if __name__ == '__main__':
    main()
