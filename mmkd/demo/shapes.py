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
and it is the topmost layer.

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
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from pycocotools import mask as mask_utils

#: Shape classes, in category order (COCO ``category_id`` = index + 1).
CLASSES: Tuple[str, ...] = ('circle', 'square', 'triangle', 'star', 'cross',
                            'ring')
#: Bump whenever the drawn content changes, so cached datasets regenerate.
GENERATOR_VERSION = 1
#: Semantic-map value of background / unannotated clutter.
SEM_BACKGROUND = 0
#: Semantic-map value of pixels to ignore.
SEM_IGNORE = 255

_SPLITS = ('train', 'val')
_SS = 4  # supersampling factor: anti-aliased edges and sub-pixel shapes
_MIN_VISIBLE_FRAC = 0.5  # an instance must keep >= half of its pixels
_MIN_IN_IMAGE_FRAC = 0.7  # at most 30% of a shape may fall off the border
_MIN_PIXELS = 20  # smaller visible remnants are not worth annotating
_PLACEMENT_TRIES = 30
_MIN_CONTRAST = 60.0  # RGB distance between a shape and what lies beneath
_RADIUS_RANGE = (0.05, 0.28)  # circumradius as a fraction of image size
_IMG_NAME = re.compile(r'^\d{6}\.png$')

#: Named scene settings, ``generate_shapes(root, **DIFFICULTY[name])``.
#: ``'hard'`` is the generator's default (see the module docstring).
#: ``'easy'`` keeps the classes, occlusion rules, fills and blur but drops
#: the background texture, distractors, crossing strokes and pixel noise,
#: and leaves out the smallest shapes: what ``make demo``'s detection
#: benchmark uses, so a from-scratch detector can learn it in minutes on a
#: CPU (see docs/results.md).
DIFFICULTY: Dict[str, Dict] = {
    'hard': dict(min_objects=2, max_objects=6, clutter=1.0,
                 radius_range=_RADIUS_RANGE),
    'easy': dict(min_objects=1, max_objects=4, clutter=0.0,
                 radius_range=(0.1, 0.3)),
}

# A primitive is ('poly', points, fill) or ('line', points, width_px), with
# points in image pixel coordinates (x, y); 'poly' with fill 0 cuts a hole.
_Prim = Tuple

# ---------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------


def _regular(n: int, radius: float = 1.0, phase: float = 0.0) -> np.ndarray:
    """Vertices of a regular n-gon on a circle (unit shape coordinates)."""
    ang = phase + np.arange(n) * (2 * np.pi / n)
    return radius * np.stack([np.cos(ang), np.sin(ang)], axis=1)


def _transform(pts: np.ndarray, cx: float, cy: float, r: float, theta: float,
               aspect: float) -> List[Tuple[float, float]]:
    """Scale (anisotropically), rotate and translate unit-shape points."""
    sx, sy = r * math.sqrt(aspect), r / math.sqrt(aspect)
    p = pts * np.array([sx, sy])
    c, s = math.cos(theta), math.sin(theta)
    x = p[:, 0] * c - p[:, 1] * s + cx
    y = p[:, 0] * s + p[:, 1] * c + cy
    return list(zip(x.tolist(), y.tolist()))


def _shape_prims(cls: str, cx: float, cy: float, r: float,
                 rng: np.random.Generator) -> List[_Prim]:
    """Primitives of one annotated shape with circumradius ``r``."""
    theta = rng.uniform(0, 2 * np.pi)
    # Mild squash keeps shapes varied but far from the elongated ellipses /
    # rectangles used as distractors (aspect >= 1.8).
    aspect = rng.uniform(0.87, 1.15)

    def tf(p):
        return _transform(p, cx, cy, r, theta, aspect)

    if cls == 'circle':
        return [('poly', tf(_regular(48)), 255)]
    if cls == 'square':
        return [('poly', tf(_regular(4, phase=np.pi / 4)), 255)]
    if cls == 'triangle':
        return [('poly', tf(_regular(3, phase=np.pi / 2)), 255)]
    if cls == 'star':
        outer = _regular(5, 1.0, np.pi / 2)
        inner = _regular(5, rng.uniform(0.4, 0.5), np.pi / 2 + np.pi / 5)
        pts = np.empty((10, 2))
        pts[0::2], pts[1::2] = outer, inner
        return [('poly', tf(pts), 255)]
    if cls == 'cross':
        a = rng.uniform(0.26, 0.36)  # arm half-width
        pts = np.array([(a, 1), (a, a), (1, a), (1, -a), (a, -a), (a, -1),
                        (-a, -1), (-a, -a), (-1, -a), (-1, a), (-a, a),
                        (-a, 1)])
        return [('poly', tf(pts), 255)]
    if cls == 'ring':
        inner = rng.uniform(0.5, 0.62)
        return [('poly', tf(_regular(48)), 255),
                ('poly', tf(_regular(48, inner)), 0)]
    raise ValueError(f'unknown shape class {cls!r}')


def _distractor_prims(kind: str, cx: float, cy: float, r: float, size: int,
                      rng: np.random.Generator) -> List[_Prim]:
    """Primitives of one unannotated clutter item."""
    theta = rng.uniform(0, 2 * np.pi)
    if kind == 'stroke':  # polyline wandering across the image
        n = int(rng.integers(2, 5))
        pts = [(cx, cy)]
        for _ in range(n - 1):
            ang = rng.uniform(0, 2 * np.pi)
            step = rng.uniform(0.1, 0.4) * size
            pts.append((pts[-1][0] + step * math.cos(ang),
                        pts[-1][1] + step * math.sin(ang)))
        return [('line', pts, rng.uniform(1.0, 3.0))]
    if kind == 'blob':  # irregular potato-like polygon
        n = int(rng.integers(6, 10))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = rng.uniform(0.6, 1.0, n)
        pts = np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=1)
        return [('poly', _transform(pts, cx, cy, r, theta, 1.0), 255)]
    if kind == 'ellipse':  # near miss for 'circle'
        aspect = rng.uniform(1.8, 3.0)
        return [('poly', _transform(_regular(48), cx, cy, r, theta, aspect),
                 255)]
    if kind == 'rect':  # near miss for 'square'
        aspect = rng.uniform(2.0, 3.5)
        return [('poly',
                 _transform(_regular(4, phase=np.pi / 4), cx, cy, r, theta,
                            aspect), 255)]
    if kind == 'arc':  # near miss for 'ring': open and thinner
        extent = rng.uniform(0.5, 1.1) * np.pi
        ang = theta + np.linspace(0, extent, 24)
        pts = list(zip((cx + r * np.cos(ang)).tolist(),
                       (cy + r * np.sin(ang)).tolist()))
        return [('line', pts, max(1.0, rng.uniform(0.15, 0.3) * r))]
    raise ValueError(f'unknown distractor kind {kind!r}')


def _rasterize(prims: Sequence[_Prim]) -> Tuple[np.ndarray, int, int]:
    """Draws primitives at ``_SS``x resolution and box-filters them down.

    Only the primitives' bounding box is drawn, so the cost scales with the
    shape, not with the image.

    Returns:
        ``(alpha, x0, y0)``: coverage in ``[0, 1]`` of shape ``(h, w)`` and
        the image position of its top-left pixel (may lie outside the image).
    """
    pts = np.array([p for prim in prims for p in prim[1]], dtype=np.float64)
    pad = 1 + max([prim[2] / 2 for prim in prims if prim[0] == 'line'] +
                  [0])
    x0 = int(math.floor(pts[:, 0].min() - pad))
    y0 = int(math.floor(pts[:, 1].min() - pad))
    w = int(math.ceil(pts[:, 0].max() + pad)) - x0
    h = int(math.ceil(pts[:, 1].max() + pad)) - y0
    canvas = Image.new('L', (w * _SS, h * _SS), 0)
    draw = ImageDraw.Draw(canvas)
    for prim in prims:
        xy = [((x - x0) * _SS, (y - y0) * _SS) for x, y in prim[1]]
        if prim[0] == 'poly':
            draw.polygon(xy, fill=prim[2])
        else:
            draw.line(
                xy,
                fill=255,
                width=max(1, int(round(prim[2] * _SS))),
                joint='curve')
    hi = np.asarray(canvas, dtype=np.float32)
    alpha = hi.reshape(h, _SS, w, _SS).mean(axis=(1, 3)) / 255.0
    return alpha, x0, y0


def _clip(x0: int, y0: int, h: int, w: int,
          size: int) -> Optional[Tuple[tuple, tuple]]:
    """Slices (image, patch) of a patch at (x0, y0) clipped to the image."""
    ix0, iy0 = max(x0, 0), max(y0, 0)
    ix1, iy1 = min(x0 + w, size), min(y0 + h, size)
    if ix0 >= ix1 or iy0 >= iy1:
        return None
    return ((slice(iy0, iy1), slice(ix0, ix1)),
            (slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0)))


# ---------------------------------------------------------------------------
# appearance
# ---------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, grid: int, size: int,
                  channels: int = 1) -> np.ndarray:
    """Unit-variance-ish noise on a coarse grid, bicubically upsampled."""
    out = []
    for _ in range(channels):
        g = rng.standard_normal((grid, grid)).astype(np.float32)
        out.append(
            np.asarray(
                Image.fromarray(g).resize((size, size), Image.BICUBIC)))
    return np.stack(out, axis=-1)


def _fill(rng: np.random.Generator, color: np.ndarray, x0: int, y0: int,
          h: int, w: int, cx: float, cy: float, r: float,
          pattern_prob: float) -> np.ndarray:
    """Colour layer of an item: shaded solid or two-tone stripes, + grain."""
    xs = x0 + np.arange(w, dtype=np.float32) + 0.5
    ys = y0 + np.arange(h, dtype=np.float32) + 0.5
    X, Y = np.meshgrid(xs, ys)
    ang = rng.uniform(0, 2 * np.pi)
    t = ((X - cx) * math.cos(ang) + (Y - cy) * math.sin(ang)) / max(r, 1.0)
    shade = 1.0 + rng.uniform(0.0, 0.3) * np.clip(t, -1, 1)
    layer = color[None, None, :] * shade[..., None]
    if rng.random() < pattern_prob:
        other = rng.uniform(0, 255, 3)
        a2 = rng.uniform(0, np.pi)
        period = rng.uniform(3.0, 7.0)
        phase = (X * math.cos(a2) + Y * math.sin(a2)) / period
        stripes = (np.sin(2 * np.pi * phase) > 0)[..., None]
        layer = np.where(stripes, other[None, None, :], layer)
    grain = rng.uniform(0.0, 6.0)
    layer = layer + grain * rng.standard_normal((h, w, 1))
    return layer.astype(np.float32)


def _composite(img: np.ndarray, alpha: np.ndarray, layer: np.ndarray,
               sl: Tuple[tuple, tuple]) -> None:
    """Alpha-blends ``layer`` over ``img`` in place."""
    isl, psl = sl
    a = alpha[psl][..., None]
    img[isl] = img[isl] * (1.0 - a) + layer[psl] * a


def _pick_color(rng: np.random.Generator, preferred: np.ndarray,
                under: np.ndarray) -> np.ndarray:
    """``preferred`` if it stands out from ``under``, else a random colour
    that does, so every annotated shape stays visible (but not trivially)."""
    best, best_d = preferred, float(np.linalg.norm(preferred - under))
    for _ in range(10):
        if best_d >= _MIN_CONTRAST:
            break
        c = rng.uniform(0, 255, 3)
        d = float(np.linalg.norm(c - under))
        if d > best_d:
            best, best_d = c, d
    return best


def _background(rng: np.random.Generator, size: int,
                clutter: float) -> np.ndarray:
    """Smooth colour gradient + mid-frequency texture + faint large patches."""
    base = rng.uniform(30, 225, 3).astype(np.float32)
    img = base + rng.uniform(20, 60) * _smooth_noise(
        rng, int(rng.integers(2, 5)), size, 3)
    if clutter > 0:
        amp = clutter * rng.uniform(6.0, 22.0)
        lum = _smooth_noise(rng, int(rng.integers(8, 25)), size)
        chroma = _smooth_noise(rng, int(rng.integers(8, 25)), size, 3)
        img = img + amp * lum + 0.4 * amp * chroma
        for _ in range(int(rng.integers(0, round(3 * clutter) + 1))):
            r = rng.uniform(0.3, 0.6) * size
            cx, cy = rng.uniform(0, size, 2)
            prims = _distractor_prims('blob', cx, cy, r, size, rng)
            alpha, x0, y0 = _rasterize(prims)
            sl = _clip(x0, y0, *alpha.shape, size)
            if sl is None:
                continue
            h, w = alpha.shape
            layer = _fill(rng, rng.uniform(0, 255, 3), x0, y0, h, w, cx, cy,
                          r, 0.0)
            _composite(img, alpha * rng.uniform(0.15, 0.4), layer, sl)
    return img


# ---------------------------------------------------------------------------
# scenes
# ---------------------------------------------------------------------------


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def render_scene(
    rng: np.random.Generator,
    image_size: int = 128,
    min_objects: int = 2,
    max_objects: int = 6,
    clutter: float = 1.0,
    radius_range: Tuple[float, float] = _RADIUS_RANGE,
) -> Tuple[np.ndarray, np.ndarray, List[Dict]]:
    """Draws one scene.

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
        (S, S)`` semantic map (see the module docstring), and a list of
        ``{'category_id': int, 'mask': bool (S, S)}`` for the annotated
        shapes, bottom to top.
    """
    size = image_size
    n_obj = int(rng.integers(min_objects, max_objects + 1))
    # Distractors borrow the objects' colours, so colour alone never tells
    # an object from clutter.
    palette = rng.uniform(0, 255, (max(n_obj, 1), 3))
    r_lo, r_hi = (f * size for f in radius_range)

    img = _background(rng, size, clutter)

    # Unannotated clutter underneath the objects.
    kinds = ('stroke', 'blob', 'ellipse', 'rect', 'arc')
    n_dis = int(rng.integers(round(2 * clutter), round(7 * clutter) + 1))
    for _ in range(n_dis):
        kind = kinds[int(rng.integers(len(kinds)))]
        cx, cy = rng.uniform(0, size, 2)
        r = _log_uniform(rng, r_lo, r_hi)
        alpha, x0, y0 = _rasterize(
            _distractor_prims(kind, cx, cy, r, size, rng))
        sl = _clip(x0, y0, *alpha.shape, size)
        if sl is None:
            continue
        if rng.random() < 0.6:
            color = palette[int(rng.integers(len(palette)))] + rng.normal(
                0, 20, 3)
        else:
            color = rng.uniform(0, 255, 3)
        h, w = alpha.shape
        _composite(img, alpha,
                   _fill(rng, color, x0, y0, h, w, cx, cy, r, 0.2), sl)

    # Annotated shapes, bottom to top. idmap holds the topmost instance
    # (1-based) of every pixel; placements that would leave an earlier
    # instance mostly hidden are rejected, so nothing annotated is lost.
    idmap = np.zeros((size, size), np.int32)
    cats: List[int] = []
    full: List[int] = []  # pixel count of each whole (unoccluded) shape
    visible: List[int] = []
    for i in range(n_obj):
        cat = int(rng.integers(len(CLASSES)))
        r = _log_uniform(rng, r_lo, r_hi)
        # Rasterise once around a sub-pixel centre, then try integer shifts.
        fx, fy = rng.uniform(0, 1, 2)
        alpha, x0, y0 = _rasterize(_shape_prims(CLASSES[cat], fx, fy, r, rng))
        solid = alpha >= 0.5
        n_full = int(solid.sum())
        h, w = alpha.shape
        placed = None
        for _ in range(_PLACEMENT_TRIES):
            ox, oy = (int(v) for v in rng.integers(0, size, 2))
            sl = _clip(x0 + ox, y0 + oy, h, w, size)
            if sl is None:
                continue
            isl, psl = sl
            m = solid[psl]
            n_vis = int(m.sum())
            if n_vis < max(_MIN_IN_IMAGE_FRAC * n_full, _MIN_PIXELS):
                continue
            covered = np.bincount(idmap[isl][m], minlength=len(cats) + 1)
            if all(visible[j] - covered[j + 1] >= max(
                    _MIN_VISIBLE_FRAC * full[j], _MIN_PIXELS)
                   for j in range(len(cats))):
                placed = (ox, oy, sl, n_vis, covered)
                break
        if placed is None:
            continue
        ox, oy, (isl, psl), n_vis, covered = placed
        for j in range(len(cats)):
            visible[j] -= int(covered[j + 1])
        idmap[isl][solid[psl]] = len(cats) + 1
        cats.append(cat + 1)
        full.append(n_full)
        visible.append(n_vis)
        under = img[isl].reshape(-1, 3).mean(axis=0)
        preferred = palette[i] + rng.normal(0, 10, 3)
        color = _pick_color(rng, preferred, under)
        _composite(
            img, alpha,
            _fill(rng, color, x0 + ox, y0 + oy, h, w, fx + ox, fy + oy, r,
                  0.25), (isl, psl))

    # Thin strokes over everything: they really occlude, so their pixels
    # leave the instances' masks.
    n_top = int(rng.integers(0, round(2 * clutter) + 1)) if clutter > 0 else 0
    for _ in range(n_top):
        cx, cy = rng.uniform(0, size, 2)
        prims = _distractor_prims('stroke', cx, cy, 0.0, size, rng)
        prims = [('line', prims[0][1], rng.uniform(0.8, 1.5))]
        alpha, x0, y0 = _rasterize(prims)
        sl = _clip(x0, y0, *alpha.shape, size)
        if sl is None:
            continue
        h, w = alpha.shape
        color = palette[int(rng.integers(len(palette)))] + rng.normal(
            0, 20, 3)
        _composite(img, alpha,
                   _fill(rng, color, x0, y0, h, w, cx, cy, size, 0.0), sl)
        isl, psl = sl
        idmap[isl][alpha[psl] >= 0.5] = 0

    # Camera-ish degradation: optional slight blur, then sensor noise.
    img = np.clip(img, 0, 255)
    if rng.random() < 0.5:
        radius = rng.uniform(0.3, 0.8)
        img = np.asarray(
            Image.fromarray(np.round(img).astype(np.uint8)).filter(
                ImageFilter.GaussianBlur(radius)), dtype=np.float32)
    if clutter > 0:
        img = img + clutter * rng.uniform(2.0, 8.0) * rng.standard_normal(
            img.shape)
    image = np.clip(np.round(img), 0, 255).astype(np.uint8)

    sem = np.full((size, size), SEM_BACKGROUND, np.uint8)
    instances = []
    for j, cat in enumerate(cats):
        mask = idmap == j + 1
        n_vis = int(mask.sum())
        if n_vis < max(_MIN_VISIBLE_FRAC * full[j], _MIN_PIXELS):
            sem[mask] = SEM_IGNORE  # crossed out by strokes: not annotated
            continue
        sem[mask] = cat
        instances.append({'category_id': cat, 'mask': mask})
    return image, sem, instances


# ---------------------------------------------------------------------------
# dataset files
# ---------------------------------------------------------------------------


def _mask_to_ann(mask: np.ndarray) -> Dict:
    """COCO fields (bbox, area, compressed-RLE segmentation) of a mask."""
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {
        'bbox': [x0, y0, x1 - x0 + 1, y1 - y0 + 1],
        'area': int(mask.sum()),
        'segmentation': {
            'size': [int(v) for v in rle['size']],
            'counts': rle['counts'].decode('ascii')
        },
    }


def _file_name(image_id: int) -> str:
    return f'{image_id:06d}.png'


def _params(num_train: int, num_val: int, image_size: int, min_objects: int,
            max_objects: int, clutter: float,
            radius_range: Sequence[float]) -> Dict:
    return {
        'num_train': num_train,
        'num_val': num_val,
        'image_size': image_size,
        'min_objects': min_objects,
        'max_objects': max_objects,
        'clutter': float(clutter),
        'radius_range': [float(r) for r in radius_range],
    }


def _paths(out_dir: str) -> Dict:
    paths = {'out_dir': out_dir, 'meta_file': osp.join(out_dir, 'meta.json')}
    for split in _SPLITS:
        paths[split] = {
            'img_dir': osp.join(out_dir, split),
            'sem_dir': osp.join(out_dir, f'{split}_sem'),
            'ann_file': osp.join(out_dir, 'annotations',
                                 f'instances_{split}.json'),
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


def _generate_split(split: str, num: int, paths: Dict, seed: int,
                    params: Dict) -> Dict:
    """Writes one split's images, semantic maps and COCO json."""
    p = paths[split]
    for d in (p['img_dir'], p['sem_dir']):
        os.makedirs(d, exist_ok=True)
        # Drop our own stale files (e.g. from a bigger earlier run) but never
        # anything else a user may keep there.
        for f in sorted(os.listdir(d)):
            if _IMG_NAME.match(f):
                os.remove(osp.join(d, f))
    images, annotations = [], []
    per_class = [0] * len(CLASSES)
    sizes = []
    split_id = _SPLITS.index(split)
    for idx in range(num):
        rng = np.random.default_rng([seed, split_id, idx])
        image, sem, instances = render_scene(
            rng, params['image_size'], params['min_objects'],
            params['max_objects'], params['clutter'],
            tuple(params['radius_range']))
        image_id = idx + 1
        name = _file_name(image_id)
        Image.fromarray(image).save(osp.join(p['img_dir'], name))
        Image.fromarray(sem).save(osp.join(p['sem_dir'], name))
        images.append({
            'id': image_id,
            'file_name': name,
            'width': params['image_size'],
            'height': params['image_size'],
        })
        for inst in instances:
            ann = {
                'id': len(annotations) + 1,
                'image_id': image_id,
                'category_id': inst['category_id'],
                'iscrowd': 0,
            }
            ann.update(_mask_to_ann(inst['mask']))
            annotations.append(ann)
            per_class[inst['category_id'] - 1] += 1
            sizes.append(math.sqrt(ann['bbox'][2] * ann['bbox'][3]))
    coco = {
        'info': {
            'description': 'mmkd synthetic shapes demo dataset',
            'version': str(GENERATOR_VERSION),
            'seed': seed,
            'split': split,
        },
        'licenses': [],
        'images': images,
        'annotations': annotations,
        'categories': [{
            'id': i + 1,
            'name': name,
            'supercategory': 'shape'
        } for i, name in enumerate(CLASSES)],
    }
    os.makedirs(osp.dirname(p['ann_file']), exist_ok=True)
    with open(p['ann_file'], 'w') as f:
        json.dump(coco, f, separators=(',', ':'))
    sizes_arr = np.array(sizes) if sizes else np.zeros(1)
    return {
        'num_images': num,
        'num_instances': len(annotations),
        'instances_per_class': dict(zip(CLASSES, per_class)),
        # sqrt(w * h) of the boxes: min / median / max, in pixels
        'box_size_px': [
            round(float(sizes_arr.min()), 1),
            round(float(np.median(sizes_arr)), 1),
            round(float(sizes_arr.max()), 1)
        ],
    }


def generate_shapes(out_dir: Union[str, os.PathLike],
                    num_train: int = 500,
                    num_val: int = 120,
                    image_size: int = 128,
                    seed: int = 0,
                    min_objects: int = 2,
                    max_objects: int = 6,
                    clutter: float = 1.0,
                    radius_range: Sequence[float] = _RADIUS_RANGE,
                    force: bool = False) -> Dict:
    """Writes the synthetic shapes dataset (see module docstring) to disk.

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
            failures, which are rare with the defaults).
        max_objects: Most annotated shapes per image.
        clutter: Background texture / distractor / noise strength; 0 makes
            clean scenes, 1 is the default, 2 is very busy.
        radius_range: ``(min, max)`` circumradius of the shapes as fractions
            of ``image_size``, ``0 < min <= max <= 0.5``.
        force: Regenerate even if an identical dataset is already there.

    Returns:
        dict with ``out_dir``, ``meta_file``, ``classes``, ``generated``
        (False if skipped), and per split (``'train'``, ``'val'``) a dict of
        ``img_dir``, ``sem_dir``, ``ann_file``, ``num_images``,
        ``num_instances``, ``instances_per_class`` and ``box_size_px``
        (min / median / max of ``sqrt(w*h)``).
    """
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
    if len(radius_range) != 2 or not 0 < radius_range[0] <= radius_range[
            1] <= 0.5:
        raise ValueError('radius_range must be (min, max) with '
                         f'0 < min <= max <= 0.5, got {radius_range}')
    out_dir = os.fspath(out_dir)
    params = _params(num_train, num_val, image_size, min_objects, max_objects,
                     clutter, radius_range)
    paths = _paths(out_dir)
    key = {
        'generator': 'mmkd.demo.shapes',
        'version': GENERATOR_VERSION,
        'seed': seed,
        'params': params,
    }

    meta = None
    if osp.isfile(paths['meta_file']):
        try:
            with open(paths['meta_file']) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            meta = None
    if (not force and meta is not None
            and {k: meta.get(k)
                 for k in key} == key and _is_complete(paths, params)):
        result = dict(paths, classes=list(CLASSES), generated=False)
        for split in _SPLITS:
            result[split] = dict(paths[split], **meta['stats'][split])
        return result

    os.makedirs(out_dir, exist_ok=True)
    # Remove the old meta first: an interrupted run must not look complete.
    if osp.exists(paths['meta_file']):
        os.remove(paths['meta_file'])
    stats = {
        split: _generate_split(split, params[f'num_{split}'], paths, seed,
                               params)
        for split in _SPLITS
    }
    meta = dict(key, classes=list(CLASSES), stats=stats)
    with open(paths['meta_file'], 'w') as f:
        json.dump(meta, f, indent=2)
        f.write('\n')
    result = dict(paths, classes=list(CLASSES), generated=True)
    for split in _SPLITS:
        result[split] = dict(paths[split], **stats[split])
    return result
