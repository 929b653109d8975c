"""The shapes classification set: 12 classes, seeded, read by mmpretrain."""
import numpy as np

from mmkd.demo.shapes_cls import CLASSES, classes, generate_shapes_cls, render_object


def test_layout_read_by_mmpretrain_and_seeded(tmp_path):
    from mmpretrain.datasets import CustomDataset
    meta = generate_shapes_cls(tmp_path / 'a', num_train_per_class=2, num_val_per_class=1,
                               image_size=24, seed=3)
    assert len(CLASSES) == len(set(CLASSES)) == 12 and meta['classes'] == list(CLASSES)
    train = CustomDataset(data_root=str(tmp_path / 'a'), data_prefix='train', pipeline=[])
    assert list(train.metainfo['classes']) == classes()  # sorted folder names
    assert len(train) == 24
    labels = sorted(train.get_data_info(i)['gt_label'] for i in range(len(train)))
    assert labels == sorted(list(range(12)) * 2)
    generate_shapes_cls(tmp_path / 'b', num_train_per_class=2, num_val_per_class=1,
                        image_size=24, seed=3)
    for path in ('train/star/000002.png', 'val/arc/000001.png'):
        assert (tmp_path / 'a' / path).read_bytes() == (tmp_path / 'b' / path).read_bytes()


def test_each_class_draws_an_object_on_its_background():
    for name in CLASSES:
        image = render_object(name, 32, np.random.default_rng([0, 1]), clutter=0.0)
        plain = render_object(name, 32, np.random.default_rng([0, 1]), clutter=0.0)
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8
        assert np.array_equal(image, plain)
    a = render_object('circle', 32, np.random.default_rng(5))
    b = render_object('square', 32, np.random.default_rng(5))
    assert not np.array_equal(a, b)  # same background and placement, different shape
