"""The segmentation and classification demos' student rows differ only by
distillation: for one seed, the baseline and a distilled run built by
mmengine's Runner from the demo configs start from identical student weights
and draw identical batches (the detection demo's check, for the other two)."""
import pytest
import torch

# the Runner set-up, the recording hook and the pretrained-backbone stand-in
from tests.test_demo.helpers import assert_backbone_is, pretrained_backbone, run

TASKS = {
    'seg': ('configs/demo_seg/student_deeplabv3_r18w8_shapes_seg.py',
            'configs/demo_seg/dist_deeplabv3_r18w16_w8_shapes_seg.py',
            'r18v1c_w8_seg_shapes.py'),
    'cls': ('configs/demo_cls/student_resnet18w8_shapes_cls.py',
            'configs/demo_cls/dkd_resnet18w16_w8_shapes_cls.py',
            'resnet_cifar_w8_crops.py'),
}


@pytest.fixture(scope='module')
def data_roots(tmp_path_factory):
    from mmkd.demo.shapes import generate_shapes
    from mmkd.demo.shapes_cls import generate_shapes_cls
    seg = tmp_path_factory.mktemp('scenes')
    generate_shapes(seg, num_train=12, num_val=2, seed=0, difficulty='easy')
    cls = tmp_path_factory.mktemp('crops')
    generate_shapes_cls(cls, num_train_per_class=1, num_val_per_class=1, difficulty='easy')
    return {'seg': str(seg) + '/', 'cls': str(cls) + '/'}


@pytest.mark.parametrize('task', sorted(TASKS))
def test_same_start_and_same_batches(task, data_roots, tmp_path):
    baseline, distilled, pretrain = TASKS[task]
    backbone = pretrained_backbone(pretrain, tmp_path / 'pretrained.pth')
    runs = {(name, seed): run(cfg, seed, data_roots[task], tmp_path / f'{name}{seed}',
                              tmp_path / 'pretrained.pth')
            for name, cfg in (('baseline', baseline), ('distilled', distilled))
            for seed in (0, 1)}
    for seed in (0, 1):
        a, b = runs['baseline', seed], runs['distilled', seed]
        assert a.weights.keys() == b.weights.keys()
        for key in a.weights:
            assert torch.equal(a.weights[key], b.weights[key]), (task, seed, key)
        assert len(a.batches) == 2 and a.batches == b.batches
        assert_backbone_is(a.weights, backbone)  # the pretrained backbone, as it was saved
    # not trivially true: another seed draws other weights and another order
    w0, w1 = runs['baseline', 0].weights, runs['baseline', 1].weights
    assert any(not torch.equal(w0[k], w1[k]) for k in w0)
    assert runs['baseline', 0].batches != runs['baseline', 1].batches
