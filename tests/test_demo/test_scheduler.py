"""The demo scheduler's time estimates and its ETA over jobs that wait for
other jobs (pretraining -> teacher -> distilled students), by hand."""
import time

import pytest

from mmkd.demo.scheduler import Scheduler
from mmkd.demo.tasks import TASKS


def _job(name, needs=(), iters=100):
    return dict(id=f'{name}/0', name=name, iters=iters, needs=list(needs))


def test_estimates_from_the_priors_and_from_measured_runs_of_the_same_family():
    sched = Scheduler(2, TASKS['cls'])
    # priors (s / iter): baseline 0.25, distilled 0.33, pretrain_teacher 0.33; overhead 15 s
    assert sched.estimate(_job('baseline')) == pytest.approx(15 + 25)
    assert sched.estimate(_job('kd', ['teacher/0'])) == pytest.approx(15 + 33)
    sched.rate = {'pretrain_student': [0.065]}  # half its prior (0.13)
    assert sched.estimate(_job('pretrain_teacher')) == pytest.approx(15 + 0.33 * 0.5 * 100)
    assert sched.estimate(_job('baseline')) == pytest.approx(15 + 0.25 * 0.5 * 100)
    # once a baseline ran, the students' priors scale by it, not by the pretraining
    sched.rate['baseline'] = [0.05]  # a fifth of its prior
    assert sched.estimate(_job('kd')) == pytest.approx(15 + 0.33 * 0.2 * 100)
    assert sched.estimate(_job('baseline')) == pytest.approx(15 + 5)
    assert sched.estimate(_job('pretrain_teacher')) == pytest.approx(15 + 0.33 * 0.5 * 100)


def test_eta_waits_for_every_job_a_job_needs():
    sched = Scheduler(2, TASKS['det'])
    pending = [_job('pretrain_teacher'), _job('pretrain_student'),
               _job('teacher', ['pretrain_teacher/0']),
               _job('baseline', ['pretrain_student/0']),
               _job('kd', ['pretrain_student/0', 'teacher/0'])]
    # 48, 28, 65, 40, 48 s; two lanes: pre_t 0-48 | pre_s 0-28; teacher 48-113 (after
    # pre_t); baseline 48-88 on the lane free at 48; kd after the teacher: 113-161
    assert sched.eta({}, pending) == pytest.approx(161)
    # the teacher's pretraining running for 18 s already: 30 s left, all 18 s earlier
    running = {object(): dict(pending[0], started=time.time() - 18)}
    assert sched.eta(running, pending[1:]) == pytest.approx(143, abs=0.1)
