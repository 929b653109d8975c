"""The demo configs run as they stand: their schedules are what the demo
trains, their teacher_ckpt is where the demo leaves the teacher, and without
that file they fail with an error that names the command that trains it."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmkd.demo.runner import default_dirs, teacher_checkpoint
from mmkd.demo.scheduler import schedule_options
from mmkd.demo.tasks import BASELINE, TASKS, TEACHER
from mmkd.registry import MODELS
from tests.helpers import REPO

COMMANDS = {'det': 'python tools/run_demo.py`', 'seg': 'python tools/run_demo.py --task seg',
            'cls': 'python tools/run_demo.py --task cls'}


def _config(path):
    return Config.fromfile(osp.join(REPO, path))


def _distilled():
    for name, task in sorted(TASKS.items()):
        for method in sorted(task.students):
            if 'teacher' in _config(task.config(method)).model:
                yield name, method


DISTILLED = list(_distilled())


def test_every_task_has_distilled_configs():
    assert {task for task, _ in DISTILLED} == {'det', 'seg', 'cls'}
    assert ('det', 'dkd') in DISTILLED and ('cls', 'eskd') in DISTILLED


@pytest.mark.parametrize('task,method', DISTILLED)
def test_teacher_ckpt_is_what_the_demo_writes(task, method):
    spec = TASKS[task]
    teacher_iters = _config(spec.config(TEACHER)).train_cfg.max_iters
    written = teacher_checkpoint(default_dirs(spec)[0], teacher_iters)
    model = _config(spec.config(method)).model
    assert model.teacher_ckpt == written
    assert COMMANDS[task] in model.teacher_ckpt_hint


@pytest.mark.parametrize('task', sorted(TASKS))
@pytest.mark.parametrize('name', [TEACHER, BASELINE])
def test_configs_state_the_schedule_the_demo_trains(task, name):
    """The demo stretches each config's schedule to the config's own length
    by default: nothing changes, so tools/train.py runs what the demo runs."""
    cfg = _config(TASKS[task].config(name))
    opts = schedule_options(TASKS[task].config(name), cfg.train_cfg.max_iters)
    assert opts['train_cfg.max_iters'] == cfg.train_cfg.max_iters
    schedulers = cfg.param_scheduler
    for key, value in opts.items():
        if key.startswith('param_scheduler'):
            *index, field = key.split('.')[1:]
            sched = schedulers[int(index[0])] if index else schedulers
            assert sched[field] == value, key


def test_detection_schedules_are_the_demos():
    assert _config(TASKS['det'].config(TEACHER)).train_cfg.max_iters == 300
    for method in TASKS['det'].students:
        assert _config(TASKS['det'].config(method)).train_cfg.max_iters == 250


@pytest.mark.parametrize('task', sorted(TASKS))
def test_every_demo_model_loads_the_backbone_its_pretraining_run_writes(task):
    """A demo config run on its own (tools/train.py) finds the backbone
    where `make demo` leaves it: work_dirs/demo_pretrain/<config>/iter_<its
    steps>.pth, with the classifier's ``backbone.`` prefix."""
    spec = TASKS[task]

    def expected(role):
        pre = _config(spec.pretrain_config(role))
        name = osp.splitext(spec.pretrain[role])[0]
        return dict(type='Pretrained', prefix='backbone.', checkpoint=(
            f'work_dirs/demo_pretrain/{name}/iter_{pre.train_cfg.max_iters}.pth'))

    assert _config(spec.config(TEACHER)).model.backbone.init_cfg == expected(TEACHER)
    for method in spec.students:
        model = _config(spec.config(method)).model
        assert model.get('student', model).backbone.init_cfg == expected('student')


@pytest.mark.parametrize('task', sorted(TASKS))
def test_missing_teacher_names_the_command_that_trains_it(task, tmp_path, monkeypatch):
    method = next(m for t, m in DISTILLED if t == task)
    cfg = _config(TASKS[task].config(method))
    monkeypatch.chdir(tmp_path)  # no work_dirs/ here
    with pytest.raises(FileNotFoundError) as err:
        MODELS.build(cfg.model)
    assert cfg.model.teacher_ckpt in str(err.value) and COMMANDS[task] in str(err.value)


@pytest.mark.parametrize('task', sorted(TASKS))
@pytest.mark.parametrize('name', [TEACHER, BASELINE])
def test_configs_read_the_data_the_demo_writes(task, name):
    """tools/train.py on a demo config reads the scenes the demo generated
    for that task (the segmentation demo's own dir, with its 1000 val
    scenes, not the detection demo's)."""
    data_dir = default_dirs(TASKS[task])[1]
    cfg = _config(TASKS[task].config(name))
    for split in ('train', 'val', 'test'):
        assert cfg[f'{split}_dataloader'].dataset.data_root.rstrip('/') == data_dir
