"""The demo's student rows differ only by distillation.

For one seed, the baseline run and a distilled run (built by mmengine's Runner
from the demo configs, as tools/run_demo.py builds them) start from identical
student weights (the same pretrained backbone, the same seeded heads) and
draw identical batches (same images, same flips).
"""
import os.path as osp

import pytest
import torch

from tests.helpers import REPO
from tests.test_demo.helpers import (assert_backbone_is, assert_same, pretrained_backbone, run,
                                     with_pretrained)

BASELINE = 'configs/demo/student_faster_rcnn_r18w16_shapes.py'
DISTILLED = 'configs/demo/dkd_r18_r18w16_shapes.py'


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    from mmkd.demo.shapes import generate_shapes
    root = tmp_path_factory.mktemp('shapes_easy')
    generate_shapes(root, num_train=16, num_val=2, seed=0, difficulty='easy')
    return str(root) + '/'


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory):
    path = tmp_path_factory.mktemp('pretrain') / 'r18w16.pth'
    return path, pretrained_backbone('r18w16_det_shapes.py', path)


@pytest.fixture(scope='module')
def runs(data_root, pretrained, tmp_path_factory):
    work = tmp_path_factory.mktemp('work')
    return {(name, seed): run(cfg, seed, data_root, work / f'{name}{seed}', pretrained[0])
            for name, cfg in (('baseline', BASELINE), ('dkd', DISTILLED)) for seed in (0, 1)}


def test_baseline_and_distilled_students_start_from_identical_weights(runs, pretrained):
    base = runs['baseline', 0].weights
    assert_same(base, runs['dkd', 0].weights)
    # not trivially true: another seed draws other weights (the heads)
    other = runs['baseline', 1].weights
    assert any(not torch.equal(base[k], other[k]) for k in base)
    assert_same(other, runs['dkd', 1].weights)
    # and every run's backbone is the pretrained one, whatever the seed
    for key in runs:
        assert_backbone_is(runs[key].weights, pretrained[1])


def test_student_built_first_matches_plain_student_and_teacher_first_would_not(pretrained):
    """By hand, without the Runner: the distiller's student equals a plain
    student built with the same seed; building the teacher first (what the
    forked RNG prevents) would give another one."""
    from mmengine.config import Config
    from mmengine.runner import set_random_seed

    from mmkd.models.detection_distiller import build_detector
    from mmkd.registry import MODELS
    cfg = with_pretrained(Config.fromfile(osp.join(REPO, DISTILLED)), pretrained[0])
    cfg.model.teacher_ckpt = None

    def init(model):
        model.init_weights()
        return {k: v.clone() for k, v in getattr(model, 'student', model).state_dict().items()}

    set_random_seed(0)
    plain = init(build_detector(cfg.model.student))
    set_random_seed(0)
    assert_same(plain, init(MODELS.build(cfg.model)))
    set_random_seed(0)
    build_detector(cfg.model.teacher)
    shifted = init(build_detector(cfg.model.student))
    assert any(not torch.equal(plain[k], shifted[k]) for k in plain)


def test_baseline_and_distilled_runs_draw_identical_batches(runs):
    base = runs['baseline', 0].batches
    assert len(base) == 2 and len({p for batch in base for p, _ in batch}) == 8
    assert base == runs['dkd', 0].batches
    assert base != runs['baseline', 1].batches  # the seed does set the order
    assert runs['baseline', 1].batches == runs['dkd', 1].batches
