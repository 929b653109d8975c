"""PS-KD's per-sample memory of last predictions, one float16 copy per node.

PS-KD's official code keeps a float32 ``N x C`` tensor in every process: 5.1 GB
per process at ImageNet size (1.28M x 1000), 41 GB on an 8-process node. Here
the rows are float16 and live in **one shared-memory mapping per node**: the
node's first process creates a file in ``/dev/shm`` (in TMPDIR when
``/dev/shm`` is too small, as docker's 64 MB default is; a clear error when
neither has room), every process of the node
maps it, and the file is unlinked at once (the mapping stays valid and
nothing is left behind if the run dies). At ImageNet size that is 2.56 GB per
node, 0.32 GB per process with 8 processes (its proportional share).

Updates are all-gathered, so every process receives every row written in a
step, and **every process writes all of them** into the node's mapping. The
writes are redundant but identical byte for byte (the same float16 values
from the same gather), so no process can read a half-updated row that it has
already written itself, and no lock or extra barrier is needed per step.
"""
import os
import shutil
import socket
import tempfile
import uuid
from typing import Optional

import numpy as np
import torch
from mmengine.dataset import ClassBalancedDataset, ConcatDataset, RepeatDataset
from mmengine.dist import (all_gather, all_gather_object, barrier, broadcast_object_list,
                           get_rank, get_world_size)
from torch import Tensor
from torch.utils.data import ConcatDataset as TorchConcat

DTYPES = {'float16': (torch.float16, np.float16), 'float32': (torch.float32, np.float32)}


def _shared_dirs():
    """Where a node-shared file may live: ``/dev/shm`` (RAM), else the temp
    directory (a file-backed mapping, still one copy in the page cache)."""
    return [d for d in ('/dev/shm', tempfile.gettempdir()) if os.path.isdir(d)]


def _shared_dir(nbytes: int) -> str:
    for directory in _shared_dirs():
        if shutil.disk_usage(directory).free > nbytes * 1.05:
            return directory
    raise MemoryError(f'PS-KD\'s memory needs {nbytes / 2**30:.2f} GiB of shared memory per '
                      f'node, more than {_shared_dirs()} have free. Enlarge /dev/shm (docker: '
                      '--shm-size) or free space in TMPDIR.')


class PredictionMemory:
    """``num_rows x num_classes`` last predictions; a row is NaN until written.

    Args:
        num_rows: number of samples (the dataset's length).
        num_classes: number of classes.
        dtype: ``'float16'`` (default) or ``'float32'``.
        share_on_node: keep one copy per node in shared memory when several
            processes run on a node (otherwise every process has its own).
    """

    def __init__(self, num_rows: int, num_classes: int, dtype: str = 'float16',
                 share_on_node: bool = True) -> None:
        if dtype not in DTYPES:
            raise ValueError(f'PredictionMemory: dtype must be one of {sorted(DTYPES)}, '
                             f'got {dtype!r}.')
        self.num_rows, self.num_classes = int(num_rows), int(num_classes)
        self.dtype, np_dtype = DTYPES[dtype]
        self.world_size = get_world_size()
        self.processes_sharing = 1
        self._array = None  # keeps the memory mapping alive
        if self.world_size > 1 and share_on_node:
            self.rows = self._node_shared(np_dtype)
        else:
            self.rows = torch.full((self.num_rows, self.num_classes), float('nan'),
                                   dtype=self.dtype)

    def _node_shared(self, np_dtype) -> Tensor:
        hosts = all_gather_object(socket.gethostname())
        rank = get_rank()
        node = [r for r, host in enumerate(hosts) if host == hosts[rank]]
        self.processes_sharing = len(node)
        token = [uuid.uuid4().hex if rank == 0 else None]
        broadcast_object_list(token, src=0)
        name = f'mmkd_pskd_{token[0]}_{node[0]}'
        shape = (self.num_rows, self.num_classes)
        leader = rank == node[0]
        error = None
        if leader:
            try:  # a full /dev/shm would kill the run with SIGBUS later: check first
                path = os.path.join(_shared_dir(np.dtype(np_dtype).itemsize * shape[0] *
                                                shape[1]), name)
                array = np.memmap(path, dtype=np_dtype, mode='w+', shape=shape)
                array[:] = np.nan
                array.flush()
            except MemoryError as err:
                error = str(err)
        errors = [e for e in all_gather_object(error) if e]
        if errors:
            raise MemoryError(errors[0])
        if not leader:
            path = next(p for p in (os.path.join(d, name) for d in _shared_dirs())
                        if os.path.exists(p))
            array = np.memmap(path, dtype=np_dtype, mode='r+', shape=shape)
        barrier()
        if leader:
            os.unlink(path)  # the mappings stay; nothing outlives the run
        self._array = array
        return torch.from_numpy(array)

    @property
    def bytes_per_process(self) -> int:
        """This process's share of the memory (total bytes / processes sharing it)."""
        return self.rows.numel() * self.rows.element_size() // self.processes_sharing

    def read(self, index: Tensor) -> Tensor:
        """float32 rows ``(B, C)``; a never-written row is all NaN."""
        return self.rows[index.cpu()].float()

    def update(self, index: Tensor, probs: Tensor) -> None:
        """Write ``probs`` ``(B, C)`` at ``index`` ``(B,)`` in every process's
        view: the batches of all processes are all-gathered first."""
        probs = probs.detach().to(self.dtype)
        index = index.long().to(probs.device)
        if self.world_size > 1:
            sizes = all_gather(torch.tensor([index.numel()], device=probs.device))
            longest = int(max(int(s) for s in sizes))
            pad = longest - index.numel()
            index = torch.cat([index, index.new_full((pad,), -1)])
            probs = torch.cat([probs, probs.new_zeros(pad, probs.shape[1])])
            index = torch.cat(all_gather(index))
            probs = torch.cat(all_gather(probs))
            keep = index >= 0
            index, probs = index[keep], probs[keep]
        # A sample twice in one step (a sampler's padding): keep its last row,
        # so every process writes the same bytes.
        unique, inverse = torch.unique(index, return_inverse=True)
        if len(unique) < len(index):
            order = torch.arange(len(index), device=index.device)
            last = torch.full_like(unique, -1).scatter_reduce(0, inverse, order, 'amax')
            index, probs = unique, probs[last]
        self.rows[index.cpu()] = probs.cpu()

    def state(self) -> Tensor:
        """The rows, for a checkpoint."""
        return self.rows

    def load(self, rows: Tensor) -> None:
        """Restore rows saved by :meth:`state` (every process holds the same
        checkpoint; each writes the same values)."""
        if tuple(rows.shape) != tuple(self.rows.shape):
            raise ValueError(f'the checkpoint\'s PS-KD memory has shape {tuple(rows.shape)}, the '
                             f'dataset needs {tuple(self.rows.shape)}: resume with the dataset '
                             'the checkpoint was trained on.')
        self.rows.copy_(rows.to(self.dtype))
        if self.world_size > 1:
            barrier()


def memory_rows(dataset) -> int:
    """How many rows a memory keyed by ``sample_idx`` needs for ``dataset``.

    mmengine's ``BaseDataset`` numbers its samples 0..len-1 (``sample_idx``).
    Wrappers that repeat samples (``RepeatDataset``, ``ClassBalancedDataset``)
    keep that numbering, so their inner dataset's length counts.
    ``ConcatDataset`` numbers each part from 0, so two images share a key.
    """
    while True:
        if isinstance(dataset, (ConcatDataset, TorchConcat)) or hasattr(dataset, 'datasets'):
            raise ValueError(
                f'PS-KD keys its memory by data_sample.sample_idx, which {type(dataset).__name__} '
                'does not keep unique (each of its datasets numbers its samples from 0). Merge '
                'the annotation files into one dataset, or use PSKDSnapshotHook (no per-sample '
                'memory) instead.')
        if isinstance(dataset, (RepeatDataset, ClassBalancedDataset)):
            dataset = dataset.dataset
            continue
        return len(dataset)


def sample_indices(data_samples, num_rows: Optional[int]) -> Tensor:
    """``data_sample.sample_idx`` of a batch, checked against the memory."""
    try:
        index = torch.tensor([int(s.sample_idx) for s in data_samples], dtype=torch.long)
    except (AttributeError, KeyError) as err:
        raise KeyError('PS-KD needs data_sample.sample_idx (mmengine datasets set it): keep '
                       "'sample_idx' in the pipeline's PackInputs meta_keys.") from err
    if num_rows is not None and len(index) and (int(index.min()) < 0
                                                or int(index.max()) >= num_rows):
        raise IndexError(f'sample_idx {int(index.max())} is outside the PS-KD memory of '
                         f'{num_rows} rows: the train dataset does not number its samples '
                         '0..len-1 (a wrapper that renumbers them?).')
    return index
