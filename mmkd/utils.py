"""Small helpers shared by mmkd's tools."""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from mmkd.checkpoint import trust_checkpoints


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """The flags train.py and test.py share with mmdet's tools."""
    parser.add_argument('--work-dir', help='the dir to save logs, models and results')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(args: argparse.Namespace) -> Config:
    """Read ``args.config`` and apply the common flags (work dir as mmdet's)."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    # The explicit opt-in for checkpoints that need more than mmkd's
    # allow-list to unpickle (mmkd/checkpoint.py).
    trust_checkpoints(cfg.get('trust_checkpoints', None))
    return cfg


def has_amp_device() -> bool:
    """Whether mmengine's AmpOptimWrapper can run here (it needs an accelerator)."""
    from mmengine.device import (is_cuda_available, is_mlu_available, is_musa_available,
                                 is_npu_available)
    return is_cuda_available() or is_npu_available() or is_mlu_available() or is_musa_available()


def check_amp(cfg: Config) -> None:
    """Stop with a clear message when AMP is asked for without an accelerator."""
    wrapper = cfg.get('optim_wrapper', {}) or {}
    if wrapper.get('type', 'OptimWrapper') in ('AmpOptimWrapper', 'mmengine.AmpOptimWrapper') \
            and not has_amp_device():
        raise SystemExit(
            '--amp (AmpOptimWrapper) needs a CUDA, NPU, MLU or MUSA device: mmengine\'s mixed-'
            'precision training does not run on the CPU, and this machine has none. Train '
            'without --amp here (mmkd\'s losses already compute in float32); use --amp on a '
            'GPU machine.')


def adapt_to_cpu(cfg: Config) -> None:
    """Let a GPU config run on a CPU-only machine, saying so in the log.

    nccl needs CUDA: use gloo (and start the process group for torchrun). mmengine's default DDP wrapper pins the model
    to ``device_ids=[LOCAL_RANK]``, which DDP rejects for CPU modules: set
    ``device_ids=None`` explicitly (the Runner only fills in a default).
    """
    import torch
    if torch.cuda.is_available():
        return
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') == 'nccl':
        dist_cfg['backend'] = 'gloo'
        if cfg.get('launcher', 'none') != 'none':
            print_log('No CUDA: distributed backend nccl -> gloo.', logger='current')
    if cfg.get('launcher', 'none') == 'pytorch':
        # mmengine's init_dist always calls torch.cuda.set_device; the Runner
        # skips it when a process group already exists, so start gloo here.
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group(backend='gloo')
    if cfg.get('launcher', 'none') != 'none' and cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
