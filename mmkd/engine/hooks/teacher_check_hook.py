"""Before the first training step, prove the teacher is the model its config says.

A teacher that loaded the wrong checkpoint, predicts the classes in another
order or sees differently normalised images still runs: it just teaches
nonsense, and the student quietly ends at (or below) its baseline. This hook
scores the **teacher** with the run's own validation metric (mmdet's
``CocoMetric``, mmseg's ``IoUMetric``, mmpretrain's ``Accuracy``: whatever
``val_evaluator`` is) on the first ``num_batches`` validation batches, logs
it, and stops the run when it is below ``min_score``.
"""
from typing import Optional

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmkd.registry import HOOKS

#: Metric keys tried in order when ``metric_key`` is not given; the first one
#: the evaluator reports is used.
DEFAULT_KEYS = ('coco/bbox_mAP', 'bbox_mAP', 'mIoU', 'accuracy/top1', 'top1')
#: Metrics reported as fractions (0-1) rather than percentages.
FRACTION_KEYS = ('coco/bbox_mAP', 'bbox_mAP', 'coco/segm_mAP', 'segm_mAP')


class TeacherCheckError(RuntimeError):
    """The teacher scores below the configured floor before training."""


@HOOKS.register_module()
class TeacherCheckHook(Hook):
    """Score the teacher on the first validation batches before training.

    Add it to ``custom_hooks`` (recommended for every distillation run)::

        custom_hooks = [dict(type='mmkd.TeacherCheckHook', num_batches=20, min_score=1.0)]

    Args:
        num_batches: validation batches scored per process (the cost: that
            many inference batches of the teacher, once).
        min_score: the floor, **in percent** (bbox mAP x 100, mIoU, top-1). The
            default 1.0 catches a teacher that is untrained, loaded into the
            wrong config or fed wrongly normalised images; set it to a few
            points under the teacher's known score for a tighter check.
        metric_key: the metric to read (default: the first of
            ``coco/bbox_mAP``, ``mIoU``, ``accuracy/top1`` that is reported).
    """

    priority = 'LOW'

    def __init__(self, num_batches: int = 20, min_score: float = 1.0,
                 metric_key: Optional[str] = None) -> None:
        if num_batches < 1:
            raise ValueError(f'TeacherCheckHook: num_batches must be >= 1, got {num_batches}.')
        self.num_batches = int(num_batches)
        self.min_score = float(min_score)
        self.metric_key = metric_key

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        teacher = getattr(model, 'teacher', None)
        if teacher is None:
            raise TypeError('TeacherCheckHook needs an mmkd distiller (a model with a teacher); '
                            f'the model is a {type(model).__name__}.')
        if runner.val_loop is None:
            raise ValueError('TeacherCheckHook scores the teacher with the validation metric: '
                             'give the config val_dataloader, val_evaluator and val_cfg.')
        score, key = self.score(teacher, runner.val_loop.dataloader, runner.val_loop.evaluator)
        message = (f'Teacher check: {key} = {score:.2f} on the first {self.num_batches} val '
                   f'batches per process (floor {self.min_score:.2f}).')
        print_log(message, logger='current')
        runner.message_hub.update_info('teacher_check', dict(key=key, score=score))
        if score < self.min_score:
            raise TeacherCheckError(
                f'{message} The teacher is not the model its config describes: check '
                'teacher_ckpt (the right file, trained on this dataset), the classes order of '
                'its dataset, and that teacher and student use the normalisation the teacher '
                'was trained with. Lower min_score only if this teacher is known to be weak.')

    @torch.no_grad()
    def score(self, teacher, dataloader, evaluator):
        """The teacher's metric (in percent) on the first batches, and its key."""
        processed = 0
        for index, batch in enumerate(dataloader):
            if index >= self.num_batches:
                break
            outputs = teacher.test_step(batch)
            evaluator.process(data_samples=outputs, data_batch=batch)
            processed += len(outputs)
        total = torch.tensor(processed)
        if get_world_size() > 1:
            all_reduce(total)
        metrics = evaluator.evaluate(int(total))
        key = self.metric_key or next((k for k in DEFAULT_KEYS if k in metrics), None)
        if key is None or key not in metrics:
            raise KeyError(f'TeacherCheckHook: metric {self.metric_key!r} not reported; the '
                           f'evaluator reported {sorted(metrics)}. Set metric_key to one of them.')
        value = float(metrics[key])
        if key in FRACTION_KEYS or (key.endswith("_mAP") and value <= 1.0):
            value *= 100
        return value, key
