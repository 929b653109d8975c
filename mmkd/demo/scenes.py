"""Scenes of the shapes dataset: several annotated shapes, occlusion, clutter.

:func:`render_scene` draws one scene and its labels (see
:mod:`mmkd.demo.shapes` for what the dataset looks like and the label
conventions); :data:`DIFFICULTY` names the scene presets.
"""
import math
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image, ImageFilter

from .draw import (background, clip, composite, distractor_prims, fill, pick_color, rasterize,
                   shape_prims)

#: Shape classes, in category order (COCO ``category_id`` = index + 1).
CLASSES: Tuple[str, ...] = ('circle', 'square', 'triangle', 'star', 'cross', 'ring')
#: Semantic-map value of background / unannotated clutter.
SEM_BACKGROUND = 0
#: Semantic-map value of pixels to ignore.
SEM_IGNORE = 255

#: Circumradius range of the ``hard`` preset, as fractions of the image size.
RADIUS_RANGE = (0.05, 0.28)
_MIN_VISIBLE_FRAC = 0.5  # an instance must keep >= half of its pixels
_MIN_IN_IMAGE_FRAC = 0.7  # at most 30% of a shape may fall off the border
_MIN_PIXELS = 20  # smaller visible remnants are not worth annotating
_PLACEMENT_TRIES = 30
_DISTRACTORS = ('stroke', 'blob', 'ellipse', 'rect', 'arc')

#: Named scene settings: ``generate_shapes(root, difficulty=name)`` or
#: ``render_scene(rng, size, **DIFFICULTY[name])``. ``'hard'`` is the
#: generators' default (see :mod:`mmkd.demo.shapes`). ``'easy'`` keeps the
#: classes, occlusion rules, fills and blur but drops the background texture,
#: distractors, crossing strokes and pixel noise, and leaves out the smallest
#: shapes: what ``make demo``'s detection benchmark uses, so a from-scratch
#: detector can learn it in minutes on a CPU (see docs/results.md).
DIFFICULTY: Dict[str, Dict] = {
    'hard': dict(min_objects=2, max_objects=6, clutter=1.0, radius_range=RADIUS_RANGE),
    'easy': dict(min_objects=1, max_objects=4, clutter=0.0, radius_range=(0.1, 0.3)),
}


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


class _Scene:
    """One scene being drawn: the image, the topmost instance of every pixel
    (``idmap``, 1-based, 0 for none) and each placed instance's class, whole
    pixel count and still-visible pixel count."""

    def __init__(self, img: np.ndarray, size: int) -> None:
        self.img, self.size = img, size
        self.idmap = np.zeros((size, size), np.int32)
        self.cats: List[int] = []
        self.full: List[int] = []  # pixel count of each whole (unoccluded) shape
        self.visible: List[int] = []

    def keeps_enough(self, j: int, visible: int) -> bool:
        """Whether instance ``j`` with ``visible`` pixels left stays annotated."""
        return visible >= max(_MIN_VISIBLE_FRAC * self.full[j], _MIN_PIXELS)


def _draw_distractors(scene: _Scene, palette: np.ndarray, r_lo: float, r_hi: float,
                      clutter: float, rng: np.random.Generator) -> None:
    """Unannotated clutter underneath the objects, in the objects' colours
    (60 % of the time), so colour alone never tells an object from clutter."""
    size = scene.size
    n_dis = int(rng.integers(round(2 * clutter), round(7 * clutter) + 1))
    for _ in range(n_dis):
        kind = _DISTRACTORS[int(rng.integers(len(_DISTRACTORS)))]
        cx, cy = rng.uniform(0, size, 2)
        r = _log_uniform(rng, r_lo, r_hi)
        alpha, x0, y0 = rasterize(distractor_prims(kind, cx, cy, r, size, rng))
        sl = clip(x0, y0, *alpha.shape, size)
        if sl is None:
            continue
        if rng.random() < 0.6:
            color = palette[int(rng.integers(len(palette)))] + rng.normal(0, 20, 3)
        else:
            color = rng.uniform(0, 255, 3)
        h, w = alpha.shape
        composite(scene.img, alpha, fill(rng, color, x0, y0, h, w, cx, cy, r, 0.2), sl)


def _find_place(scene: _Scene, solid: np.ndarray, x0: int, y0: int,
                rng: np.random.Generator) -> Optional[tuple]:
    """An integer shift of a rasterised shape that keeps enough of it inside
    the image and leaves every earlier instance enough visible pixels:
    ``(ox, oy, slices, visible pixels, covered pixels per instance)``."""
    h, w = solid.shape
    n_full = int(solid.sum())
    for _ in range(_PLACEMENT_TRIES):
        ox, oy = (int(v) for v in rng.integers(0, scene.size, 2))
        sl = clip(x0 + ox, y0 + oy, h, w, scene.size)
        if sl is None:
            continue
        isl, psl = sl
        m = solid[psl]
        n_vis = int(m.sum())
        if n_vis < max(_MIN_IN_IMAGE_FRAC * n_full, _MIN_PIXELS):
            continue
        covered = np.bincount(scene.idmap[isl][m], minlength=len(scene.cats) + 1)
        if all(scene.keeps_enough(j, scene.visible[j] - covered[j + 1])
               for j in range(len(scene.cats))):
            return ox, oy, sl, n_vis, covered
    return None


def _draw_shapes(scene: _Scene, palette: np.ndarray, n_obj: int, r_lo: float, r_hi: float,
                 rng: np.random.Generator) -> None:
    """Annotated shapes, bottom to top; a shape that finds no place that
    leaves the earlier ones mostly visible is skipped, so nothing annotated
    is lost."""
    for i in range(n_obj):
        cat = int(rng.integers(len(CLASSES)))
        r = _log_uniform(rng, r_lo, r_hi)
        # Rasterise once around a sub-pixel centre, then try integer shifts.
        fx, fy = rng.uniform(0, 1, 2)
        alpha, x0, y0 = rasterize(shape_prims(CLASSES[cat], fx, fy, r, rng))
        solid = alpha >= 0.5
        placed = _find_place(scene, solid, x0, y0, rng)
        if placed is None:
            continue
        ox, oy, (isl, psl), n_vis, covered = placed
        for j in range(len(scene.cats)):
            scene.visible[j] -= int(covered[j + 1])
        scene.idmap[isl][solid[psl]] = len(scene.cats) + 1
        scene.cats.append(cat + 1)
        scene.full.append(int(solid.sum()))
        scene.visible.append(n_vis)
        under = scene.img[isl].reshape(-1, 3).mean(axis=0)
        color = pick_color(rng, palette[i] + rng.normal(0, 10, 3), under)
        h, w = alpha.shape
        layer = fill(rng, color, x0 + ox, y0 + oy, h, w, fx + ox, fy + oy, r, 0.25)
        composite(scene.img, alpha, layer, (isl, psl))


def _draw_crossing_strokes(scene: _Scene, palette: np.ndarray, clutter: float,
                           rng: np.random.Generator) -> None:
    """Thin strokes over everything: they really occlude, so their pixels
    leave the instances' masks."""
    size = scene.size
    n_top = int(rng.integers(0, round(2 * clutter) + 1)) if clutter > 0 else 0
    for _ in range(n_top):
        cx, cy = rng.uniform(0, size, 2)
        prims = distractor_prims('stroke', cx, cy, 0.0, size, rng)
        alpha, x0, y0 = rasterize([('line', prims[0][1], rng.uniform(0.8, 1.5))])
        sl = clip(x0, y0, *alpha.shape, size)
        if sl is None:
            continue
        h, w = alpha.shape
        color = palette[int(rng.integers(len(palette)))] + rng.normal(0, 20, 3)
        composite(scene.img, alpha, fill(rng, color, x0, y0, h, w, cx, cy, size, 0.0), sl)
        isl, psl = sl
        scene.idmap[isl][alpha[psl] >= 0.5] = 0


def _degrade(img: np.ndarray, clutter: float, rng: np.random.Generator) -> np.ndarray:
    """Camera-ish degradation: optional slight blur, then sensor noise."""
    img = np.clip(img, 0, 255)
    if rng.random() < 0.5:
        radius = rng.uniform(0.3, 0.8)
        blurred = Image.fromarray(np.round(img).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(radius))
        img = np.asarray(blurred, dtype=np.float32)
    if clutter > 0:
        img = img + clutter * rng.uniform(2.0, 8.0) * rng.standard_normal(img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _labels(scene: _Scene) -> Tuple[np.ndarray, List[Dict]]:
    """The semantic map and the instances that kept enough visible pixels;
    the remnants of the others (crossed out by strokes) are ignored."""
    sem = np.full((scene.size, scene.size), SEM_BACKGROUND, np.uint8)
    instances = []
    for j, cat in enumerate(scene.cats):
        mask = scene.idmap == j + 1
        if not scene.keeps_enough(j, int(mask.sum())):
            sem[mask] = SEM_IGNORE
            continue
        sem[mask] = cat
        instances.append({'category_id': cat, 'mask': mask})
    return sem, instances


def render_scene(
    rng: np.random.Generator,
    image_size: int = 128,
    min_objects: int = 2,
    max_objects: int = 6,
    clutter: float = 1.0,
    radius_range: Tuple[float, float] = RADIUS_RANGE,
) -> Tuple[np.ndarray, np.ndarray, List[Dict]]:
    """Draw one scene.

    Args:
        rng: Source of randomness; the scene is a pure function of its state.
        image_size: Side of the square image in pixels.
        min_objects: Fewest annotated shapes attempted. A shape that cannot
            be placed without hiding others too much is skipped (rare with
            the defaults; the first shape essentially always fits).
        max_objects: Most annotated shapes.
        clutter: Scales background texture, distractor count and pixel
            noise; 0 gives clean gradient backgrounds.
        radius_range: Smallest and largest circumradius of shapes and
            distractors, as fractions of ``image_size``.

    Returns:
        ``(image, sem, instances)``: ``uint8 (S, S, 3)`` RGB image, ``uint8
        (S, S)`` semantic map (see :mod:`mmkd.demo.shapes`), and a list of
        ``{'category_id': int, 'mask': bool (S, S)}`` for the annotated
        shapes, bottom to top.
    """
    size = image_size
    n_obj = int(rng.integers(min_objects, max_objects + 1))
    # Distractors borrow the objects' colours, so colour alone never tells
    # an object from clutter.
    palette = rng.uniform(0, 255, (max(n_obj, 1), 3))
    r_lo, r_hi = (f * size for f in radius_range)
    scene = _Scene(background(rng, size, clutter), size)
    _draw_distractors(scene, palette, r_lo, r_hi, clutter, rng)
    _draw_shapes(scene, palette, n_obj, r_lo, r_hi, rng)
    _draw_crossing_strokes(scene, palette, clutter, rng)
    image = _degrade(scene.img, clutter, rng)
    sem, instances = _labels(scene)
    return image, sem, instances
