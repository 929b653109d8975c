"""PS-KD (Kim et al., ICCV 2021) for image classifiers: a per-sample memory of
the model's last predictions softens its own targets."""
from typing import Optional

import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.models.losses import CrossEntropyLoss
from torch import Tensor

from mmkd.engine.prediction_memory import PredictionMemory, memory_rows, sample_indices
from mmkd.models import BaseDistiller
from mmkd.registry import HOOKS
from .schedule_utils import check_exclusive, is_iter_based, schedule_length, schedule_step, unwrap

CHECKPOINT_KEY = 'pskd_memory'


def pskd_alpha(alpha_T: float, step: int, total: int) -> float:
    """``a_t = a_T * (step + 1) / total`` for the 0-indexed epoch ``step`` of
    ``total`` (the official code's indexing: ``a_T`` in the last epoch)."""
    return alpha_T * (step + 1) / total


def pskd_targets(labels: Tensor, previous: Tensor, alpha: float) -> Tensor:
    """``(1 - a) * onehot(y) + a * P_prev`` per row.

    Args:
        labels: ``(B,)`` class indices.
        previous: ``(B, C)`` last predictions; a NaN row (never predicted)
            gives the one-hot target. Rows are renormalised to sum to 1
            (float16 storage rounds them).
        alpha: ``a_t``.
    """
    onehot = F.one_hot(labels.long(), previous.shape[1]).to(previous.dtype)
    known = ~torch.isnan(previous).any(1, keepdim=True)
    prev = torch.where(known, previous, onehot)
    prev = prev / prev.sum(1, keepdim=True)
    return (1 - alpha) * onehot + alpha * prev


@HOOKS.register_module()
class PSKDHook(Hook):
    """Progressive self-knowledge distillation of an mmpretrain classifier.

    No teacher: before each step the hook gives every sample the target
    ``(1 - a_t) * onehot(y) + a_t * P_{t-1}(x)`` as ``data_sample.gt_score``,
    so the classifier's own ``CrossEntropyLoss`` computes the cross-entropy
    with that soft target in place of the hard one (mmpretrain's ``ClsHead``
    uses ``gt_score`` when present). ``a_t = a_T * (t + 1) / T`` for the
    0-indexed epoch ``t`` of ``T``; epoch 0 uses one-hot targets. After each
    step the batch's softmax is written to the memory at its
    ``sample_idx``, all-gathered so every process sees every update
    (:class:`~mmkd.engine.prediction_memory.PredictionMemory`: float16, one
    copy per node in shared memory).

    Iteration loops: ``interval`` iterations make one "epoch" (t = iter //
    interval, T = ceil(max_iters / interval)).

    ``--resume``: the memory is saved in every checkpoint (key
    ``pskd_memory``, float16 ``N x C``: +2.56 GB per checkpoint at ImageNet
    size) and restored, so a resumed run uses the same targets as an
    uninterrupted one. With ``save_memory=False`` it is rebuilt instead:
    samples not yet seen since the resume get one-hot targets.

    Args:
        alpha_T: ``a_T``, the weight of the last predictions in the last
            epoch (0.8 in the paper's CIFAR-100 runs).
        interval: iterations per "epoch"; only (and required) for iteration
            loops.
        dtype: memory precision, ``'float16'`` or ``'float32'``.
        save_memory: keep the memory in checkpoints (see above).
    """

    priority = 'NORMAL'
    controls = ('gt_score',)

    def __init__(self, alpha_T: float = 0.8, interval: Optional[int] = None,
                 dtype: str = 'float16', save_memory: bool = True) -> None:
        if not 0 <= alpha_T <= 1:
            raise ValueError(f'PSKDHook: alpha_T must be in [0, 1], got {alpha_T!r}.')
        if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int)
                                     or interval < 1):
            raise ValueError(f'PSKDHook: interval must be an integer >= 1, got {interval!r}.')
        self.alpha_T = float(alpha_T)
        self.interval = interval
        self.dtype = dtype
        self.save_memory = save_memory
        self.memory: Optional[PredictionMemory] = None
        self._stash = None
        self._index = self._logits = None
        self._handle = None

    # -- set-up ------------------------------------------------------------------
    def before_train(self, runner) -> None:
        if is_iter_based(runner) != (self.interval is not None):
            raise ValueError('PSKDHook: an iteration-based loop needs interval=<iterations per '
                             'epoch>, and an epoch-based loop takes no interval.')
        check_exclusive(runner, self)
        head = self._check_model(unwrap(runner))
        rows = memory_rows(runner.train_dataloader.dataset)
        self.total = schedule_length(runner, self.interval)
        self.memory = PredictionMemory(rows, head.num_classes, self.dtype)
        if self._stash is not None and self._stash[0] == runner.iter > 0:
            self.memory.load(self._stash[1])
            print_log(f'PSKDHook: restored the memory of {rows} predictions from the '
                      'checkpoint.', logger='current')
        self._stash = None
        if self._handle is not None:
            self._handle.remove()
        self._handle = head.register_forward_hook(self._capture)
        print_log(f'PSKDHook: memory {rows} x {head.num_classes} {self.dtype}, '
                  f'{self.memory.bytes_per_process / 2**20:.1f} MiB per process '
                  f'({self.memory.processes_sharing} process(es) share it); a_T={self.alpha_T}, '
                  f'{self.total} epochs.', logger='current')

    @staticmethod
    def _check_model(model):
        if isinstance(model, BaseDistiller):
            raise TypeError('PSKDHook trains a plain classifier (PS-KD has no teacher), but the '
                            'model is a distiller; for distillers use mmkd.PSKDSnapshotHook.')
        head = getattr(model, 'head', None)
        loss = getattr(head, 'loss_module', None)
        if not isinstance(loss, CrossEntropyLoss) or loss.use_sigmoid:
            raise TypeError('PSKDHook needs an mmpretrain classifier whose head computes a '
                            'softmax CrossEntropyLoss (the soft target replaces its label); the '
                            f'model is a {type(model).__name__} with head loss '
                            f'{type(loss).__name__}.')
        if getattr(head, 'cal_acc', False):
            raise ValueError('PSKDHook gives the head soft targets, with which mmpretrain cannot '
                             'compute training accuracy: set model.head.cal_acc=False.')
        return head

    def _capture(self, module, args, output) -> None:
        if module.training:
            self._logits = (output[-1] if isinstance(output, (tuple, list)) else output).detach()

    # -- every step --------------------------------------------------------------
    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        samples = data_batch['data_samples']
        self._index = sample_indices(samples, self.memory.num_rows)
        labels = torch.cat([s.gt_label.reshape(-1) for s in samples])
        if labels.numel() != len(samples):
            raise ValueError('PSKDHook needs one label per image (single-label classification).')
        step = schedule_step(runner, self.interval)
        alpha = 0.0 if step == 0 else pskd_alpha(self.alpha_T, step, self.total)
        previous = (torch.full((len(samples), self.memory.num_classes), float('nan'))
                    if step == 0 else self.memory.read(self._index))
        targets = pskd_targets(labels, previous, alpha)
        for sample, target in zip(samples, targets):
            sample.set_gt_score(target)
        self._logits = None
        runner.message_hub.update_scalar('train/pskd_alpha', alpha)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._logits is None:
            raise RuntimeError('PSKDHook: the classifier head did not run in this training step, '
                               'so there are no predictions to remember.')
        self.memory.update(self._index, self._logits.float().softmax(1))
        self._logits = self._index = None

    def after_train(self, runner) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    # -- resume --------------------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.save_memory and self.memory is not None:
            checkpoint[CHECKPOINT_KEY] = self.memory.state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if CHECKPOINT_KEY in checkpoint:  # applied in before_train, when resuming
            self._stash = (checkpoint['meta']['iter'], checkpoint[CHECKPOINT_KEY])
