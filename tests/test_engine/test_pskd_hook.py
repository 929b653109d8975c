"""PSKDHook: the target formula and a_t schedule against hand-computed values,
the soft-target CE through mmpretrain's own head loss, the memory in a real
Runner (rows at the right sample_idx, epoch 0 one-hot), and resume."""
import math

import pytest
import torch
from mmengine.dataset import BaseDataset, ConcatDataset, RepeatDataset

from mmkd.engine.checkpoint import load_checkpoint_file
from mmkd.engine.hooks import PSKDHook, pskd_alpha, pskd_targets
from mmkd.engine.prediction_memory import memory_rows, sample_indices
from tests.helpers.runner import Recorder, cls_dataset, loader, make_runner, tiny_classifier


def test_alpha_schedule_uses_the_official_indexing():
    # alpha_t = alpha_T * (epoch + 1) / max_epochs, epochs 0-indexed
    assert [pskd_alpha(0.8, e, 4) for e in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert pskd_alpha(0.3, 99, 100) == pytest.approx(0.3)


def test_targets_by_hand():
    labels = torch.tensor([0, 2, 1])
    previous = torch.tensor([[0.5, 0.3, 0.2],
                             [float('nan')] * 3,        # never predicted: one-hot
                             [0.2, 0.2, 0.6]])
    targets = pskd_targets(labels, previous, alpha=0.25)
    expected = torch.tensor([[0.75 + 0.125, 0.075, 0.05],
                             [0.0, 0.0, 1.0],
                             [0.05, 0.75 + 0.05, 0.15]])
    assert torch.allclose(targets, expected, atol=1e-7)
    # float16 storage leaves rows off 1 by rounding: renormalised
    rounded = torch.tensor([[0.25, 0.25, 0.5 + 2e-3]])
    assert torch.allclose(pskd_targets(torch.tensor([2]), rounded, 1.0).sum(), torch.tensor(1.))


def test_gt_score_makes_the_head_compute_soft_target_ce():
    model = tiny_classifier()
    from mmpretrain.structures import DataSample
    logits = torch.randn(3, 4)
    target = torch.softmax(torch.randn(3, 4), 1)
    samples = [DataSample().set_gt_label(0).set_gt_score(t) for t in target]
    loss = model.head.loss_module(logits, torch.stack([s.gt_score for s in samples]),
                                  avg_factor=3)
    # the official code's loss: (-targets * log_softmax(out)).mean(0).sum()
    official = (-target * torch.log_softmax(logits, 1)).mean(0).sum()
    assert torch.allclose(loss, official, atol=1e-6)


class _Items(BaseDataset):
    """An mmengine dataset of ``num`` records (no files)."""

    def __init__(self, num):
        self.num = num
        super().__init__(serialize_data=False)

    def load_data_list(self):
        return [dict(value=i) for i in range(self.num)]


def test_memory_rows_and_wrappers():
    data = _Items(6)
    assert memory_rows(data) == 6
    assert data.get_data_info(4)['sample_idx'] == 4  # what mmengine sets and the memory keys on
    assert memory_rows(RepeatDataset(data, times=3)) == 6
    concat = ConcatDataset([data, _Items(3)])
    assert concat.get_data_info(7)['sample_idx'] == 1  # the same key as data's sample 1
    with pytest.raises(ValueError, match='sample_idx.*ConcatDataset'):
        memory_rows(concat)
    samples = [item['data_samples'] for item in cls_dataset(6).items[4:0:-3]]
    assert sample_indices(samples, 6).tolist() == [4, 1]
    with pytest.raises(IndexError, match='outside the PS-KD memory of 3 rows'):
        sample_indices(samples, 3)
    with pytest.raises(KeyError, match="'sample_idx' in the pipeline's PackInputs"):
        from mmpretrain.structures import DataSample
        sample_indices([DataSample()], 6)


def _record(runner, batch):
    samples = batch['data_samples']
    hook = next(h for h in runner.hooks if isinstance(h, PSKDHook))
    return dict(epoch=runner.epoch, idx=[int(s.sample_idx) for s in samples],
                labels=[int(s.gt_label) for s in samples],
                score=torch.stack([s.gt_score for s in samples]).clone(),
                memory=hook.memory.rows.clone())


def test_runner_targets_memory_and_resume(tmp_path):
    data = loader(cls_dataset(8), batch_size=4, shuffle=True)
    seen = Recorder(before_iter=_record)
    probs = Recorder(after_iter=lambda runner, outputs: next(
        h for h in runner.hooks if isinstance(h, PSKDHook)).memory.rows.clone())
    ckpt = dict(type='CheckpointHook', interval=1, by_epoch=True)
    runner = make_runner(tmp_path, tiny_classifier(), data, [PSKDHook(alpha_T=0.8), seen, probs],
                         dict(by_epoch=True, max_epochs=3), checkpoint=ckpt)
    runner.train()
    assert len(seen.rows) == 6
    for row in seen.rows[:2]:  # epoch 0: one-hot targets
        assert torch.equal(row['score'], torch.eye(4)[row['labels']])
    # epoch 0 wrote every sample's row exactly once: 8 rows, none left NaN
    after_epoch0 = probs.rows[1]
    assert not torch.isnan(after_epoch0).any()
    assert torch.allclose(after_epoch0.float().sum(1), torch.ones(8), atol=2e-3)
    for row in seen.rows[2:]:
        t = row['epoch']
        alpha = 0.8 * (t + 1) / 3
        prev = row['memory'][row['idx']].float()
        prev = prev / prev.sum(1, keepdim=True)
        expected = (1 - alpha) * torch.eye(4)[row['labels']] + alpha * prev
        assert torch.allclose(row['score'], expected, atol=1e-6)
    # the memory at epoch 2 holds epoch 1's predictions: it changed since epoch 0
    assert not torch.equal(seen.rows[4]['memory'], seen.rows[2]['memory'])

    saved = load_checkpoint_file(str(tmp_path / 'epoch_2.pth'))
    assert saved['pskd_memory'].dtype == torch.float16
    assert torch.equal(saved['pskd_memory'], seen.rows[4]['memory'])  # end of epoch 1
    resumed = Recorder(before_iter=_record)
    make_runner(tmp_path, tiny_classifier(), data, [PSKDHook(alpha_T=0.8), resumed],
                dict(by_epoch=True, max_epochs=3), checkpoint=ckpt, resume=True,
                load_from=str(tmp_path / 'epoch_2.pth')).train()
    assert resumed.rows[0]['epoch'] == 2
    assert torch.equal(resumed.rows[0]['memory'], seen.rows[4]['memory'])


def test_iteration_loop_interval(tmp_path):
    seen = Recorder(before_iter=lambda runner, batch: runner.message_hub.get_scalar(
        'train/pskd_alpha').current())
    make_runner(tmp_path, tiny_classifier(), loader(cls_dataset(4), batch_size=2, infinite=True),
                [PSKDHook(alpha_T=0.6, interval=2), seen], dict(by_epoch=False, max_iters=5)
                ).train()
    total = math.ceil(5 / 2)  # 3 "epochs" of 2 iterations
    assert seen.rows == pytest.approx([0, 0, 0.6 * 2 / total, 0.6 * 2 / total, 0.6])


def test_bad_set_ups_are_refused(tmp_path):
    data = loader(cls_dataset(4))
    with pytest.raises(ValueError, match='iteration-based loop needs interval'):
        make_runner(tmp_path, tiny_classifier(), data, [PSKDHook()],
                    dict(by_epoch=False, max_iters=2)).train()
    model = tiny_classifier()
    model.head.cal_acc = True
    with pytest.raises(ValueError, match='cal_acc=False'):
        make_runner(tmp_path, model, data, [PSKDHook()], dict(by_epoch=True, max_epochs=1)).train()
    with pytest.raises(ValueError, match='alpha_T'):
        PSKDHook(alpha_T=1.5)
