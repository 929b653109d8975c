"""Train with an mmkd (or plain mmdet / mmseg / mmpretrain) config.

Same flags as mmdet's tools/train.py. Without CUDA, distributed runs use the
gloo backend and an unpinned DDP wrapper, so `dist_train.sh CONFIG 2` also
runs on a CPU-only machine.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))
from mmengine.logging import print_log  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import mmkd  # noqa: E402,F401  (registers mmkd's models, losses and hooks)
from mmkd.utils import adapt_to_cpu, add_common_args, check_amp, load_config  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description='Train a (distilled) model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic-mixed-precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate to the actual batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from this checkpoint, or from the latest one in '
                        'the work dir when no path is given')
    add_common_args(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = load_config(args)
    if args.amp and cfg.optim_wrapper.get('type') in ('mmkd.DOTOptimWrapper', 'DOTOptimWrapper'):
        raise SystemExit('--amp: this config trains with mmkd.DOTOptimWrapper (DOT), which is '
                         'defined for float32 SGD steps; train without --amp.')
    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print_log('AMP is already enabled in the config.', logger='current')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise RuntimeError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config.')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    check_amp(cfg)
    adapt_to_cpu(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()
    # Leave the process group before interpreter exit: a gloo group torn down
    # by static destructors can abort the process after a finished run.
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == '__main__':
    main()
