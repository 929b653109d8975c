"""Cost of the schedule hooks per training step, on the CPU.

ESKD: after the stop (``distill_active=False``) a distiller's training step
should cost what the student's own step costs (target <= 1.03x): R50 -> R18
Faster R-CNN (mmdet's full models, 2 images of 320x320) and, when
``mmkd.ClassificationDistiller`` is registered, R34 -> R18 on 16 images of
160x160. Measured side by side in interleaved rounds (median).

PS-KD: mmpretrain's ResNet-18 (1000 classes, 32 images of 112x112) trained
plainly vs with :class:`mmkd.PSKDHook`'s per-step work (memory read, soft
targets as ``gt_score``, softmax and memory write) on a memory of ImageNet
size (1.28M x 1000, float16) in this process. Then the memory per process:
two gloo processes on this machine create a node-shared memory, touch every
page, and report the proportional (PSS) and resident (RSS) set size of its
mapping; the ImageNet figure for 8 processes per node follows from it.

    python bench/schedule_step.py [--rounds 5] [--rows 1281167] [--det-size 320]
"""
import argparse
import os
import socket
import statistics
import sys
import time
from types import SimpleNamespace

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))


def interleaved(steps: dict, rounds: int) -> dict:
    for fn in steps.values():
        fn()  # warm-up
    times = {name: [] for name in steps}
    for index in range(rounds):
        order = list(steps.items())
        for name, fn in (order if index % 2 == 0 else order[::-1]):  # no position bias
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def train_step(model, optimizer, forward):
    def step():
        optimizer.zero_grad()
        losses = forward()
        sum(v for k, v in losses.items() if 'loss' in k and torch.is_tensor(v)).backward()
        optimizer.step()
    return step


def eskd_detection(size: int):
    from mmdet.testing import demo_mm_inputs
    from mmengine.hub import get_config

    from mmkd.registry import MODELS

    def faster_rcnn(depth):
        cfg = get_config('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py').model
        cfg.backbone.update(depth=depth, init_cfg=None)
        if depth == 18:
            cfg.neck.in_channels = [64, 128, 256, 512]
        return cfg

    torch.manual_seed(0)
    distiller = MODELS.build(dict(type='mmkd.DetectionDistiller', student=faster_rcnn(18),
                                  teacher=faster_rcnn(50),
                                  distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss'))))
    packed = demo_mm_inputs(2, [[3, size, size]] * 2, num_items=[5, 5], num_classes=80)
    data = distiller.data_preprocessor(packed, True)
    return distiller, data['inputs'], data['data_samples'], f'R50 -> R18 Faster R-CNN, 2 x {size}'


def eskd_classification():
    from mmkd.registry import MODELS
    if 'ClassificationDistiller' not in MODELS.module_dict:
        return None
    from mmpretrain.structures import DataSample

    def resnet(depth):
        return dict(type='ImageClassifier', backbone=dict(type='ResNet', depth=depth),
                    neck=dict(type='GlobalAveragePooling'),
                    head=dict(type='LinearClsHead', num_classes=1000, in_channels=512,
                              loss=dict(type='CrossEntropyLoss')),
                    data_preprocessor=dict(mean=[123.675, 116.28, 103.53],
                                           std=[58.395, 57.12, 57.375], to_rgb=True))

    torch.manual_seed(0)
    distiller = MODELS.build(dict(type='mmkd.ClassificationDistiller', student=resnet(18),
                                  teacher=resnet(34),
                                  distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss'))))
    packed = dict(inputs=[torch.randint(0, 256, (3, 160, 160), dtype=torch.uint8)
                          for _ in range(16)],
                  data_samples=[DataSample().set_gt_label(i) for i in range(16)])
    data = distiller.data_preprocessor(packed, True)
    return distiller, data['inputs'], data['data_samples'], 'R34 -> R18 classifier, 16 x 160'


def bench_eskd(build, rounds):
    built = build()
    if built is None:
        return None
    distiller, inputs, samples, name = built
    distiller.init_weights()
    distiller.train()
    distiller.distill_active = False  # after the ESKD stop
    optimizer = torch.optim.SGD(distiller.parameters(), lr=1e-4, momentum=0.9)
    t = interleaved(dict(
        student=train_step(distiller, optimizer, lambda: distiller.student.loss(inputs, samples)),
        stopped=train_step(distiller, optimizer, lambda: distiller.loss(inputs, samples))),
        rounds)
    print(f'ESKD, {name}: student step {t["student"] * 1e3:8.1f} ms, step after the stop '
          f'{t["stopped"] * 1e3:8.1f} ms, ratio {t["stopped"] / t["student"]:.3f} '
          '(target <= 1.03)')


def bench_pskd_step(rows, rounds):
    from mmengine.logging import MessageHub
    from mmpretrain.structures import DataSample

    from mmkd.engine.hooks import PSKDHook
    from mmkd.engine.prediction_memory import PredictionMemory
    from mmkd.models import build_model
    torch.manual_seed(0)
    model = build_model(dict(
        type='ImageClassifier', backbone=dict(type='ResNet', depth=18),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=512,
                  loss=dict(type='CrossEntropyLoss')),  # takes hard labels and gt_score rows
        data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                               to_rgb=True)), 'mmpretrain')
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    batch = 32
    images = [torch.randint(0, 256, (3, 112, 112), dtype=torch.uint8) for _ in range(batch)]

    def packed():
        idx = torch.randint(0, rows, (batch,))
        return dict(inputs=images, data_samples=[
            DataSample(metainfo=dict(sample_idx=int(i))).set_gt_label(int(i) % 1000) for i in idx])

    hook = PSKDHook(alpha_T=0.3)
    start = time.perf_counter()
    hook.memory = PredictionMemory(rows, 1000)
    hook.memory.rows.fill_(1e-3)  # epoch >= 1: every row written (values don't change the cost)
    made = time.perf_counter() - start
    hook.total = 100
    runner = SimpleNamespace(epoch=5, iter=5000, message_hub=MessageHub.get_current_instance())

    def plain():
        data = model.data_preprocessor(packed(), True)
        optimizer.zero_grad()
        model.loss(data['inputs'], data['data_samples'])['loss'].backward()
        optimizer.step()

    def pskd():
        handle = model.head.register_forward_hook(hook._capture)  # as in before_train
        raw = packed()
        hook.before_train_iter(runner, 0, raw)
        data = model.data_preprocessor(raw, True)
        optimizer.zero_grad()
        model.loss(data['inputs'], data['data_samples'])['loss'].backward()
        optimizer.step()
        hook.after_train_iter(runner, 0, raw)
        handle.remove()

    def hook_work():  # the hook's own per-step work, without the model
        raw = packed()
        hook.before_train_iter(runner, 0, raw)
        hook._logits = torch.randn(batch, 1000)
        hook.after_train_iter(runner, 0, raw)

    t = interleaved(dict(plain=plain, pskd=pskd), rounds)
    work = interleaved(dict(work=hook_work), 20)['work']
    gib = hook.memory.bytes_per_process / 2**30
    print(f'PS-KD, ResNet-18 1000 classes, {batch} x 112: plain step {t["plain"] * 1e3:8.1f} ms, '
          f'PS-KD step {t["pskd"] * 1e3:8.1f} ms, ratio {t["pskd"] / t["plain"]:.3f}; the hook\'s '
          f'own work {work * 1e3:.1f} ms per step ({work / t["plain"] * 100:.2f}% of the plain '
          f'step); memory {rows} x 1000 float16 = {gib:.2f} GiB in one process (built and filled '
          f'in {made:.1f} s)')


def _smaps_kib(path_part: str):
    """PSS and RSS (KiB) of this process's mappings whose name contains ``path_part``."""
    pss = rss = 0
    current = False
    with open('/proc/self/smaps') as f:
        for line in f:
            fields = line.split()
            if '-' in fields[0] and len(fields) >= 5:
                current = path_part in line
            elif current and fields[0] == 'Pss:':
                pss += int(fields[1])
            elif current and fields[0] == 'Rss:':
                rss += int(fields[1])
    return pss, rss


def _shared_worker(rank, port, rows, out):
    import torch.distributed as dist

    from mmkd.engine.prediction_memory import PredictionMemory
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    memory = PredictionMemory(rows, 1000)
    float(memory.rows[::64].float().nan_to_num(0).sum())  # touch every page
    memory.rows.view(-1)[::2048].float().sum()
    dist.barrier()
    pss, rss = _smaps_kib('mmkd_pskd_')
    out[rank] = (pss, rss, memory.bytes_per_process, memory.processes_sharing)
    dist.barrier()
    dist.destroy_process_group()


def bench_pskd_memory(rows):
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_shared_worker, args=(port, rows, out), nprocs=2, join=True)
    total = rows * 1000 * 2
    for rank in (0, 1):
        pss, rss, share, sharing = out[rank]
        print(f'PS-KD memory, 2 processes on one node, {rows} x 1000 float16 ({total / 2**20:.0f} '
              f'MiB): rank {rank} PSS {pss / 1024:.0f} MiB, RSS {rss / 1024:.0f} MiB of the '
              f'mapping ({sharing} processes share it; computed share {share / 2**20:.0f} MiB)')
    imagenet = 1281167 * 1000
    print(f'ImageNet (1281167 x 1000), 8 processes per node: float16 shared per node '
          f'{imagenet * 2 / 8 / 1e9:.2f} GB per process (official float32 per process '
          f'{imagenet * 4 / 1e9:.2f} GB; float16 per process {imagenet * 2 / 1e9:.2f} GB)')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--rows', type=int, default=1281167,
                        help='PS-KD memory rows for the step timing (ImageNet: 1281167)')
    parser.add_argument('--det-size', type=int, default=320)
    parser.add_argument('--skip', nargs='*', default=[], choices=['det', 'cls', 'pskd'],
                        help='parts to leave out')
    parser.add_argument('--shared-rows', type=int, default=131072,
                        help='PS-KD memory rows for the 2-process sharing measurement')
    args = parser.parse_args()
    import mmkd  # noqa: F401
    from mmengine.logging import MMLogger
    MMLogger.get_instance('schedule_step', log_level='WARNING')  # no init_weights report
    print(f'load average {os.getloadavg()[0]:.2f}, {torch.get_num_threads()} threads, median '
          f'of {args.rounds} interleaved rounds')
    if 'det' not in args.skip:
        bench_eskd(lambda: eskd_detection(args.det_size), args.rounds)
    if 'cls' not in args.skip:
        bench_eskd(eskd_classification, args.rounds)
    if 'pskd' not in args.skip:
        bench_pskd_step(args.rows, args.rounds)
    bench_pskd_memory(args.shared_rows)


if __name__ == '__main__':
    main()
