"""Cost of detection distillation per training step, on the CPU.

R50-FPN Faster R-CNN teacher -> R18-FPN Faster R-CNN student (mmdet's full
model: 256-channel FPN, 512 sampled RoIs per image), 2 images of 320x320,
DKD on the RoI logits. Measured side by side, in interleaved rounds (median):

  (a) the student's own training step (mmdet loss, backward, SGD step);
  (b) the teacher's forward as the distiller runs it: backbone + neck + RoI
      box head on the student's sampled RoIs, under no_grad;
  (c) the distilled training step.

Prints (c - a) / b: 1.0 means distillation adds exactly the teacher's forward
(target <= 1.10), plus the peak memory of (a) and (c), each measured in a
fresh child process. The three arms are timed under one steady glibc malloc
setting (bench/allocator.py says why); ``--glibc-defaults`` times them with
glibc's defaults.

``--model retinanet``: RetinaNet R50-FPN teacher -> R18-FPN student (mmdet's
full heads: 9 anchors per location, 80 sigmoid classes), 2 images of 512x512,
DIST (use_sigmoid) over all priors through mmkd.DenseDistiller; (b) is the
teacher's backbone + neck + head forward. It also prints the DIST loss's own
peak memory (forward + backward) beside the straightforward autograd
formulation (DIST's reference code on sigmoids), on this batch's prior logits
and on a COCO-sized batch (2 x 1333x800: ~120k anchors x 80 classes per image).

    python bench/det_step.py [--rounds 5] [--size 320]
    python bench/det_step.py --model retinanet [--rounds 3] [--size 512]

``--model dino``: DINO R50 4-scale teacher -> DINO R18 4-scale student
(mmdet's full models: 900 queries, 6 encoder and 6 decoder layers, 80
sigmoid classes, denoising in the student), 2 images of 320x320, DIST
(use_sigmoid) on the matching queries through mmkd.QueryDistiller; (b) is the
teacher decoding the student's reference boxes (``run_teacher`` on what one
recorded student forward hands it: backbone, neck, encoder, decoder, class
branch; no top-k, denoising, matcher or loss).

    python bench/det_step.py --model dino [--rounds 3] [--size 320]
"""
import argparse
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))
sys.path.insert(0, HERE)
from allocator import describe, use_steady_allocator  # noqa: E402
from peak_memory import peak_mib, report_peak  # noqa: E402


def faster_rcnn(depth: int) -> dict:
    from mmengine.hub import get_config
    cfg = get_config('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py').model
    cfg.backbone.update(depth=depth, init_cfg=None)
    if depth in (18, 34):
        cfg.neck.in_channels = [64, 128, 256, 512]
    return cfg


def retinanet(depth: int) -> dict:
    from mmengine.hub import get_config
    cfg = get_config('mmdet::retinanet/retinanet_r50_fpn_1x_coco.py').model
    cfg.backbone.update(depth=depth, init_cfg=None)
    if depth in (18, 34):
        cfg.neck.in_channels = [64, 128, 256, 512]
    return cfg


def dino(depth: int) -> dict:
    from mmengine.hub import get_config
    cfg = get_config('mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py').model
    cfg.backbone.update(depth=depth, init_cfg=None)
    if depth in (18, 34):
        cfg.neck.in_channels = [128, 256, 512]
    return cfg


def build_distiller(cfg: dict, size: int):
    """The distiller of ``cfg`` (seed 0, initialised, in train mode), a
    preprocessed batch of 2 images of ``size`` x ``size`` and an SGD optimizer."""
    import mmkd  # noqa: F401
    from mmdet.testing import demo_mm_inputs
    from mmkd.registry import MODELS
    torch.manual_seed(0)
    distiller = MODELS.build(cfg)
    distiller.init_weights()
    distiller.train()
    packed = demo_mm_inputs(2, [[3, size, size]] * 2, num_items=[5, 5], num_classes=80)
    data = distiller.data_preprocessor(packed, True)
    optimizer = torch.optim.SGD(distiller.parameters(), lr=1e-4, momentum=0.9)
    return distiller, data['inputs'], data['data_samples'], optimizer


def train_steps(distiller, inputs, samples, optimizer, teacher_forward) -> dict:
    """The timed steps: (a) the student's own training step, (b) the
    teacher's forward as the distiller runs it, (c) the distilled step. A
    training step sums its losses as the model's own ``parse_losses`` does
    (mmengine's: every ``loss`` key, lists such as the RPN's per-level terms
    included; the distiller's adds its own bookkeeping), as mmengine's
    ``train_step`` does."""
    def train_step(model):
        optimizer.zero_grad()
        loss, _ = model.parse_losses(model.loss(inputs, samples))
        loss.backward()
        optimizer.step()

    return dict(student=lambda: train_step(distiller.student), teacher=teacher_forward,
                distilled=lambda: train_step(distiller))


def build_query(size: int):
    return build_distiller(dict(
        type='mmkd.QueryDistiller', student=dino(18), teacher=dino(50),
        distill_losses=dict(loss_dist=dict(type='mmkd.DISTLoss', use_sigmoid=True))), size)


def make_query_steps(size: int):
    from mmkd.models.capture import CallRecorder
    distiller, inputs, samples, optimizer = build_query(size)
    with CallRecorder(distiller.capture_points()) as calls:  # one student forward, recorded
        distiller.student_loss(inputs, samples)
    student_side = distiller.read_student(calls, inputs, samples)

    def teacher_forward():  # what the distiller runs: the teacher on the student's boxes
        distiller.run_teacher(inputs, student_side)

    return train_steps(distiller, inputs, samples, optimizer, teacher_forward)


def build_dense(size: int):
    return build_distiller(dict(
        type='mmkd.DenseDistiller', student=retinanet(18), teacher=retinanet(50),
        distill_losses=dict(loss_dist=dict(type='mmkd.DISTLoss', use_sigmoid=True))), size)


def build(size: int):
    return build_distiller(dict(
        type='mmkd.DetectionDistiller', student=faster_rcnn(18), teacher=faster_rcnn(50),
        distill_losses=dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.25,
                                          tau=1.0))), size)


def prior_shape(size_hw, images: int = 2, anchors: int = 9, classes: int = 80):
    """RetinaNet's prior logits as DenseDistiller lays them out: (B*A, C, sum H*W)."""
    h, w = -(-size_hw[0] // 8), -(-size_hw[1] // 8)  # P3; each level halves, rounding up
    positions = 0
    for _ in range(5):  # P3-P7
        positions += h * w
        h, w = -(-h // 2), -(-w // 2)
    return images * anchors, classes, positions


def loss_step(shape, naive: bool):
    """DIST (sigmoid) forward + backward on random prior logits of ``shape``."""
    from mmkd.losses import dist_loss
    torch.manual_seed(0)
    student = (torch.randn(shape) * 3 - 4).requires_grad_()
    teacher = torch.randn(shape) * 3 - 4

    def straightforward():  # DIST's reference code, use_sigmoid, full temporaries
        c = shape[1]
        ys = student.sigmoid().transpose(1, 2).reshape(-1, c)
        yt = teacher.sigmoid().transpose(1, 2).reshape(-1, c)

        def pearson(a, b):
            a = a - a.mean(1, keepdim=True)
            b = b - b.mean(1, keepdim=True)
            return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-8)

        return (1 - pearson(ys, yt).mean()) + (1 - pearson(ys.t(), yt.t()).mean())

    def step():
        loss = straightforward() if naive else dist_loss(student, teacher, use_sigmoid=True)
        loss.backward()
        student.grad = None

    return step


def make_steps(size: int, model: str = 'faster_rcnn'):
    if model == 'retinanet':
        return make_dense_steps(size)
    if model == 'dino':
        return make_query_steps(size)
    from mmdet.structures.bbox import bbox2roi
    distiller, inputs, samples, optimizer = build(size)
    rois = bbox2roi([torch.rand(512, 4).sort(1).values * size for _ in range(2)])

    def teacher_forward():  # what the distiller runs: the teacher on the student's RoIs
        distiller.run_teacher(inputs, dict(rois=rois))

    return train_steps(distiller, inputs, samples, optimizer, teacher_forward)


def make_dense_steps(size: int):
    distiller, inputs, samples, optimizer = build_dense(size)
    teacher = distiller.teacher

    def teacher_forward():
        with torch.no_grad():
            teacher.bbox_head(teacher.extract_feat(inputs))

    steps = train_steps(distiller, inputs, samples, optimizer, teacher_forward)
    for name, hw in (('batch', (size, size)), ('coco', (800, 1333))):
        steps[f'loss_{name}'] = loss_step(prior_shape(hw), naive=False)
        steps[f'naive_{name}'] = loss_step(prior_shape(hw), naive=True)
    return steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--size', type=int, default=None, help='320 (faster_rcnn), 512 (retinanet)')
    parser.add_argument('--model', choices=('faster_rcnn', 'retinanet', 'dino'),
                        default='faster_rcnn')
    parser.add_argument('--glibc-defaults', action='store_true',
                        help="time with glibc's malloc defaults (bench/allocator.py)")
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.child:
        use_steady_allocator(args.glibc_defaults)
    if args.size is None:
        args.size = 512 if args.model == 'retinanet' else 320
    if args.child:
        if args.child.startswith(('loss_', 'naive_')):  # the loss alone: no model
            name = args.child.split('_', 1)[1]
            hw = (args.size, args.size) if name == 'batch' else (800, 1333)
            step = loss_step(prior_shape(hw), naive=args.child.startswith('naive_'))
        else:
            step = make_steps(args.size, args.model)[args.child]
        step()  # warm-up: allocator, lazy inits
        return report_peak(step)
    if args.model == 'retinanet':
        return main_dense(args)

    steps = make_steps(args.size, args.model)
    for fn in steps.values():
        fn()  # warm-up
    times = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, fn in steps.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    a, b, c = (statistics.median(times[k]) for k in ('student', 'teacher', 'distilled'))
    mem = {k: peak_mib(__file__, ['--child', k, '--size', str(args.size), '--model', args.model])
           for k in ('student', 'distilled')}
    what = dict(faster_rcnn='Faster R-CNN, DKD on the RoI logits',
                dino='DINO 4-scale, DIST (sigmoid) on the matching queries')[args.model]
    print(f'R50 -> R18 {what}, 2 x {args.size}x{args.size}, '
          f'{torch.get_num_threads()} threads, median of {args.rounds} interleaved rounds')
    print(describe())
    print(f'(a) student step      {a * 1e3:8.1f} ms   peak {mem["student"]:7.1f} MiB')
    print(f'(b) teacher forward   {b * 1e3:8.1f} ms')
    print(f'(c) distilled step    {c * 1e3:8.1f} ms   peak {mem["distilled"]:7.1f} MiB')
    print(f'(c - a) / b = {(c - a) / b:.2f}   (target <= 1.10)')


def main_dense(args):
    steps = make_steps(args.size, 'retinanet')
    timed = ('student', 'teacher', 'distilled')
    for name in timed:
        steps[name]()  # warm-up
    times = {name: [] for name in timed}
    for _ in range(args.rounds):
        for name in timed:
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    a, b, c = (statistics.median(times[k]) for k in timed)
    child = ['--model', 'retinanet', '--size', str(args.size), '--child']
    mem = {k: peak_mib(__file__, child + [k]) for k in (
        'student', 'distilled', 'loss_batch', 'naive_batch', 'loss_coco', 'naive_coco')}
    batch, coco = prior_shape((args.size, args.size)), prior_shape((800, 1333))
    print(f'R50 -> R18 RetinaNet, 2 x {args.size}x{args.size}, DIST (sigmoid) over all '
          f'{batch[0] // 2 * batch[2]} priors per image, {torch.get_num_threads()} threads, '
          f'median of {args.rounds} interleaved rounds')
    print(describe())
    print(f'(a) student step      {a * 1e3:8.1f} ms   peak {mem["student"]:7.1f} MiB')
    print(f'(b) teacher forward   {b * 1e3:8.1f} ms')
    print(f'(c) distilled step    {c * 1e3:8.1f} ms   peak {mem["distilled"]:7.1f} MiB')
    print(f'(c - a) / b = {(c - a) / b:.2f}   (target <= 1.10)')
    for name, shape in (('batch', batch), ('coco', coco)):
        size = shape[0] * shape[1] * shape[2] * 4 / 2**20
        print(f'DIST loss fwd+bwd, logits {tuple(shape)} ({size:.0f} MiB): '
              f'mmkd {mem["loss_" + name]:7.1f} MiB, straightforward '
              f'{mem["naive_" + name]:7.1f} MiB')


if __name__ == '__main__':
    main()
