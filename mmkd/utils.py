"""Small helpers shared by mmkd's tools."""
from mmengine.config import Config
from mmengine.logging import print_log


def adapt_to_cpu(cfg: Config) -> None:
    """Let a GPU config run on a CPU-only machine, saying so in the log.

    nccl needs CUDA: use gloo. mmengine's default DDP wrapper pins the model
    to ``device_ids=[LOCAL_RANK]``, which DDP rejects for CPU modules: use an
    unpinned ``MMDistributedDataParallel`` instead.
    """
    import torch
    if torch.cuda.is_available():
        return
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') == 'nccl':
        dist_cfg['backend'] = 'gloo'
        if cfg.get('launcher', 'none') != 'none':
            print_log('No CUDA: distributed backend nccl -> gloo.', logger='current')
    if cfg.get('launcher', 'none') != 'none' and cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel', broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
