"""A seeded, download-free synthetic "shapes" dataset in COCO format.

The scenes are small (128x128 by default) so that a teacher detector, a
baseline student and distilled students can all be trained on a CPU in a few
minutes, yet they are cluttered enough that model capacity matters:

* six shape classes (:data:`CLASSES`) at scales from ~12 px to ~70 px across,
  randomly rotated, slightly squashed, solid / shaded / striped fills;
* instances overlap: later shapes occlude earlier ones, and the annotations
  describe only the *visible* pixels (an instance is never placed so that
  another one ends up more than half hidden);
* textured backgrounds (smooth colour gradients, mid-frequency noise, faint
  large patches) plus unannotated distractors drawn in the same palette as
  the objects: strokes, irregular blobs and "near misses" such as elongated
  ellipses (vs. circle), rectangles (vs. square) and thin arcs (vs. ring);
* a few thin strokes crossing over the objects, pixel noise and slight blur.

Everything is drawn with PIL at 4x supersampling (anti-aliased edges) and
composited with numpy; an instance's mask is where its coverage is >= 0.5
and it is the topmost layer. The drawing is in :mod:`mmkd.demo.draw`, the
scenes and their presets (:data:`DIFFICULTY`, chosen with ``difficulty=``)
in :mod:`mmkd.demo.scenes`; this module writes the dataset files.

Output layout of :func:`generate_shapes` (``out_dir``)::

    train/000001.png ...            RGB images
    val/000001.png ...
    train_sem/000001.png ...        semantic maps (uint8, same file names)
    val_sem/000001.png ...
    annotations/instances_train.json  COCO detection / instance format
    annotations/instances_val.json
    meta.json                        generator version, seed, parameters, stats

COCO annotations: ``bbox`` is ``[x, y, w, h]`` of the tight box around the
visible mask (pixel-inclusive, as :func:`pycocotools.mask.toBbox`), ``area``
is the visible pixel count and ``segmentation`` is a compressed RLE
(``{'size': [h, w], 'counts': str}``) of the visible mask. RLE rather than
polygons because the visible part of a ring (or of any occluded shape) can
have holes and several pieces, which COCO polygons cannot express exactly.
Category ids are ``1..K`` in :data:`CLASSES` order, image and annotation
ids start at 1, ``iscrowd`` is 0.

Semantic maps use the usual mmseg convention *with* a background class:
``0`` = background (including the unannotated clutter), ``k`` in ``1..K`` =
the COCO ``category_id`` of the topmost shape (i.e. ``CLASSES[k - 1]``), and
``255`` = ignore (only the rare visible remnants of a shape that a later
crossing stroke left less than half visible, which therefore has no instance
annotation). For mmseg use ``classes=('background',) + CLASSES``
(``K + 1`` classes), ``reduce_zero_label=False``, ``ignore_index=255``.

Determinism: every image is drawn from its own generator seeded with
``(seed, split, index)``, so the same seed gives byte-identical JSON and
identical pixels, and an image does not depend on how many others are made.
"""
import json
import math
import os
import os.path as osp
import re
from typing import Dict, Optional, Sequence, Union

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from .scenes import CLASSES, DIFFICULTY, SEM_BACKGROUND, SEM_IGNORE, render_scene

#: Bump whenever the drawn content changes, so cached datasets regenerate.
GENERATOR_VERSION = 1

_SPLITS = ('train', 'val')
_IMG_NAME = re.compile(r'^\d{6}\.png$')


def _mask_to_ann(mask: np.ndarray) -> Dict:
    """COCO fields (bbox, area, compressed-RLE segmentation) of a mask."""
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {
        'bbox': [x0, y0, x1 - x0 + 1, y1 - y0 + 1],
        'area': int(mask.sum()),
        'segmentation': {'size': [int(v) for v in rle['size']],
                         'counts': rle['counts'].decode('ascii')},
    }


def _file_name(image_id: int) -> str:
    return f'{image_id:06d}.png'


def _paths(out_dir: str) -> Dict:
    paths = {'out_dir': out_dir, 'meta_file': osp.join(out_dir, 'meta.json')}
    for split in _SPLITS:
        paths[split] = {
            'img_dir': osp.join(out_dir, split),
            'sem_dir': osp.join(out_dir, f'{split}_sem'),
            'ann_file': osp.join(out_dir, 'annotations', f'instances_{split}.json'),
        }
    return paths


def _count_pngs(d: str) -> int:
    if not osp.isdir(d):
        return 0
    return sum(1 for f in os.listdir(d) if _IMG_NAME.match(f))


def _is_complete(paths: Dict, params: Dict) -> bool:
    """True if a previous run with the same settings finished in full."""
    for split in _SPLITS:
        n = params[f'num_{split}']
        p = paths[split]
        if not osp.isfile(p['ann_file']):
            return False
        if _count_pngs(p['img_dir']) != n or _count_pngs(p['sem_dir']) != n:
            return False
    return True


def _clear_images(d: str) -> None:
    """Drop our own stale files (e.g. from a bigger earlier run) but never
    anything else a user may keep there."""
    os.makedirs(d, exist_ok=True)
    for f in sorted(os.listdir(d)):
        if _IMG_NAME.match(f):
            os.remove(osp.join(d, f))


def _coco(split: str, seed: int, images: list, annotations: list) -> Dict:
    return {
        'info': {'description': 'mmkd synthetic shapes demo dataset',
                 'version': str(GENERATOR_VERSION), 'seed': seed, 'split': split},
        'licenses': [],
        'images': images,
        'annotations': annotations,
        'categories': [{'id': i + 1, 'name': name, 'supercategory': 'shape'}
                       for i, name in enumerate(CLASSES)],
    }


def _split_stats(num: int, annotations: list) -> Dict:
    per_class = [0] * len(CLASSES)
    for ann in annotations:
        per_class[ann['category_id'] - 1] += 1
    sizes = [math.sqrt(ann['bbox'][2] * ann['bbox'][3]) for ann in annotations]
    sizes_arr = np.array(sizes) if sizes else np.zeros(1)
    return {
        'num_images': num,
        'num_instances': len(annotations),
        'instances_per_class': dict(zip(CLASSES, per_class)),
        # sqrt(w * h) of the boxes: min / median / max, in pixels
        'box_size_px': [round(float(sizes_arr.min()), 1), round(float(np.median(sizes_arr)), 1),
                        round(float(sizes_arr.max()), 1)],
    }


def _generate_split(split: str, num: int, paths: Dict, seed: int, params: Dict) -> Dict:
    """Write one split's images, semantic maps and COCO json; return its stats."""
    p = paths[split]
    _clear_images(p['img_dir'])
    _clear_images(p['sem_dir'])
    images, annotations = [], []
    size = params['image_size']
    for idx in range(num):
        rng = np.random.default_rng([seed, _SPLITS.index(split), idx])
        image, sem, instances = render_scene(rng, size, params['min_objects'],
                                             params['max_objects'], params['clutter'],
                                             tuple(params['radius_range']))
        image_id = idx + 1
        name = _file_name(image_id)
        Image.fromarray(image).save(osp.join(p['img_dir'], name))
        Image.fromarray(sem).save(osp.join(p['sem_dir'], name))
        images.append({'id': image_id, 'file_name': name, 'width': size, 'height': size})
        for inst in instances:
            ann = {'id': len(annotations) + 1, 'image_id': image_id,
                   'category_id': inst['category_id'], 'iscrowd': 0}
            ann.update(_mask_to_ann(inst['mask']))
            annotations.append(ann)
    os.makedirs(osp.dirname(p['ann_file']), exist_ok=True)
    with open(p['ann_file'], 'w') as f:
        json.dump(_coco(split, seed, images, annotations), f, separators=(',', ':'))
    return _split_stats(num, annotations)


def _scene_params(difficulty: str, min_objects: Optional[int], max_objects: Optional[int],
                  clutter: Optional[float], radius_range: Optional[Sequence[float]]) -> Dict:
    """The ``difficulty`` preset with the given settings in place of its own."""
    if difficulty not in DIFFICULTY:
        raise ValueError(f'difficulty={difficulty!r}: choose one of {sorted(DIFFICULTY)}.')
    given = dict(min_objects=min_objects, max_objects=max_objects, clutter=clutter,
                 radius_range=radius_range)
    scene = dict(DIFFICULTY[difficulty])
    scene.update({k: v for k, v in given.items() if v is not None})
    return scene


def _check(seed: int, num_train: int, num_val: int, image_size: int, min_objects: int,
           max_objects: int, clutter: float, radius_range: Sequence[float]) -> None:
    if seed < 0:
        raise ValueError('seed must be non-negative')
    if num_train < 0 or num_val < 0:
        raise ValueError('image counts must be non-negative')
    if image_size < 32:
        raise ValueError('image_size must be >= 32')
    if not 1 <= min_objects <= max_objects:
        raise ValueError('need 1 <= min_objects <= max_objects')
    if clutter < 0:
        raise ValueError('clutter must be >= 0')
    if len(radius_range) != 2 or not 0 < radius_range[0] <= radius_range[1] <= 0.5:
        raise ValueError('radius_range must be (min, max) with '
                         f'0 < min <= max <= 0.5, got {radius_range}')


def _read_meta(path: str) -> Optional[Dict]:
    if not osp.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _summary(paths: Dict, stats: Dict, generated: bool) -> Dict:
    result = dict(paths, classes=list(CLASSES), generated=generated)
    for split in _SPLITS:
        result[split] = dict(paths[split], **stats[split])
    return result


def generate_shapes(out_dir: Union[str, os.PathLike],
                    num_train: int = 500,
                    num_val: int = 120,
                    image_size: int = 128,
                    seed: int = 0,
                    min_objects: Optional[int] = None,
                    max_objects: Optional[int] = None,
                    clutter: Optional[float] = None,
                    radius_range: Optional[Sequence[float]] = None,
                    force: bool = False,
                    difficulty: str = 'hard') -> Dict:
    """Write the synthetic shapes dataset (see module docstring) to disk.

    If ``out_dir/meta.json`` records the same generator version, seed and
    parameters and all files are present, nothing is written (re-runs are
    cheap and leave mtimes alone); ``force=True`` always regenerates.

    Args:
        out_dir: Dataset root, created if needed.
        num_train: Number of training images.
        num_val: Number of validation images.
        image_size: Side of the square images in pixels.
        seed: Non-negative seed; same seed, same bytes.
        min_objects: Fewest annotated shapes per image (before placement
            failures, which are rare with the defaults). ``None``: the
            preset's; so for the three below.
        max_objects: Most annotated shapes per image.
        clutter: Background texture / distractor / noise strength; 0 makes
            clean scenes, 1 is the ``hard`` preset's, 2 is very busy.
        radius_range: ``(min, max)`` circumradius of the shapes as fractions
            of ``image_size``, ``0 < min <= max <= 0.5``.
        force: Regenerate even if an identical dataset is already there.
        difficulty: Name of a :data:`DIFFICULTY` preset (``'hard'``, the
            default, or ``'easy'``), as :func:`generate_shapes_cls` takes it.

    Returns:
        dict with ``out_dir``, ``meta_file``, ``classes``, ``generated``
        (False if skipped), and per split (``'train'``, ``'val'``) a dict of
        ``img_dir``, ``sem_dir``, ``ann_file``, ``num_images``,
        ``num_instances``, ``instances_per_class`` and ``box_size_px``
        (min / median / max of ``sqrt(w*h)``).
    """
    scene = _scene_params(difficulty, min_objects, max_objects, clutter, radius_range)
    _check(seed, num_train, num_val, image_size, **scene)
    out_dir = os.fspath(out_dir)
    params = dict(num_train=num_train, num_val=num_val, image_size=image_size,
                  min_objects=scene['min_objects'], max_objects=scene['max_objects'],
                  clutter=float(scene['clutter']),
                  radius_range=[float(r) for r in scene['radius_range']])
    paths = _paths(out_dir)
    key = {'generator': 'mmkd.demo.shapes', 'version': GENERATOR_VERSION, 'seed': seed,
           'params': params}
    meta = _read_meta(paths['meta_file'])
    if (not force and meta is not None and {k: meta.get(k) for k in key} == key
            and _is_complete(paths, params)):
        return _summary(paths, meta['stats'], generated=False)
    os.makedirs(out_dir, exist_ok=True)
    # Remove the old meta first: an interrupted run must not look complete.
    if osp.exists(paths['meta_file']):
        os.remove(paths['meta_file'])
    stats = {split: _generate_split(split, params[f'num_{split}'], paths, seed, params)
             for split in _SPLITS}
    with open(paths['meta_file'], 'w') as f:
        json.dump(dict(key, classes=list(CLASSES), stats=stats), f, indent=2)
        f.write('\n')
    return _summary(paths, stats, generated=True)


__all__ = ['CLASSES', 'DIFFICULTY', 'GENERATOR_VERSION', 'SEM_BACKGROUND', 'SEM_IGNORE',
           'generate_shapes', 'render_scene']
