"""Cost of classification distillation per training step, on the CPU.

ResNet-34 teacher -> ResNet-18 student (mmpretrain's ImageNet models, 1000
classes), a batch of 224x224 images, DKD on the logits. Measured side by side,
in interleaved rounds (median):

  (a) the student's own training step (mmpretrain loss, backward, SGD step);
  (b) the teacher's forward as the distiller runs it: backbone + neck + head,
      under no_grad;
  (c) the distilled training step.

Prints (c - a) / b: 1.0 means distillation adds exactly the teacher's forward
(target <= 1.10), plus the peak memory of (a) and (c), each measured in a
fresh child process.

With ``--dot``, also through mmengine's optimizer-wrapper path (the train
step's ``optim_context``, ``parse_losses``, ``update_params``):

  (c') the distilled step with mmengine's ``OptimWrapper`` (SGD);
  (d)  the distilled step with ``mmkd.DOTOptimWrapper`` (two backward passes,
       two momentum buffers);

and prints d / c', the cost of DOT's second backward pass, with both peaks.

    python bench/cls_step.py [--rounds 5] [--batch 8] [--size 224] [--dot]
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


def resnet(depth: int) -> dict:
    from mmengine.hub import get_config
    cfg = get_config('mmpretrain::resnet/resnet18_8xb32_in1k.py')
    model = cfg.model
    model.backbone.depth = depth
    model.data_preprocessor = cfg.data_preprocessor
    return model


def make_steps(batch: int, size: int):
    import mmkd  # noqa: F401
    from mmpretrain.structures import DataSample
    from mmkd.registry import MODELS
    torch.manual_seed(0)
    distiller = MODELS.build(dict(
        type='mmkd.ClassificationDistiller', student=resnet(18), teacher=resnet(34),
        distill_losses=dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=1.0, beta=0.5, tau=1.0))))
    distiller.init_weights()
    distiller.train()
    packed = dict(inputs=[torch.randint(0, 256, (3, size, size), dtype=torch.uint8)
                          for _ in range(batch)],
                  data_samples=[DataSample().set_gt_label(i % 1000) for i in range(batch)])
    data = distiller.data_preprocessor(packed, True)
    inputs, samples = data['inputs'], data['data_samples']
    optimizer = torch.optim.SGD(distiller.parameters(), lr=1e-4, momentum=0.9)

    def train_step(model):
        optimizer.zero_grad()
        losses = model.loss(inputs, samples)
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        optimizer.step()

    def teacher_forward():
        distiller.run_teacher(inputs, {})

    def wrapper_step(wrapper):
        with wrapper.optim_context(distiller):
            losses = distiller.loss(inputs, samples)
        wrapper.update_params(distiller.parse_losses(losses)[0])

    from mmengine.optim import OptimWrapper
    from mmkd.engine.optim import DOTOptimWrapper
    plain = OptimWrapper(torch.optim.SGD(distiller.parameters(), lr=1e-4, momentum=0.9))
    dot = DOTOptimWrapper(torch.optim.SGD(distiller.parameters(), lr=1e-4, momentum=0.9),
                          delta=0.09)
    return dict(student=lambda: train_step(distiller.student), teacher=teacher_forward,
                distilled=lambda: train_step(distiller),
                distilled_wrapper=lambda: wrapper_step(plain), dot=lambda: wrapper_step(dot))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--dot', action='store_true',
                        help="also time DOT's step against the plain wrapper step")
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = ['--batch', str(args.batch), '--size', str(args.size)]
    if args.child:
        step = make_steps(args.batch, args.size)[args.child]
        step()  # warm-up: allocator, lazy inits
        return report_peak(step)

    print(f'load average {os.getloadavg()[0]:.2f} (read the ratio from a quiet machine)')
    steps = make_steps(args.batch, args.size)
    if not args.dot:
        del steps['distilled_wrapper'], steps['dot']
    for fn in steps.values():
        fn()  # warm-up
    times = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, fn in steps.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    a, b, c = (statistics.median(times[k]) for k in ('student', 'teacher', 'distilled'))
    mem = {k: peak_mib(__file__, ['--child', k, *shape]) for k in ('student', 'distilled')}
    print(f'R34 -> R18 mmpretrain ImageNet classifiers, {args.batch} x {args.size}x{args.size}, '
          f'DKD, {torch.get_num_threads()} threads, median of {args.rounds} interleaved rounds')
    print(f'(a) student step      {a * 1e3:8.1f} ms   peak {mem["student"]:7.1f} MiB')
    print(f'(b) teacher forward   {b * 1e3:8.1f} ms')
    print(f'(c) distilled step    {c * 1e3:8.1f} ms   peak {mem["distilled"]:7.1f} MiB')
    print(f'(c - a) / b = {(c - a) / b:.2f}   (target <= 1.10)')
    if args.dot:
        plain, dot = (statistics.median(times[k]) for k in ('distilled_wrapper', 'dot'))
        mem = {k: peak_mib(__file__, ['--child', k, *shape]) for k in ('distilled_wrapper', 'dot')}
        print(f"(c') distilled step, OptimWrapper     {plain * 1e3:8.1f} ms   "
              f"peak {mem['distilled_wrapper']:7.1f} MiB")
        print(f"(d)  distilled step, DOTOptimWrapper  {dot * 1e3:8.1f} ms   "
              f"peak {mem['dot']:7.1f} MiB")
        print(f"d / c' = {dot / plain:.2f}   (DOT's second backward pass over the student)")


if __name__ == '__main__':
    main()
