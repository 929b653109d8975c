"""Issue 22's cls demo rows: kd_ls, dkd_ls, kd_dot and kd_sgd are methods
of the cls task that plan and build (configs only, no training), on the
demo's KD / DKD rows with the plug-in's published settings; the KD and DKD
rows still resolve to their own configs."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import DefaultScope

from mmkd.demo.runner import plan_jobs, select_methods
from mmkd.demo.tasks import BASELINE, TASKS, TEACHER
from mmkd.engine.optim import DOTOptimWrapper
from mmkd.registry import MODELS
from tests.helpers import REPO

CLS = TASKS['cls']
NEW = ['kd_ls', 'dkd_ls', 'kd_dot', 'kd_sgd']


def _config(method):
    return Config.fromfile(osp.join(REPO, CLS.config(method)))


def _losses(cfg):
    return {k: dict(v) for k, v in cfg.model.distill_losses.items()}


def test_new_methods_are_registered_beside_kd_and_dkd():
    for method in NEW:
        assert CLS.students[method] == f'{method}_resnet18w16_w8_shapes_cls.py'
    # the variants' files match kd_*.py / dkd_*.py: kd and dkd keep their own
    assert CLS.students['kd'] == 'kd_resnet18w16_w8_shapes_cls.py'
    assert CLS.students['dkd'] == 'dkd_resnet18w16_w8_shapes_cls.py'
    assert not set(NEW) & (set(TASKS['seg'].students) | set(TASKS['det'].students))
    assert CLS.default_methods == [BASELINE, 'kd', 'dkd', 'dist']


def test_new_methods_are_planned_seed_major_after_the_baseline(tmp_path):
    methods = select_methods(CLS, ['kd', *NEW])
    assert methods == [BASELINE, 'kd', *NEW]
    jobs, order = plan_jobs(CLS, methods, [0, 1], (None, None), {}, str(tmp_path), False)
    assert order == methods
    assert [j['name'] for j in jobs[:5]] == ['pretrain_teacher', 'pretrain_student', TEACHER,
                                             BASELINE, BASELINE]
    assert [(j['seed'], j['name']) for j in jobs[5:]] == [
        (s, m) for s in (0, 1) for m in ['kd', *NEW]]
    assert len({j['key'] for j in jobs}) == len(jobs)  # no two runs share a fingerprint


def test_ls_rows_use_the_ls_authors_flags():
    kd_ls, dkd_ls, dkd = _config('kd_ls'), _config('dkd_ls'), _config('dkd')
    # --base-temp 2 --kd-weight 9, CE weight 1
    assert _losses(kd_ls) == dict(loss_kd=dict(type='mmkd.KDLoss', tau=2.0, loss_weight=9.0,
                                               logit_standardize=True))
    assert kd_ls.model.student.head.loss.loss_weight == 1.0
    # DKD's alpha 1 / beta 8 times the KD weight 9, T the base temperature
    assert _losses(dkd_ls) == dict(loss_dkd=dict(type='mmkd.DKDLoss', alpha=9.0, beta=72.0,
                                                 tau=2.0, logit_standardize=True))
    assert dkd_ls.custom_hooks == dkd.custom_hooks  # the demo's DKD warm-up
    for cfg in (kd_ls, dkd_ls):  # the AdamW rows' optimizer
        assert cfg.optim_wrapper == _config('kd').optim_wrapper


@pytest.mark.parametrize('method', NEW)
def test_new_methods_build_as_the_runner_builds_them(method):
    cfg = _config(method)
    assert cfg.train_cfg.max_iters == _config(BASELINE).train_cfg.max_iters
    model_cfg = cfg.model.copy()
    model_cfg.teacher_ckpt = None
    model = MODELS.build(model_cfg)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        built = build_optim_wrapper(model, cfg.optim_wrapper)
    trained = {id(p) for g in built.optimizer.param_groups for p in g['params']}
    assert trained == {id(p) for p in model.student.parameters()}
    if method in ('kd_dot', 'kd_sgd'):
        # the same SGD and KD row; DOT only adds its two momentum buffers
        assert _losses(cfg) == _losses(_config('kd'))
        group = built.optimizer.param_groups[0]
        assert (type(built.optimizer).__name__, group['lr'], group['momentum'],
                group['weight_decay']) == ('SGD', 0.025, 0.9, 5e-4)
        if method == 'kd_dot':
            assert isinstance(built, DOTOptimWrapper) and built.delta == 0.09
        else:
            assert type(built) is OptimWrapper
