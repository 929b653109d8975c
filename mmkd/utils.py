"""Small helpers shared by mmkd's tools."""
from mmengine.config import Config
from mmengine.logging import print_log


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
