"""Tests for the synthetic shapes demo dataset (:mod:`mmkd.demo.shapes`)."""
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from mmkd.demo.shapes import (CLASSES, DIFFICULTY, SEM_BACKGROUND, SEM_IGNORE,
                              generate_shapes, render_scene)

# pycocotools' RLE decode trips numpy 2's __array__(copy=...) deprecation;
# that is upstream noise, not something these tests are about.
pytestmark = pytest.mark.filterwarnings(
    'ignore:__array__ implementation:DeprecationWarning')

# Tiny but crowded: small images with up to 6 shapes exercise occlusion.
TINY = dict(num_train=8, num_val=4, image_size=64)
SPLITS = ('train', 'val')
OLD = 1_000_000_000  # an mtime no real write can produce


def _load(path):
    return np.array(Image.open(path))


def _pngs(d):
    return sorted(f for f in os.listdir(d) if f.endswith('.png'))


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes')
    return generate_shapes(root, seed=0, **TINY)


def test_deterministic(tmp_path, dataset):
    """Same seed: identical json text and pixels; other seed: different."""
    again = generate_shapes(tmp_path / 'a', seed=0, **TINY)
    other = generate_shapes(tmp_path / 'b', seed=1, **TINY)
    assert again['generated'] and other['generated']
    for split in SPLITS:
        ref, same, diff = dataset[split], again[split], other[split]
        with open(ref['ann_file']) as f:
            ref_json = f.read()
        with open(same['ann_file']) as f:
            assert f.read() == ref_json
        with open(diff['ann_file']) as f:
            assert f.read() != ref_json
        names = _pngs(ref['img_dir'])
        assert names == _pngs(same['img_dir']) == _pngs(diff['img_dir'])
        assert len(names) == TINY[f'num_{split}']
        any_diff = False
        for key in ('img_dir', 'sem_dir'):
            for name in names:
                a = _load(osp.join(ref[key], name))
                np.testing.assert_array_equal(
                    a, _load(osp.join(same[key], name)))
                any_diff |= not np.array_equal(
                    a, _load(osp.join(diff[key], name)))
        assert any_diff


def test_images_independent_of_count(tmp_path, dataset):
    """Image i depends only on (seed, split, i), not on the split size."""
    small = generate_shapes(
        tmp_path, seed=0, num_train=3, num_val=1, image_size=64)
    for split in SPLITS:
        for name in _pngs(small[split]['img_dir']):
            np.testing.assert_array_equal(
                _load(osp.join(small[split]['img_dir'], name)),
                _load(osp.join(dataset[split]['img_dir'], name)))


@pytest.mark.parametrize('split', SPLITS)
def test_coco_annotations(dataset, split):
    """Annotations load with pycocotools and match their decoded masks."""
    info = dataset[split]
    coco = COCO(info['ann_file'])
    cats = coco.loadCats(coco.getCatIds())
    assert [c['id'] for c in cats] == list(range(1, len(CLASSES) + 1))
    assert tuple(c['name'] for c in cats) == CLASSES
    assert len(coco.getImgIds()) == TINY[f'num_{split}']
    ann_ids = coco.getAnnIds()
    assert len(ann_ids) >= TINY[f'num_{split}']  # >= 1 shape per image
    assert len(set(ann_ids)) == len(ann_ids)
    for img in coco.loadImgs(coco.getImgIds()):
        arr = _load(osp.join(info['img_dir'], img['file_name']))
        assert arr.shape == (img['height'], img['width'], 3)
        assert arr.dtype == np.uint8
    for ann in coco.loadAnns(ann_ids):
        img = coco.imgs[ann['image_id']]
        x, y, w, h = ann['bbox']
        assert ann['iscrowd'] == 0
        assert ann['category_id'] in coco.cats
        assert ann['area'] > 0 and w > 0 and h > 0
        assert x >= 0 and y >= 0
        assert x + w <= img['width'] and y + h <= img['height']
        mask = coco.annToMask(ann)
        assert mask.shape == (img['height'], img['width'])
        ys, xs = np.nonzero(mask)
        tight = [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                 ys.max() - ys.min() + 1]
        np.testing.assert_allclose(tight, ann['bbox'], atol=1)
        # RLE is exact, so the visible pixel count matches exactly.
        assert int(mask.sum()) == ann['area']


@pytest.mark.parametrize('split', SPLITS)
def test_semantic_maps_match_instances(dataset, split):
    """Each visible instance pixel carries its class in the semantic map."""
    info = dataset[split]
    coco = COCO(info['ann_file'])
    for img in coco.loadImgs(coco.getImgIds()):
        sem = _load(osp.join(info['sem_dir'], img['file_name']))
        assert sem.dtype == np.uint8
        assert sem.shape == (img['height'], img['width'])
        covered = np.zeros(sem.shape, bool)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img['id'])):
            mask = coco.annToMask(ann).astype(bool)
            # Visible parts of different instances never overlap ...
            assert not (covered & mask).any()
            covered |= mask
            # ... and the topmost instance owns its pixels' label.
            assert (sem[mask] == ann['category_id']).all()
        rest = np.unique(sem[~covered])
        assert set(rest.tolist()) <= {SEM_BACKGROUND, SEM_IGNORE}


def test_rerun_is_idempotent_and_force_rewrites(tmp_path):
    res = generate_shapes(tmp_path, seed=0, **TINY)
    assert res['generated']
    files = [
        res['meta_file'], res['train']['ann_file'], res['val']['ann_file'],
        osp.join(res['train']['img_dir'], '000001.png'),
        osp.join(res['val']['sem_dir'], '000001.png')
    ]
    with open(res['train']['ann_file']) as f:
        before = f.read()
    for p in files:
        os.utime(p, (OLD, OLD))

    again = generate_shapes(tmp_path, seed=0, **TINY)
    assert not again['generated']
    assert all(os.stat(p).st_mtime == OLD for p in files)
    for split in SPLITS:  # the summary is served from meta.json
        assert again[split] == res[split]

    forced = generate_shapes(tmp_path, seed=0, force=True, **TINY)
    assert forced['generated']
    assert all(os.stat(p).st_mtime != OLD for p in files)
    with open(res['train']['ann_file']) as f:
        assert f.read() == before


def test_changed_params_regenerate_and_drop_stale_files(tmp_path):
    generate_shapes(tmp_path, seed=0, **TINY)
    res = generate_shapes(
        tmp_path, seed=0, num_train=5, num_val=2, image_size=64)
    assert res['generated']
    with open(res['meta_file']) as f:
        meta = json.load(f)
    assert meta['params']['num_train'] == 5
    for split, n in (('train', 5), ('val', 2)):
        assert len(_pngs(res[split]['img_dir'])) == n
        assert len(_pngs(res[split]['sem_dir'])) == n


def test_incomplete_dataset_is_regenerated(tmp_path):
    res = generate_shapes(tmp_path, seed=0, **TINY)
    os.remove(osp.join(res['val']['img_dir'], '000002.png'))
    assert generate_shapes(tmp_path, seed=0, **TINY)['generated']


def test_clean_scene_without_clutter():
    rng = np.random.default_rng(3)
    image, sem, instances = render_scene(rng, 96, 2, 4, clutter=0.0)
    assert image.shape == (96, 96, 3) and sem.shape == (96, 96)
    assert 1 <= len(instances) <= 4
    for inst in instances:
        assert (sem[inst['mask']] == inst['category_id']).all()


@pytest.mark.parametrize('kwargs', [
    dict(seed=-1),
    dict(num_train=-1),
    dict(image_size=16),
    dict(min_objects=0),
    dict(min_objects=4, max_objects=3),
    dict(clutter=-0.5),
])
def test_invalid_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate_shapes(tmp_path, **kwargs)


def test_preset_by_name_is_the_preset(tmp_path):
    """``difficulty='easy'`` (as generate_shapes_cls takes its preset) writes
    the same bytes as the preset's settings spelled out; a given setting
    overrides the preset's."""
    small = dict(num_train=3, num_val=1, image_size=64)
    named = generate_shapes(tmp_path / 'named', difficulty='easy', **small)
    spelled = generate_shapes(tmp_path / 'spelled', **DIFFICULTY['easy'], **small)
    for split in SPLITS:
        for key in ('img_dir', 'sem_dir'):
            for name in _pngs(named[split][key]):
                with open(osp.join(named[split][key], name), 'rb') as a, \
                        open(osp.join(spelled[split][key], name), 'rb') as b:
                    assert a.read() == b.read()
        with open(named[split]['ann_file']) as a, open(spelled[split]['ann_file']) as b:
            assert a.read() == b.read()
    with open(named['meta_file']) as f:
        params = json.load(f)['params']
    assert params['clutter'] == 0.0 and params['max_objects'] == 4
    override = generate_shapes(tmp_path / 'o', difficulty='easy', max_objects=2, **small)
    with open(override['meta_file']) as f:
        assert json.load(f)['params']['max_objects'] == 2
    with pytest.raises(ValueError, match='difficulty'):
        generate_shapes(tmp_path / 'x', difficulty='medium', **small)


def test_more_val_scenes_keep_the_fewer(tmp_path):
    """Each scene is drawn from its own (seed, split, index) stream: a set
    with more val scenes (the segmentation demo's 1000) has the same train
    scenes and begins with the same val scenes as one with fewer (the
    detection demo's 120)."""
    few = generate_shapes(tmp_path / 'few', num_train=2, num_val=1, image_size=64,
                          difficulty='easy')
    more = generate_shapes(tmp_path / 'more', num_train=2, num_val=3, image_size=64,
                           difficulty='easy')
    assert more['val']['num_images'] == 3
    for split in SPLITS:
        for key in ('img_dir', 'sem_dir'):
            names = _pngs(few[split][key])
            assert len(names) == (2 if split == 'train' else 1)
            for name in names:
                with open(osp.join(few[split][key], name), 'rb') as a, \
                        open(osp.join(more[split][key], name), 'rb') as b:
                    assert a.read() == b.read()
