"""The segmentation and classification demos' student rows differ only by
distillation: for one seed, the baseline and a distilled run built by
mmengine's Runner from the demo configs start from identical student weights
and draw identical batches (the detection demo's check, for the other two)."""
import os.path as osp

import pytest
import torch
from mmengine.hooks import Hook

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TASKS = {
    'seg': ('configs/demo_seg/student_deeplabv3_r18w8_shapes_seg.py',
            'configs/demo_seg/dist_deeplabv3_r18w16_w8_shapes_seg.py'),
    'cls': ('configs/demo_cls/student_resnet18w8_shapes_cls.py',
            'configs/demo_cls/dkd_resnet18w16_w8_shapes_cls.py'),
}


class Record(Hook):

    def before_train(self, runner):
        student = getattr(runner.model, 'student', runner.model)
        self.weights = {k: v.clone() for k, v in student.state_dict().items()}
        self.batches = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.batches.append([(s.img_path, s.metainfo.get('flip'))
                             for s in data_batch['data_samples']])


@pytest.fixture(scope='module')
def data_roots(tmp_path_factory):
    from mmkd.demo.shapes import DIFFICULTY, generate_shapes
    from mmkd.demo.shapes_cls import generate_shapes_cls
    seg = tmp_path_factory.mktemp('scenes')
    generate_shapes(seg, num_train=12, num_val=2, seed=0, **DIFFICULTY['easy'])
    cls = tmp_path_factory.mktemp('crops')
    generate_shapes_cls(cls, num_train_per_class=1, num_val_per_class=1, difficulty='easy')
    return {'seg': str(seg) + '/', 'cls': str(cls) + '/'}


def run(config, seed, data_root, work_dir):
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.merge_from_dict({'randomness.seed': seed, 'train_dataloader.sampler.seed': seed,
                         'train_dataloader.dataset.data_root': data_root,
                         'train_dataloader.batch_size': 4, 'train_cfg.max_iters': 2,
                         'train_cfg.val_interval': 100,
                         'default_hooks.checkpoint.interval': 100})
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    if 'teacher' in cfg.model:
        cfg.model.teacher_ckpt = None
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'same_start_{osp.basename(str(work_dir))}'
    cfg.visualizer.name = cfg.experiment_name
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    record = Record()
    runner.register_hook(record)
    runner.train()
    return record


@pytest.mark.parametrize('task', sorted(TASKS))
def test_same_start_and_same_batches(task, data_roots, tmp_path):
    baseline, distilled = TASKS[task]
    runs = {(name, seed): run(cfg, seed, data_roots[task], tmp_path / f'{name}{seed}')
            for name, cfg in (('baseline', baseline), ('distilled', distilled))
            for seed in (0, 1)}
    for seed in (0, 1):
        a, b = runs['baseline', seed], runs['distilled', seed]
        assert a.weights.keys() == b.weights.keys()
        for key in a.weights:
            assert torch.equal(a.weights[key], b.weights[key]), (task, seed, key)
        assert len(a.batches) == 2 and a.batches == b.batches
    # not trivially true: another seed draws other weights and another order
    w0, w1 = runs['baseline', 0].weights, runs['baseline', 1].weights
    assert any(not torch.equal(w0[k], w1[k]) for k in w0)
    assert runs['baseline', 0].batches != runs['baseline', 1].batches
