"""mmkd's training hooks, one per file, registered in ``mmkd.registry.HOOKS``."""
from .distill_warmup_hook import DistillWarmupHook
from .early_stop_distill_hook import EarlyStopDistillHook
from .pskd_hook import PSKDHook, pskd_alpha, pskd_targets
from .pskd_snapshot_hook import PSKDSnapshotHook
from .teacher_check_hook import TeacherCheckError, TeacherCheckHook

__all__ = ['TeacherCheckError', 'TeacherCheckHook', 'DistillWarmupHook', 'EarlyStopDistillHook',
           'PSKDHook', 'PSKDSnapshotHook', 'pskd_alpha', 'pskd_targets']
