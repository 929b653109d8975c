"""The GPU check's benches (tools/gpu_check.py runs them; docs/gpu_check.md).

1. Per task, the glue ratio ``(c - a) / b`` with an fp32 and a bf16 teacher
   (``teacher_precision``), measured as bench/det_step.py, seg_step.py and
   cls_step.py measure it on the CPU, in interleaved rounds (median), each
   step followed by a device synchronisation:

   (a) the student's own training step (host loss, backward, SGD step);
   (b) the teacher's forward as the distiller runs it (``run_teacher``);
   (c) the distilled training step.

   Full size (GPU): Faster R-CNN R50-FPN -> R18-FPN, DKD on 2 x 512 RoIs of
   2 COCO-size images (800x1333); DeepLabV3 R101-D8 -> R18-D8 on 2
   Cityscapes crops of 512x1024 (DIST decode + 0.4 x DIST aux); ImageNet
   ResNet-34 -> ResNet-18, DKD, batch 256 of 224x224. ``--size small``: the
   same models on tiny inputs (the CPU run in CI).
2. The loss kernels against the paper formulation (bench/losses.py's, and
   DIST's reference code on sigmoids), forward + backward: Cityscapes
   512x1024 logits (19 classes, 10% ignored), ImageNet batch 256 (1000
   classes), COCO RoI logits (2 x 512 RoIs, 81 classes) and COCO-size
   RetinaNet prior logits (sigmoid DIST). Values are compared first; time is
   the median of interleaved rounds, memory the CUDA allocator's peak above
   the inputs (on the CPU: not measured, None).

    python bench/gpu_bench.py --device cuda --out bench.json [--size full] [--rounds 5]
"""
import argparse
import json
import logging
import os
import statistics
import sys
import time
import traceback
from typing import Callable, Dict, List, Optional

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))
sys.path.insert(0, HERE)

#: task -> full and small input sizes.
SIZES = {
    'full': dict(det=(800, 1333), seg=(512, 1024), cls=(256, 224), rois=512),
    'small': dict(det=(128, 128), seg=(64, 128), cls=(4, 64), rois=64),
}
LOSS_SHAPES = {
    'full': dict(cityscapes=(2, 19, 512, 1024), imagenet=(256, 1000, 1, 1),
                 coco_roi=(1024, 81, 1, 1), coco_dense=(800, 1333)),
    'small': dict(cityscapes=(1, 19, 32, 64), imagenet=(16, 100, 1, 1),
                  coco_roi=(64, 81, 1, 1), coco_dense=(64, 64)),
}


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def interleaved(steps: Dict[str, Callable[[], None]], rounds: int, device: torch.device,
                warmup: int = 1) -> Dict[str, float]:
    """Median seconds of each step over interleaved rounds, after warm-ups."""
    for _ in range(warmup):
        for fn in steps.values():
            fn()
    synchronize(device)
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def peak_mib(fn: Callable[[], None], device: torch.device) -> Optional[float]:
    """The CUDA allocator's peak during ``fn`` above what was allocated before."""
    if device.type != 'cuda':
        return None
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


# -- the three tasks -------------------------------------------------------------
def build_det(precision: str, size: dict, device: torch.device):
    """Faster R-CNN R50 -> R18, DKD on the RoI logits; ``(distiller, inputs,
    samples, teacher_extra)``."""
    from det_step import faster_rcnn
    from mmdet.testing import demo_mm_inputs
    from mmkd.registry import MODELS
    distiller = MODELS.build(dict(
        type='mmkd.DetectionDistiller', student=faster_rcnn(18), teacher=faster_rcnn(50),
        teacher_precision=precision,
        distill_losses=dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.25, tau=1.0))))
    h, w = size['det']
    packed = demo_mm_inputs(2, [[3, h, w]] * 2, num_items=[5, 5], num_classes=80)
    rois = []
    for index in range(2):
        boxes = torch.rand(size['rois'], 4).sort(1).values * torch.tensor([w, h, w, h])
        rois.append(torch.cat([torch.full((size['rois'], 1), float(index)), boxes], 1))
    return distiller, packed, dict(rois=torch.cat(rois).to(device))


def build_seg(precision: str, size: dict, device: torch.device):
    """DeepLabV3 R101-D8 -> R18-D8, DIST on the decode and auxiliary heads."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from mmkd.registry import MODELS
    from seg_step import deeplabv3
    h, w = size['seg']
    student, teacher = deeplabv3(18), deeplabv3(101)
    for cfg in (student, teacher):  # the configs pad every image to their 512x1024 crop
        cfg.data_preprocessor.size = (h, w)
    distiller = MODELS.build(dict(
        type='mmkd.SegmentationDistiller', student=student, teacher=teacher,
        teacher_precision=precision, distill_losses=dict(loss_dist=dict(type='mmkd.DISTLoss')),
        aux_distill_losses=dict(loss_dist_aux=dict(type='mmkd.DISTLoss', loss_weight=0.4))))
    inputs, samples = [], []
    for _ in range(2):
        inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8))
        labels = torch.randint(0, 19, (1, h, w))
        labels[:, :h // 10] = 255  # some ignored pixels, as in Cityscapes
        sample = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
        sample.gt_sem_seg = PixelData(data=labels)
        samples.append(sample)
    return distiller, dict(inputs=inputs, data_samples=samples), {}


def build_cls(precision: str, size: dict, device: torch.device):
    """ImageNet ResNet-34 -> ResNet-18, DKD on the logits."""
    from cls_step import resnet
    from mmpretrain.structures import DataSample
    from mmkd.registry import MODELS
    distiller = MODELS.build(dict(
        type='mmkd.ClassificationDistiller', student=resnet(18), teacher=resnet(34),
        teacher_precision=precision,
        distill_losses=dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.5, tau=1.0))))
    batch, side = size['cls']
    packed = dict(inputs=[torch.randint(0, 256, (3, side, side), dtype=torch.uint8)
                          for _ in range(batch)],
                  data_samples=[DataSample().set_gt_label(i % 1000) for i in range(batch)])
    return distiller, packed, {}


TASKS = {'det': build_det, 'seg': build_seg, 'cls': build_cls}
DESCRIPTIONS = {
    'det': 'Faster R-CNN R50-FPN -> R18-FPN, DKD on RoI logits, 2 x {det[0]}x{det[1]}, '
           '{rois} RoIs per image',
    'seg': 'DeepLabV3 R101-D8 -> R18-D8, DIST decode + 0.4 aux, 2 x {seg[0]}x{seg[1]}',
    'cls': 'ResNet-34 -> ResNet-18 (1000 classes), DKD, batch {cls[0]} x {cls[1]}x{cls[1]}',
}


def glue(task: str, precision: str, size: dict, device: torch.device, rounds: int) -> dict:
    """(a), (b), (c) in ms, ``(c - a) / b`` and the peaks of (a) and (c)."""
    torch.manual_seed(0)
    distiller, packed, extra = TASKS[task](precision, size, device)
    distiller.init_weights()
    distiller.to(device).train()
    data = distiller.data_preprocessor(packed, True)
    inputs, samples = data['inputs'], data['data_samples']
    optimizer = torch.optim.SGD(distiller.parameters(), lr=1e-4, momentum=0.9)

    def train_step(model):
        optimizer.zero_grad()
        losses = model.loss(inputs, samples)
        total = 0
        for key, value in losses.items():
            if 'loss' in key:
                total = total + (sum(value) if isinstance(value, (list, tuple)) else value)
        total.backward()
        optimizer.step()

    steps = dict(student=lambda: train_step(distiller.student),
                 teacher=lambda: distiller.run_teacher(inputs, extra),
                 distilled=lambda: train_step(distiller))
    times = interleaved(steps, rounds, device)
    a, b, c = (times[k] for k in ('student', 'teacher', 'distilled'))
    return dict(a_ms=a * 1e3, b_ms=b * 1e3, c_ms=c * 1e3, glue=(c - a) / b,
                added_ms=(c - a) * 1e3, peak_a_mib=peak_mib(steps['student'], device),
                peak_c_mib=peak_mib(steps['distilled'], device))


# -- the loss kernels ------------------------------------------------------------
def sigmoid_dist_pair(hw, device: torch.device):
    """mmkd's sigmoid DIST and DIST's reference code on RetinaNet's prior logits."""
    from det_step import prior_shape
    from mmkd.losses import dist_loss
    shape = prior_shape(hw)
    gen = torch.Generator().manual_seed(0)
    student = (torch.randn(shape, generator=gen) * 3 - 4).to(device).requires_grad_()
    teacher = (torch.randn(shape, generator=gen) * 3 - 4).to(device)

    def pearson(a, b):
        a = a - a.mean(1, keepdim=True)
        b = b - b.mean(1, keepdim=True)
        return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-8)

    def paper(s, t, _):
        c = s.shape[1]
        ys = s.sigmoid().transpose(1, 2).reshape(-1, c)
        yt = t.sigmoid().transpose(1, 2).reshape(-1, c)
        return (1 - pearson(ys, yt).mean()) + (1 - pearson(ys.t(), yt.t()).mean())

    return (lambda s, t, _: dist_loss(s, t, use_sigmoid=True)), paper, (student, teacher, None)


def loss_cases(shapes: dict, device: torch.device):
    """``(name, shape, mmkd_fn, paper_fn, (s, t, target))`` per case."""
    from losses import METHODS, make_inputs
    for size in ('cityscapes', 'imagenet', 'coco_roi'):
        s, t, y = make_inputs(shapes[size])
        s = s.detach().to(device).requires_grad_()
        t, y = t.to(device), y.to(device)
        for method, (ours, paper) in METHODS.items():
            yield f'{method} {size}', tuple(shapes[size]), ours, paper, (s, t, y)
    ours, paper, args = sigmoid_dist_pair(shapes['coco_dense'], device)
    yield 'DIST-sigmoid coco_dense', tuple(args[0].shape), ours, paper, args


def one_loss(ours, paper, args, device: torch.device, rounds: int) -> dict:
    """Values compared, then time and peak memory of forward + backward."""
    s = args[0]
    la, lb = ours(*args), paper(*args)
    ga, gb = torch.autograd.grad(la, s)[0], torch.autograd.grad(lb, s)[0]
    value_rel = float((la - lb).abs() / lb.abs().clamp_min(1e-12))
    grad_rel = float((ga - gb).abs().max() / gb.abs().max().clamp_min(1e-30))
    del ga, gb

    def step(fn):
        s.grad = None
        fn(*args).backward()

    times = interleaved(dict(mmkd=lambda: step(ours), paper=lambda: step(paper)), rounds,
                        device)
    s.grad = None
    return dict(value_rel_diff=value_rel, grad_rel_diff=grad_rel,
                agree=value_rel < 1e-3 and grad_rel < 1e-2,
                mmkd_ms=times['mmkd'] * 1e3, paper_ms=times['paper'] * 1e3,
                time_ratio=times['mmkd'] / times['paper'],
                mmkd_mib=peak_mib(lambda: step(ours), device),
                paper_mib=peak_mib(lambda: step(paper), device))


def guarded(fn: Callable[[], dict]) -> dict:
    """``fn()``, or the error it raised (the report shows it; the rest runs on)."""
    try:
        return fn()
    except Exception as err:  # noqa: BLE001 - every failure is reported, none hidden
        traceback.print_exc()
        return dict(error=f'{type(err).__name__}: {str(err).splitlines()[0][:300]}')
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def run(device: torch.device, size: str, rounds: int, tasks: List[str]) -> dict:
    """Every bench; a JSON-ready dict."""
    import mmkd  # noqa: F401 - registers the distillers and losses
    from mmengine.logging import MMLogger
    # mmengine logs every parameter's initialisation: thousands of lines per model.
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    sizes, result = SIZES[size], dict(size=size, rounds=rounds, glue={}, losses={})
    for task in tasks:
        rows = {p: guarded(lambda p=p: glue(task, p, sizes, device, rounds))
                for p in ('fp32', 'bf16')}
        fp32, bf16 = rows['fp32'], rows['bf16']
        # None when either errored, or when the fp32 teacher added no time (noise).
        rows['bf16_added_vs_fp32'] = (bf16['added_ms'] / fp32['added_ms'] if 'added_ms' in bf16
                                      and fp32.get('added_ms', 0) > 0 else None)
        rows['model'] = DESCRIPTIONS[task].format(**sizes)
        result['glue'][task] = rows
        print(task, json.dumps(rows), flush=True)
    for name, shape, ours, paper, args in loss_cases(LOSS_SHAPES[size], device):
        row = guarded(lambda: one_loss(ours, paper, args, device, rounds))
        result['losses'][name] = dict(row, shape=list(shape))
        print(name, json.dumps(result['losses'][name]), flush=True)
    return result


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--size', choices=sorted(SIZES), default=None,
                        help='default: full on CUDA, small on the CPU')
    parser.add_argument('--rounds', type=int, default=None, help='default: 5 full, 2 small')
    parser.add_argument('--tasks', nargs='+', choices=sorted(TASKS), default=['det', 'seg', 'cls'])
    parser.add_argument('--out', required=True, help='the JSON file to write')
    args = parser.parse_args(argv)
    if os.environ.get('MMKD_GPUCHECK_TORCHVISION_OPS') == '1':
        from mmkd.gpucheck.ops_route import route_through_torchvision
        route_through_torchvision()
    device = torch.device(args.device)
    size = args.size or ('full' if device.type == 'cuda' else 'small')
    rounds = args.rounds or (5 if size == 'full' else 2)
    result = run(device, size, rounds, args.tasks)
    result['device'] = str(device)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=1)


if __name__ == '__main__':
    main()
