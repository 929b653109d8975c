"""PredictionMemory across 2 gloo processes: every update reaches every process,
at the right rows, and the two processes of a node share one copy."""
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmkd.engine.prediction_memory import PredictionMemory

ROWS, CLASSES = 10, 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _probs(rank: int, n: int) -> torch.Tensor:
    """Distinct, exactly representable rows (float16) per rank and position."""
    base = torch.tensor([0.5, 0.25, 0.25])
    return torch.stack([base.roll(rank + i) for i in range(n)])


def _worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    try:
        memory = PredictionMemory(ROWS, CLASSES)
        # step 1: rank 0 has 3 samples, rank 1 has 1 (uneven batches)
        index = torch.tensor([0, 5, 7]) if rank == 0 else torch.tensor([2])
        memory.update(index, _probs(rank, len(index)))
        step1 = memory.read(torch.arange(ROWS)).clone()
        dist.barrier()
        # step 2: rank 1 overwrites row 5; rank 0 writes row 9
        index = torch.tensor([9]) if rank == 0 else torch.tensor([5])
        memory.update(index, torch.full((1, CLASSES), 1 / 4) if rank == 0 else
                      torch.tensor([[0.125, 0.125, 0.75]]))
        dist.barrier()
        torch.save(dict(step1=step1, step2=memory.read(torch.arange(ROWS)),
                        sharing=memory.processes_sharing,
                        bytes=memory.bytes_per_process),
                   os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def test_updates_are_all_gathered_to_the_right_rows(tmp_path):
    # fork: the children start with mmkd already imported (spawn re-imports
    # mmdet, mmseg and mmpretrain in each child, ~20 s on 2 busy cores)
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method='fork')
    results = [torch.load(tmp_path / f'rank{r}.pt', weights_only=True) for r in (0, 1)]
    nan = torch.full((CLASSES,), float('nan'))
    expected1 = torch.stack([nan] * ROWS)
    expected1[[0, 5, 7]] = _probs(0, 3)
    expected1[2] = _probs(1, 1)[0]
    expected2 = expected1.clone()
    expected2[9] = 0.25
    expected2[5] = torch.tensor([0.125, 0.125, 0.75])
    for result in results:
        assert torch.equal(result['step1'].isnan(), expected1.isnan())
        assert torch.equal(result['step1'].nan_to_num(-1), expected1.nan_to_num(-1))
        assert torch.equal(result['step2'].nan_to_num(-1), expected2.nan_to_num(-1))
        # both processes run on this host: one float16 copy, half each
        assert result['sharing'] == 2
        assert result['bytes'] == ROWS * CLASSES * 2 // 2


def test_single_process_memory_and_duplicates():
    memory = PredictionMemory(4, 2)
    assert memory.rows.dtype == torch.float16 and memory.read(torch.arange(4)).isnan().all()
    # a sample twice in one step keeps its last row
    memory.update(torch.tensor([1, 3, 1]), torch.tensor([[1., 0.], [0.5, 0.5], [0., 1.]]))
    assert memory.read(torch.tensor([1, 3])).tolist() == [[0., 1.], [0.5, 0.5]]
    assert memory.read(torch.tensor([0, 2])).isnan().all()
    assert memory.bytes_per_process == 4 * 2 * 2
