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
fresh child process.

    python bench/det_step.py [--rounds 5] [--size 320]
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
from peak_memory import peak_mib, report_peak  # noqa: E402


def faster_rcnn(depth: int) -> dict:
    from mmengine.hub import get_config
    cfg = get_config('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py').model
    cfg.backbone.update(depth=depth, init_cfg=None)
    if depth in (18, 34):
        cfg.neck.in_channels = [64, 128, 256, 512]
    return cfg


def build(size: int):
    import mmkd  # noqa: F401
    from mmdet.testing import demo_mm_inputs
    from mmkd.registry import MODELS
    torch.manual_seed(0)
    distiller = MODELS.build(dict(
        type='mmkd.DetectionDistiller', student=faster_rcnn(18), teacher=faster_rcnn(50),
        distill_losses=dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.25, tau=1.0))))
    distiller.init_weights()
    distiller.train()
    packed = demo_mm_inputs(2, [[3, size, size]] * 2, num_items=[5, 5], num_classes=80)
    data = distiller.data_preprocessor(packed, True)
    optimizer = torch.optim.SGD(distiller.parameters(), lr=1e-4, momentum=0.9)
    return distiller, data['inputs'], data['data_samples'], optimizer


def make_steps(size: int):
    from mmdet.structures.bbox import bbox2roi
    distiller, inputs, samples, optimizer = build(size)
    student, teacher = distiller.student, distiller.teacher
    rois = bbox2roi([torch.rand(512, 4).sort(1).values * size for _ in range(2)])

    def train_step(model):
        optimizer.zero_grad()
        losses = model.loss(inputs, samples)
        sum(v for k, v in losses.items() if 'loss' in k and torch.is_tensor(v)).backward()
        optimizer.step()

    def teacher_forward():
        with torch.no_grad():
            feats = teacher.extract_feat(inputs)
            teacher.roi_head._bbox_forward(feats, rois)

    return dict(student=lambda: train_step(student), teacher=teacher_forward,
                distilled=lambda: train_step(distiller))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--size', type=int, default=320)
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        step = make_steps(args.size)[args.child]
        step()  # warm-up: allocator, lazy inits
        return report_peak(step)

    steps = make_steps(args.size)
    for fn in steps.values():
        fn()  # warm-up
    times = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, fn in steps.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    a, b, c = (statistics.median(times[k]) for k in ('student', 'teacher', 'distilled'))
    mem = {k: peak_mib(__file__, ['--child', k, '--size', str(args.size)])
           for k in ('student', 'distilled')}
    print(f'R50 -> R18 Faster R-CNN, 2 x {args.size}x{args.size}, DKD, '
          f'{torch.get_num_threads()} threads, median of {args.rounds} interleaved rounds')
    print(f'(a) student step      {a * 1e3:8.1f} ms   peak {mem["student"]:7.1f} MiB')
    print(f'(b) teacher forward   {b * 1e3:8.1f} ms')
    print(f'(c) distilled step    {c * 1e3:8.1f} ms   peak {mem["distilled"]:7.1f} MiB')
    print(f'(c - a) / b = {(c - a) / b:.2f}   (target <= 1.10)')


if __name__ == '__main__':
    main()
