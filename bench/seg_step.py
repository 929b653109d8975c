"""Cost of segmentation distillation per training step, on the CPU.

DeepLabV3 R101-D8 teacher -> DeepLabV3 R18-D8 student (mmseg's Cityscapes
models, 19 classes, BN in place of SyncBN), 2 images of 256x512, DIST on the
decode-head logits plus 0.4 x DIST on the auxiliary head's. Measured side by
side, in interleaved rounds (median):

  (a) the student's own training step (mmseg loss, backward, SGD step);
  (b) the teacher's forward as the distiller runs it: backbone + decode head
      + auxiliary head, under no_grad;
  (c) the distilled training step.

Prints (c - a) / b: 1.0 means distillation adds exactly the teacher's forward
(target <= 1.10), plus the peak memory of (a) and (c), each measured in a
fresh child process.

    python bench/seg_step.py [--rounds 3] [--size 256 512]
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

CONFIG = 'mmseg::deeplabv3/deeplabv3_{}-d8_4xb2-80k_cityscapes-512x1024.py'


def deeplabv3(depth: int) -> dict:
    from mmengine.hub import get_config
    cfg = get_config(CONFIG.format(f'r{depth}')).model
    cfg.pretrained = None
    bn = dict(type='BN', requires_grad=True)  # SyncBN needs CUDA
    for part in (cfg.backbone, cfg.decode_head, cfg.auxiliary_head):
        part.norm_cfg = bn
    return cfg


def build(size):
    import mmkd  # noqa: F401
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from mmkd.registry import MODELS
    torch.manual_seed(0)
    distiller = MODELS.build(dict(
        type='mmkd.SegmentationDistiller', student=deeplabv3(18), teacher=deeplabv3(101),
        distill_losses=dict(loss_dist=dict(type='mmkd.DISTLoss')),
        aux_distill_losses=dict(loss_dist_aux=dict(type='mmkd.DISTLoss', loss_weight=0.4))))
    distiller.init_weights()
    distiller.train()
    h, w = size
    inputs = torch.randn(2, 3, h, w)
    samples = []
    for _ in range(2):
        labels = torch.randint(0, 19, (1, h, w))
        labels[:, :h // 10] = 255  # some ignored pixels, as in Cityscapes
        sample = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
        sample.gt_sem_seg = PixelData(data=labels)
        samples.append(sample)
    optimizer = torch.optim.SGD(distiller.parameters(), lr=1e-4, momentum=0.9)
    return distiller, inputs, samples, optimizer


def make_steps(size):
    from mmkd.models.segmentation_distiller import aux_heads
    distiller, inputs, samples, optimizer = build(size)
    student, teacher = distiller.student, distiller.teacher

    def train_step(model):
        optimizer.zero_grad()
        losses = model.loss(inputs, samples)
        sum(v for k, v in losses.items() if 'loss' in k and torch.is_tensor(v)).backward()
        optimizer.step()

    def teacher_forward():
        with torch.no_grad():
            feats = teacher.extract_feat(inputs)
            teacher.decode_head(feats)
            for head in aux_heads(teacher):
                head(feats)

    return dict(student=lambda: train_step(student), teacher=teacher_forward,
                distilled=lambda: train_step(distiller))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--size', type=int, nargs=2, default=(256, 512))
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = tuple(args.size)
    if args.child:
        step = make_steps(size)[args.child]
        step()  # warm-up: allocator, lazy inits
        return report_peak(step)

    print(f'load average before: {os.getloadavg()[0]:.2f}')
    steps = make_steps(size)
    for fn in steps.values():
        fn()  # warm-up
    times = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, fn in steps.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    a, b, c = (statistics.median(times[k]) for k in ('student', 'teacher', 'distilled'))
    mem = {k: peak_mib(__file__, ['--child', k, '--size', *map(str, size)])
           for k in ('student', 'distilled')}
    print(f'DeepLabV3 R101-D8 -> R18-D8, 2 x {size[0]}x{size[1]}, DIST decode + 0.4 aux, '
          f'{torch.get_num_threads()} threads, median of {args.rounds} interleaved rounds')
    print(f'(a) student step      {a * 1e3:8.1f} ms   peak {mem["student"]:7.1f} MiB')
    print(f'(b) teacher forward   {b * 1e3:8.1f} ms')
    print(f'(c) distilled step    {c * 1e3:8.1f} ms   peak {mem["distilled"]:7.1f} MiB')
    print(f'(c - a) / b = {(c - a) / b:.2f}   (target <= 1.10)')
    print(f'load average after: {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
    main()
