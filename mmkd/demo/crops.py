"""Object crops of the shapes scenes as an mmpretrain image folder: the
classification demo's pretraining set.

The classification demo's own set (:mod:`mmkd.demo.shapes_cls`) has twelve
classes drawn one object per image; its backbones are pretrained on a
*different* set, as ImageNet is for CIFAR: the objects of the detection
scenes (:mod:`mmkd.demo.shapes`, six classes), cut out around their
ground-truth boxes, a little jittered, resized to ``size`` x ``size``. The
look-alike classes (ellipse, rectangle, arc, blob, pentagon, hexagon) never
appear as labels here, so the demo's students still have to learn them.

Layout of :func:`generate_scene_crops` (``out_dir``)::

    train/<class>/000001.png ...   ``per_object`` jittered crops per train object
    val/<class>/000001.png ...     one centred crop per val object
    meta.json                      the scenes' fingerprint and the crop settings
"""
import json
import os
import os.path as osp
import shutil
from typing import Dict, Tuple

import numpy as np
from PIL import Image

#: Bump whenever the crops change, so cached sets are rebuilt.
CROPS_VERSION = 1


def _crop_box(bbox, rng, jitter: bool) -> Tuple[int, int, int, int]:
    """A square around a COCO ``[x, y, w, h]`` box with a 25% margin;
    jittered in position (±10%) and size (0.9-1.2x) when ``jitter``."""
    x, y, w, h = bbox
    side = 1.25 * max(w, h)
    cx, cy = x + w / 2, y + h / 2
    if jitter:
        cx, cy = np.array([cx, cy]) + rng.uniform(-0.1, 0.1, 2) * side
        side *= rng.uniform(0.9, 1.2)
    half = side / 2
    return tuple(int(round(v)) for v in (cx - half, cy - half, cx + half, cy + half))


def generate_scene_crops(scenes_dir: str, out_dir: str, size: int = 32,
                         per_object: int = 4, seed: int = 0) -> Dict:
    """Crop every annotated object of the scenes in ``scenes_dir`` (what
    :func:`mmkd.demo.shapes.generate_shapes` wrote) into ``out_dir``; skipped
    when ``out_dir`` already holds crops of the same scenes and settings.

    Args:
        scenes_dir: the scenes' root (``annotations/instances_<split>.json``,
            ``<split>/*.png``, ``meta.json``).
        out_dir: the image folder to write.
        size: side of the square crops in pixels.
        per_object: jittered crops per train object (val: one, centred).
        seed: seed of the jitter.

    Returns:
        The set's meta (also in ``meta.json``): the scenes' meta, the
        settings, the classes and the number of crops per split.
    """
    with open(osp.join(scenes_dir, 'meta.json')) as f:
        scenes = json.load(f)
    settings = dict(version=CROPS_VERSION, size=size, per_object=per_object, seed=seed,
                    scenes={k: scenes.get(k) for k in ('generator', 'version', 'seed',
                                                       'params')})
    meta_path = osp.join(out_dir, 'meta.json')
    if osp.isfile(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get('settings') == settings:
            return meta
        os.remove(meta_path)  # an interrupted rebuild must not look complete
    counts, classes = {}, None
    for split_id, split in enumerate(('train', 'val')):
        shutil.rmtree(osp.join(out_dir, split), ignore_errors=True)
        with open(osp.join(scenes_dir, 'annotations', f'instances_{split}.json')) as f:
            coco = json.load(f)
        names = {c['id']: c['name'] for c in coco['categories']}
        classes = [names[i] for i in sorted(names)]
        files = {im['id']: im['file_name'] for im in coco['images']}
        rng = np.random.default_rng([seed, split_id])
        jitter, copies = (True, per_object) if split == 'train' else (False, 1)
        count = 0
        for ann in coco['annotations']:
            with Image.open(osp.join(scenes_dir, split, files[ann['image_id']])) as im:
                image = im.convert('RGB')
            folder = osp.join(out_dir, split, names[ann['category_id']])
            os.makedirs(folder, exist_ok=True)
            for _ in range(copies):
                count += 1
                crop = image.crop(_crop_box(ann['bbox'], rng, jitter))
                crop.resize((size, size), Image.BILINEAR).save(
                    osp.join(folder, f'{count:06d}.png'))
        counts[split] = count
    meta = dict(settings=settings, classes=classes, num_crops=counts)
    with open(meta_path, 'w') as f:
        json.dump(meta, f, indent=1)
    return meta


__all__ = ['CROPS_VERSION', 'generate_scene_crops']
