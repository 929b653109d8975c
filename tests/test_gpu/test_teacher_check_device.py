"""TeacherCheckHook on the check's device: the teacher is scored with the
run's validation metric (mmpretrain's Accuracy) before step 1, on the device
the Runner put the distiller on, and training goes on."""
import pytest
import torch

from mmkd.engine.hooks.teacher_check_hook import TeacherCheckHook
from tests.helpers.cls import tiny_resnet
from tests.helpers.runner import cls_dataset, loader

pytestmark = pytest.mark.gpu


def test_teacher_check_hook_scores_the_teacher_on_the_device(device, tmp_path):
    from mmengine.evaluator import Evaluator
    from mmengine.runner import Runner
    from mmpretrain.evaluation import Accuracy
    from mmkd.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(dict(type='mmkd.ClassificationDistiller', student=tiny_resnet(),
                              teacher=tiny_resnet(width=16),
                              distill_losses=dict(loss_kd=dict(type='mmkd.KDLoss', tau=2.0))))
    seen = []
    original = model.teacher.test_step
    model.teacher.test_step = lambda batch: seen.append(
        next(model.teacher.parameters()).device.type) or original(batch)
    runner = Runner(model=model, work_dir=str(tmp_path),
                    train_dataloader=loader(cls_dataset(8), batch_size=4, infinite=True),
                    train_cfg=dict(by_epoch=False, max_iters=1, val_interval=100),
                    val_dataloader=loader(cls_dataset(8, seed=1), batch_size=4),
                    val_cfg=dict(), val_evaluator=Evaluator([Accuracy()]),
                    optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
                    custom_hooks=[TeacherCheckHook(num_batches=2, min_score=0.0)],
                    default_hooks=dict(checkpoint=None), log_level='WARNING',
                    experiment_name=f'gpu_teacher_check_{id(model)}')
    runner.train()
    assert seen == [device.type, device.type]  # two val batches, on the device
    info = runner.message_hub.get_info('teacher_check')
    assert info['key'] == 'accuracy/top1' and 0.0 <= info['score'] <= 100.0
    assert runner.iter == 1
