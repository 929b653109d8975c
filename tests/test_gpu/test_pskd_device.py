"""PS-KD on the check's device: the memory takes probabilities computed on
the GPU, keeps the last row of a sample seen twice in a step, and stays on
the CPU (ImageNet size is 2.56 GB: not on every GPU)."""
import pytest
import torch

from mmkd.engine.hooks.pskd_hook import PSKDHook, pskd_targets
from mmkd.engine.prediction_memory import PredictionMemory
from tests.helpers.runner import ListDataset, cls_dataset, loader, make_runner, tiny_classifier

pytestmark = pytest.mark.gpu


def test_memory_takes_device_probabilities_with_duplicate_sample_idx(device):
    memory = PredictionMemory(num_rows=6, num_classes=4)
    probs = torch.rand(5, 4, device=device).softmax(1)
    index = torch.tensor([3, 1, 3, 5, 1], device=device)  # 3 and 1 twice (sampler padding)
    memory.update(index, probs)
    assert memory.rows.device.type == 'cpu' and memory.rows.dtype == torch.float16
    expected = probs.cpu().to(torch.float16)
    assert torch.equal(memory.rows[3], expected[2]) and torch.equal(memory.rows[1], expected[4])
    assert torch.equal(memory.rows[5], expected[3])
    assert torch.isnan(memory.rows[[0, 2, 4]]).all()
    read = memory.read(torch.tensor([1, 3, 0], device=device))
    assert read.dtype == torch.float32 and read.shape == (3, 4)
    labels = torch.tensor([0, 1, 2], device=device)
    targets = pskd_targets(labels, read.to(device), alpha=0.5)
    assert targets.device == labels.device
    torch.testing.assert_close(targets.sum(1), torch.ones(3, device=device))
    onehot = torch.nn.functional.one_hot(labels, 4).float()
    torch.testing.assert_close(targets[2], onehot[2])  # never predicted: the one-hot target


def test_runner_on_the_device_with_a_repeated_sample(device, tmp_path):
    items = cls_dataset(6).items
    items = items[:4] + [dict(items[1])]  # sample_idx 1 twice in the batch of 5
    items[4]['data_samples'] = items[1]['data_samples'].clone()
    dataset = ListDataset(items)
    model = tiny_classifier()
    runner = make_runner(tmp_path, model, loader(dataset, batch_size=5),
                         [PSKDHook(alpha_T=0.8)], dict(by_epoch=True, max_epochs=2))
    runner.train()
    assert next(runner.model.parameters()).device.type == device.type
    hook = next(h for h in runner.hooks if isinstance(h, PSKDHook))
    rows = hook.memory.rows
    assert rows.device.type == 'cpu' and rows.shape == (5, 4)
    written = rows[:4].float()  # sample_idx 0..3 (the repeat wrote row 1 twice)
    assert not torch.isnan(written).any()
    torch.testing.assert_close(written.sum(1), torch.ones(4), atol=2e-3, rtol=0)
