"""TeacherCheckHook scores the teacher with the run's real val metric
(mmdet's CocoMetric here) before step 1, and stops a run whose teacher is
below the floor before any training step or checkpoint."""
import os

import pytest
import torch

from tests.helpers.projects import det_distill_config as distill_config
from tests.helpers.projects import plain_mmdet_config


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    from mmengine.config import Config
    from mmkd.demo.shapes import generate_shapes
    from mmkd.models import build_model
    root = tmp_path_factory.mktemp('teacher_check')
    data = root / 'data'
    generate_shapes(data, num_train=4, num_val=4, image_size=96, seed=1)
    (root / 'det.py').write_text(plain_mmdet_config(str(data)))
    teacher = build_model(Config.fromfile(str(root / 'det.py')).model, 'mmdet')
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, root / 'teacher.pth')
    (root / 'distill.py').write_text(distill_config(str(root / 'teacher.pth')))
    return root


def runner_for(project, work, min_score):
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(str(project / 'distill.py'))
    cfg.work_dir = str(work)
    cfg.train_cfg.max_iters = 1
    cfg.train_cfg.val_interval = 10
    cfg.custom_hooks = [dict(type='mmkd.TeacherCheckHook', num_batches=2, min_score=min_score)]
    return Runner.from_cfg(cfg)


def test_untrained_teacher_stops_the_run_before_step_one(project, tmp_path):
    from mmkd.engine.hooks.teacher_check_hook import TeacherCheckError
    runner = runner_for(project, tmp_path / 'w', min_score=1.0)
    calls = []
    runner.model.student.register_forward_pre_hook(lambda *a: calls.append(1))
    with pytest.raises(TeacherCheckError, match=r'coco/bbox_mAP = 0\.\d\d on the first 2 val '
                       r'batches(.|\n)*not the model its config describes'):
        runner.train()
    assert runner.iter == 0 and not calls
    assert not [f for f in os.listdir(tmp_path / 'w') if f.endswith('.pth')]


def test_passing_teacher_is_scored_logged_and_training_goes_on(project, tmp_path):
    runner = runner_for(project, tmp_path / 'w', min_score=0.0)
    seen = []
    orig = runner.model.teacher.test_step
    runner.model.teacher.test_step = lambda batch: seen.append(len(batch['inputs'])) or orig(batch)
    runner.train()
    assert seen == [2, 2]  # the first num_batches val batches, batch size 2
    info = runner.message_hub.get_info('teacher_check')
    assert info['key'] == 'coco/bbox_mAP' and 0.0 <= info['score'] <= 100.0
    assert runner.iter == 1
