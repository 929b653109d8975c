"""A seeded, download-free single-object classification set from the shapes
generator (:mod:`mmkd.demo.shapes`), laid out as an mmpretrain image folder.

Twelve classes (:data:`CLASSES`): the detection set's six shapes, the four
unannotated look-alikes of its scenes made classes of their own (ellipse vs.
circle, rectangle vs. square, arc vs. ring, blob) and two polygons between
triangle/square and circle (pentagon, hexagon). The look-alike pairs share
most of their appearance, so a teacher's scores over the wrong classes carry
structure ("an ellipse is more like a circle than a cross") for KD, DKD and
DIST to pass on.

Each image is one shape at a random scale, rotation, slight squash, colour
(solid, shaded or striped fill) and position on the scenes' textured
background, with mild blur and pixel noise (the ``hard`` preset, the default;
``easy``, what the classification demo uses, drops the texture, striped and
shaded fills, noise and blur: :data:`DIFFICULTY`). Every image is drawn from
its own generator seeded with ``(seed, split, index)``.

Layout of :func:`generate_shapes_cls` (``out_dir``), what mmpretrain's
``CustomDataset(data_root=out_dir, data_prefix='train')`` reads::

    train/<class>/000001.png ...
    val/<class>/000001.png ...
    meta.json      classes, seed, sizes, generator version
"""
import json
import os
import os.path as osp
import shutil
from typing import Dict, List, Tuple, Union

import numpy as np
from PIL import Image, ImageFilter

from .draw import (background, clip, composite, distractor_prims, fill, pick_color, rasterize,
                   regular, shape_prims, transform)
from .scenes import CLASSES as SHAPES

#: class names, in label order (mmpretrain sorts folder names; see ``classes``)
CLASSES: Tuple[str, ...] = SHAPES + ('ellipse', 'rectangle', 'arc', 'blob', 'pentagon',
                                     'hexagon')
#: Bump whenever the drawn content changes, so cached sets regenerate.
GENERATOR_VERSION = 1
_LOOKALIKE = {'ellipse': 'ellipse', 'rectangle': 'rect', 'arc': 'arc', 'blob': 'blob'}


def _prims(name: str, cx: float, cy: float, r: float, size: int, rng: np.random.Generator):
    if name in SHAPES:
        return shape_prims(name, cx, cy, r, rng)
    if name in _LOOKALIKE:
        return distractor_prims(_LOOKALIKE[name], cx, cy, r, size, rng)
    sides = {'pentagon': 5, 'hexagon': 6}[name]
    return [('poly', transform(regular(sides, phase=rng.uniform(0, 2 * np.pi)), cx, cy, r,
                               0.0, rng.uniform(0.9, 1.1)), 255)]


#: Presets for :func:`generate_shapes_cls` / :func:`render_object`. ``hard``
#: (the default) is the description above. ``easy`` keeps the shapes, their
#: colours, rotations and squash and the smooth colour-gradient background, but
#: drops the background texture and patches, striped / shaded fills, pixel noise
#: and blur, and draws the shapes a little larger: measured with a 1/4-width
#: CIFAR ResNet-18 (AdamW 1e-3, batch 32, 800 steps, 400 images per class), the
#: hard set reached 22-31 % val top-1 and the easy one 68 %.
DIFFICULTY: Dict[str, Dict[str, object]] = dict(
    hard=dict(clutter=0.5, radius=(0.25, 0.42), pattern_prob=0.3, noise=6.0, blur_prob=0.5),
    easy=dict(clutter=0.0, radius=(0.3, 0.45), pattern_prob=0.0, noise=0.0, blur_prob=0.0))


def render_object(name: str, size: int, rng: np.random.Generator, clutter: float = 0.5,
                  radius: Tuple[float, float] = (0.25, 0.42), pattern_prob: float = 0.3,
                  noise: float = 6.0, blur_prob: float = 0.5) -> np.ndarray:
    """One ``size`` x ``size`` RGB image (uint8) of the class ``name``; the
    keywords are :data:`DIFFICULTY`'s (``hard`` by default)."""
    img = background(rng, size, clutter)
    r = rng.uniform(*radius) * size
    cx, cy = rng.uniform(0.5 * r + 1, size - 0.5 * r - 1, 2)
    alpha, x0, y0 = rasterize(_prims(name, cx, cy, r, size, rng))
    sl = clip(x0, y0, *alpha.shape, size)
    if sl is not None:
        under = img[sl[0]].reshape(-1, 3).mean(0)
        color = pick_color(rng, rng.uniform(0, 255, 3), under)
        layer = fill(rng, color, x0, y0, *alpha.shape, cx, cy, r, pattern_prob=pattern_prob)
        composite(img, alpha, layer, sl)
    if noise > 0:
        img = img + rng.uniform(0, noise) * rng.standard_normal(img.shape)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if blur_prob > 0 and rng.random() < blur_prob:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    return np.asarray(out)


def generate_shapes_cls(out_dir: Union[str, os.PathLike], num_train_per_class: int = 60,
                        num_val_per_class: int = 20, image_size: int = 32, seed: int = 0,
                        difficulty: str = 'hard') -> Dict:
    """Write the set under ``out_dir`` (skipped when an identical one is
    there) and return its meta (also in ``meta.json``).

    Args:
        out_dir: Dataset root, created if needed.
        num_train_per_class: Training images per class.
        num_val_per_class: Validation images per class.
        image_size: Side of the square images in pixels (>= 16).
        seed: Seed; same seed, same bytes.
        difficulty: Name of a :data:`DIFFICULTY` preset (``'hard'``, the
            default, or ``'easy'``), as :func:`mmkd.demo.shapes.generate_shapes`
            takes it.

    Returns:
        The set's meta: classes, seed, sizes, preset and generator version.
    """
    if image_size < 16:
        raise ValueError(f'image_size={image_size} is too small to draw a shape; use >= 16.')
    if difficulty not in DIFFICULTY:
        raise ValueError(f'difficulty={difficulty!r}: choose one of {sorted(DIFFICULTY)}.')
    params = DIFFICULTY[difficulty]
    out_dir = str(out_dir)
    meta = dict(generator_version=GENERATOR_VERSION, classes=list(CLASSES), seed=seed,
                image_size=image_size, difficulty=difficulty,
                params={k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
                num_per_class=dict(train=num_train_per_class, val=num_val_per_class))
    meta_path = osp.join(out_dir, 'meta.json')
    if osp.exists(meta_path):
        with open(meta_path) as f:
            if json.load(f) == meta:
                return meta
    if osp.isdir(out_dir):  # a set of other settings: no stale images may stay
        for split in ('train', 'val'):
            shutil.rmtree(osp.join(out_dir, split), ignore_errors=True)
    for split_id, (split, count) in enumerate((('train', num_train_per_class),
                                               ('val', num_val_per_class))):
        for label, name in enumerate(CLASSES):
            folder = osp.join(out_dir, split, name)
            os.makedirs(folder, exist_ok=True)
            for index in range(count):
                rng = np.random.default_rng([seed, split_id, label, index])
                Image.fromarray(render_object(name, image_size, rng, **params)).save(
                    osp.join(folder, f'{index + 1:06d}.png'))
    with open(meta_path, 'w') as f:
        json.dump(meta, f, indent=1)
    return meta


def classes() -> List[str]:
    """Class names in the label order mmpretrain's folder reader gives them
    (sorted folder names): pass as ``metainfo=dict(classes=...)``."""
    return sorted(CLASSES)


__all__ = ['CLASSES', 'DIFFICULTY', 'GENERATOR_VERSION', 'classes', 'generate_shapes_cls',
           'render_object']
