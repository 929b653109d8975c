"""The classification demo's pretraining set: crops of the detection scenes'
annotated objects, in mmpretrain's image-folder layout."""
import json

import numpy as np
from PIL import Image

from mmkd.demo.crops import _crop_box, generate_scene_crops
from mmkd.demo.scenes import CLASSES
from mmkd.demo.shapes import generate_shapes


def test_crop_box_by_hand():
    # [x, y, w, h] = [10, 20, 30, 40]: side 1.25 * 40 = 50 around the centre (25, 40)
    assert _crop_box([10, 20, 30, 40], None, jitter=False) == (0, 15, 50, 65)
    rng = np.random.default_rng(0)
    boxes = [_crop_box([10, 20, 30, 40], rng, jitter=True) for _ in range(50)]
    sides = [b[2] - b[0] for b in boxes]
    centres = [(b[0] + b[2]) / 2 for b in boxes]
    # side 50 * U(0.9, 1.2), centre moved by at most 10% of the side (+ rounding)
    assert 45 - 1 <= min(sides) and max(sides) <= 60 + 1 and len(set(sides)) > 5
    assert all(abs(c - 25) <= 5 + 1 for c in centres) and len(set(centres)) > 5


def test_one_folder_per_scene_class_and_one_crop_per_object_and_copy(tmp_path):
    scenes = tmp_path / 'scenes'
    generate_shapes(scenes, num_train=6, num_val=3, image_size=96, difficulty='easy')
    meta = generate_scene_crops(str(scenes), str(tmp_path / 'crops'), size=24, per_object=3)
    for split, copies in (('train', 3), ('val', 1)):
        coco = json.loads((scenes / 'annotations' / f'instances_{split}.json').read_text())
        files = sorted((tmp_path / 'crops' / split).glob('*/*.png'))
        assert len(files) == copies * len(coco['annotations']) == meta['num_crops'][split]
        per_class = {}
        for ann in coco['annotations']:
            name = CLASSES[ann['category_id'] - 1]
            per_class[name] = per_class.get(name, 0) + copies
        assert {f.parent.name: 0 for f in files}.keys() == per_class.keys()
        for name, count in per_class.items():
            assert len(list((tmp_path / 'crops' / split / name).glob('*.png'))) == count
        assert Image.open(files[0]).size == (24, 24)
    assert meta['classes'] == list(CLASSES)
    # the same scenes and settings: reused as they are; other settings: rebuilt
    first = sorted((tmp_path / 'crops' / 'train').glob('*/*.png'))[0]
    stamp = first.stat().st_mtime_ns
    assert generate_scene_crops(str(scenes), str(tmp_path / 'crops'), size=24,
                                per_object=3) == meta
    assert first.stat().st_mtime_ns == stamp
    other = generate_scene_crops(str(scenes), str(tmp_path / 'crops'), size=24, per_object=1)
    assert other['num_crops']['train'] == meta['num_crops']['train'] // 3
    assert len(list((tmp_path / 'crops' / 'train').glob('*/*.png'))) == other['num_crops']['train']
