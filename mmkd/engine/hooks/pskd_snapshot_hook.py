"""PS-KD for detectors and segmentors: the previous epoch's frozen snapshot of
the student is the teacher of an mmkd distiller."""
from typing import Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner.checkpoint import weights_to_cpu

from mmkd.losses import KDLoss, LogitLoss
from mmkd.registry import HOOKS
from .pskd_hook import pskd_alpha
from .schedule_utils import (check_exclusive, check_unused_parameters, distiller_of,
                             is_iter_based, schedule_length, schedule_step)

CHECKPOINT_KEY = 'pskd_snapshot'


@HOOKS.register_module()
class PSKDSnapshotHook(Hook):
    """PS-KD through a distiller whose teacher is the student one epoch ago.

    A per-sample memory of every RoI or pixel does not fit, so the model's
    previous-epoch predictions come from a frozen copy of the student taken
    at each epoch boundary: the distiller's teacher, configured as the
    student's own model with ``teacher_ckpt=None``. It scores the student's
    RoIs (detection) or pixels (segmentation) as any teacher does.

    The PS-KD loss ``CE(y_soft, p_s)`` with ``y_soft = (1 - a) onehot(y) +
    a P_teacher`` splits exactly into ``(1 - a) CE(y, p_s) + a KL(P_teacher ||
    p_s)`` plus the teacher's entropy, a constant. So the hook **re-weights**
    (it does not replace) the task's classification loss: the keys in
    ``cls_loss_keys`` are scaled by ``1 - a_t`` (``student_loss_scales``) and
    the distiller's ``mmkd.KDLoss`` (``tau=1``) by ``a_t``
    (``distill_factor``), which gives the soft-target CE's gradient exactly
    when both terms average over the same rows with the same weight: for
    Faster R-CNN's ``loss_cls`` (mean over the sampled RoIs, loss_weight 1)
    and a ``KDLoss(tau=1, loss_weight=1)`` on those RoIs it is exact. For
    segmentation, mmseg's ``decode.loss_ce`` is computed on logits upsampled
    to the label size while the distiller compares logits at head
    resolution, so the two terms see different pixel grids: the gradient is
    the soft-target CE's up to that resampling.

    Epoch 0 has no previous model: the distiller's ``distill_active`` is
    False (the student trains alone on its one-hot targets, the teacher does
    not run). Before the first step of every later epoch the teacher gets the
    student's weights. Iteration loops: ``interval`` iterations make one
    "epoch" (t = iter // interval, T = ceil(max_iters / interval)).

    ``--resume``: a checkpoint taken at an epoch boundary (the usual case)
    holds exactly the student the next snapshot copies, so the snapshot is
    rebuilt from it at no cost. A checkpoint taken inside an epoch (interval)
    also stores the snapshot's weights (key ``pskd_snapshot``, one student's
    size), which are restored.

    Args:
        alpha_T: ``a_T`` (0.8 in the paper).
        cls_loss_keys: the student's classification loss keys to re-weight
            (``('loss_cls',)`` for mmdet's RoI head, ``('decode.loss_ce',)``
            for mmseg).
        interval: iterations per "epoch"; only (and required) for iteration
            loops.
    """

    priority = 'NORMAL'
    controls = ('distill_active', 'distill_factor', 'student_loss_scales')

    def __init__(self, alpha_T: float = 0.8, cls_loss_keys: Sequence[str] = ('loss_cls',),
                 interval: Optional[int] = None) -> None:
        if not 0 <= alpha_T <= 1:
            raise ValueError(f'PSKDSnapshotHook: alpha_T must be in [0, 1], got {alpha_T!r}.')
        if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int)
                                     or interval < 1):
            raise ValueError(f'PSKDSnapshotHook: interval must be an integer >= 1, got '
                             f'{interval!r}.')
        if isinstance(cls_loss_keys, str) or not cls_loss_keys:
            raise ValueError('PSKDSnapshotHook: cls_loss_keys must be a non-empty list of loss '
                             f'keys, got {cls_loss_keys!r}.')
        self.alpha_T = float(alpha_T)
        self.cls_loss_keys = tuple(cls_loss_keys)
        self.interval = interval
        self.snapshot_step: Optional[int] = None  # the epoch whose snapshot the teacher holds
        self._stash = None

    def before_train(self, runner) -> None:
        model = distiller_of(runner, 'PSKDSnapshotHook')
        if is_iter_based(runner) != (self.interval is not None):
            raise ValueError('PSKDSnapshotHook: an iteration-based loop needs interval='
                             '<iterations per epoch>, and an epoch-based loop takes no interval.')
        check_exclusive(runner, self)
        check_unused_parameters(runner, model, 'PSKDSnapshotHook')
        self._check_distiller(model)
        self.total = schedule_length(runner, self.interval)
        self.snapshot_step = None
        step = schedule_step(runner, self.interval)
        if self._stash is not None and self._stash[0] == runner.iter > 0 and \
                self._stash[1] == step:
            model.teacher.load_state_dict(self._stash[2])
            self.snapshot_step = step
            print_log('PSKDSnapshotHook: restored the snapshot teacher from the checkpoint.',
                      logger='current')
        self._stash = None

    @staticmethod
    def _check_distiller(model) -> None:
        # every logit loss of the distiller (distill_losses, a segmentor's
        # aux_distill_losses, ...) must be KL(teacher || student) at tau 1
        losses = {name: loss for name, loss in model.named_modules()
                  if isinstance(loss, LogitLoss)}
        if not model.distill_losses or any(
                not isinstance(loss, KDLoss) or loss.tau != 1
                or getattr(loss, 'logit_standardize', False) for loss in losses.values()):
            raise ValueError('PSKDSnapshotHook splits the soft-target CE into the task CE and '
                             'KL(teacher || student): give the distiller distill_losses='
                             "dict(loss_kd=dict(type='mmkd.KDLoss', tau=1.0)) and nothing else "
                             '(no logit_standardize, which changes the soft target); it has '
                             f'{({k: type(v).__name__ for k, v in losses.items()})}.')
        if model.connector is not None:
            raise ValueError('PSKDSnapshotHook: PS-KD distils predictions only; drop reviewkd.')
        own, snap = model.student.state_dict(), model.teacher.state_dict()
        if set(own) != set(snap) or any(own[k].shape != snap[k].shape for k in own):
            raise ValueError('PSKDSnapshotHook copies the student into the teacher: configure '
                             'the teacher as the student\'s own model (teacher={{_base_.model}} '
                             'of the student\'s config) with teacher_ckpt=None.')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        model = distiller_of(runner, 'PSKDSnapshotHook')
        step = schedule_step(runner, self.interval)
        if step == 0:
            model.distill_active, alpha = False, 0.0
            model.student_loss_scales = {}
        else:
            if self.snapshot_step != step:
                self.refresh(model, step)
            alpha = pskd_alpha(self.alpha_T, step, self.total)
            model.distill_active = True
            model.distill_factor = alpha
            model.student_loss_scales = {key: 1.0 - alpha for key in self.cls_loss_keys}
        runner.message_hub.update_scalar('train/pskd_alpha', alpha)

    @torch.no_grad()
    def refresh(self, model, step: int) -> None:
        """The teacher becomes a frozen copy of the student as it is now."""
        model.teacher.load_state_dict(model.student.state_dict())
        model.teacher.eval()
        self.snapshot_step = step
        print_log(f'PSKDSnapshotHook: the teacher is now the student at the end of epoch {step} '
                  f'(a_t = {pskd_alpha(self.alpha_T, step, self.total):.4g}).', logger='current')

    # -- resume --------------------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint['meta']
        if self.interval is None:
            # saved after an epoch: meta['epoch'] is the next one; inside one: this one.
            boundary, step = meta['epoch'] > runner.epoch, meta['epoch']
        else:
            boundary, step = meta['iter'] % self.interval == 0, meta['iter'] // self.interval
        if not boundary and step > 0 and self.snapshot_step == step:
            model = distiller_of(runner, 'PSKDSnapshotHook')
            checkpoint[CHECKPOINT_KEY] = dict(step=step, iter=meta['iter'],
                                              state_dict=weights_to_cpu(model.teacher.state_dict()))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if CHECKPOINT_KEY in checkpoint:  # applied in before_train, when resuming
            saved = checkpoint[CHECKPOINT_KEY]
            self._stash = (saved['iter'], saved['step'], saved['state_dict'])
