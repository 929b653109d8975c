"""Drawing for the shapes generators: shape outlines, rasterising, colouring.

A *primitive* is ``('poly', points, fill)`` or ``('line', points, width_px)``
with points in image pixel coordinates ``(x, y)``; a ``'poly'`` with fill 0
cuts a hole. :func:`rasterize` turns primitives into a coverage patch at
:data:`SUPERSAMPLING` x resolution (anti-aliased edges), :func:`fill` makes
the patch's colour layer and :func:`composite` blends it into an image.

Every function draws its randomness from the ``rng`` it is given, in a fixed
order: the same generator state gives the same pixels (the generators' byte
reproducibility rests on it, so a change here needs a version bump there).
"""
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

#: Supersampling factor: anti-aliased edges and sub-pixel shapes.
SUPERSAMPLING = 4
#: Smallest RGB distance between an annotated shape and what lies beneath.
MIN_CONTRAST = 60.0

#: ``('poly', points, fill)`` or ``('line', points, width_px)``.
Prim = Tuple
#: ``(image slices, patch slices)`` of a patch clipped to the image.
Slices = Tuple[tuple, tuple]


def regular(n: int, radius: float = 1.0, phase: float = 0.0) -> np.ndarray:
    """Vertices of a regular n-gon on a circle (unit shape coordinates)."""
    ang = phase + np.arange(n) * (2 * np.pi / n)
    return radius * np.stack([np.cos(ang), np.sin(ang)], axis=1)


def transform(pts: np.ndarray, cx: float, cy: float, r: float, theta: float,
              aspect: float) -> List[Tuple[float, float]]:
    """Scale (anisotropically), rotate and translate unit-shape points."""
    sx, sy = r * math.sqrt(aspect), r / math.sqrt(aspect)
    p = pts * np.array([sx, sy])
    c, s = math.cos(theta), math.sin(theta)
    x = p[:, 0] * c - p[:, 1] * s + cx
    y = p[:, 0] * s + p[:, 1] * c + cy
    return list(zip(x.tolist(), y.tolist()))


def _star(r_inner: float) -> np.ndarray:
    outer = regular(5, 1.0, np.pi / 2)
    inner = regular(5, r_inner, np.pi / 2 + np.pi / 5)
    pts = np.empty((10, 2))
    pts[0::2], pts[1::2] = outer, inner
    return pts


def _cross(arm: float) -> np.ndarray:
    a = arm  # half-width of an arm
    return np.array([(a, 1), (a, a), (1, a), (1, -a), (a, -a), (a, -1), (-a, -1), (-a, -a),
                     (-1, -a), (-1, a), (-a, a), (-a, 1)])


def shape_prims(cls: str, cx: float, cy: float, r: float,
                rng: np.random.Generator) -> List[Prim]:
    """Primitives of one annotated shape of class ``cls``, circumradius ``r``."""
    theta = rng.uniform(0, 2 * np.pi)
    # Mild squash keeps shapes varied but far from the elongated ellipses /
    # rectangles used as distractors (aspect >= 1.8).
    aspect = rng.uniform(0.87, 1.15)

    def tf(p):
        return transform(p, cx, cy, r, theta, aspect)

    if cls == 'circle':
        return [('poly', tf(regular(48)), 255)]
    if cls == 'square':
        return [('poly', tf(regular(4, phase=np.pi / 4)), 255)]
    if cls == 'triangle':
        return [('poly', tf(regular(3, phase=np.pi / 2)), 255)]
    if cls == 'star':
        return [('poly', tf(_star(rng.uniform(0.4, 0.5))), 255)]
    if cls == 'cross':
        return [('poly', tf(_cross(rng.uniform(0.26, 0.36))), 255)]
    if cls == 'ring':
        inner = rng.uniform(0.5, 0.62)
        return [('poly', tf(regular(48)), 255), ('poly', tf(regular(48, inner)), 0)]
    raise ValueError(f'unknown shape class {cls!r}')


def _stroke(cx: float, cy: float, size: int, rng: np.random.Generator) -> List[Prim]:
    """A polyline wandering across the image."""
    n = int(rng.integers(2, 5))
    pts = [(cx, cy)]
    for _ in range(n - 1):
        ang = rng.uniform(0, 2 * np.pi)
        step = rng.uniform(0.1, 0.4) * size
        pts.append((pts[-1][0] + step * math.cos(ang), pts[-1][1] + step * math.sin(ang)))
    return [('line', pts, rng.uniform(1.0, 3.0))]


def _blob(cx: float, cy: float, r: float, theta: float,
          rng: np.random.Generator) -> List[Prim]:
    """An irregular potato-like polygon."""
    n = int(rng.integers(6, 10))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = rng.uniform(0.6, 1.0, n)
    pts = np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=1)
    return [('poly', transform(pts, cx, cy, r, theta, 1.0), 255)]


def distractor_prims(kind: str, cx: float, cy: float, r: float, size: int,
                     rng: np.random.Generator) -> List[Prim]:
    """Primitives of one unannotated clutter item.

    ``kind`` is ``'stroke'``, ``'blob'`` or a near miss of a shape class:
    ``'ellipse'`` (circle), ``'rect'`` (square) or ``'arc'`` (ring, open and
    thinner).
    """
    theta = rng.uniform(0, 2 * np.pi)
    if kind == 'stroke':
        return _stroke(cx, cy, size, rng)
    if kind == 'blob':
        return _blob(cx, cy, r, theta, rng)
    if kind == 'ellipse':
        aspect = rng.uniform(1.8, 3.0)
        return [('poly', transform(regular(48), cx, cy, r, theta, aspect), 255)]
    if kind == 'rect':
        aspect = rng.uniform(2.0, 3.5)
        return [('poly', transform(regular(4, phase=np.pi / 4), cx, cy, r, theta, aspect), 255)]
    if kind == 'arc':
        extent = rng.uniform(0.5, 1.1) * np.pi
        ang = theta + np.linspace(0, extent, 24)
        pts = list(zip((cx + r * np.cos(ang)).tolist(), (cy + r * np.sin(ang)).tolist()))
        return [('line', pts, max(1.0, rng.uniform(0.15, 0.3) * r))]
    raise ValueError(f'unknown distractor kind {kind!r}')


def rasterize(prims: Sequence[Prim]) -> Tuple[np.ndarray, int, int]:
    """Draw primitives at :data:`SUPERSAMPLING` x resolution and box-filter
    them down.

    Only the primitives' bounding box is drawn, so the cost scales with the
    shape, not with the image.

    Args:
        prims: the primitives, drawn in order.

    Returns:
        ``(alpha, x0, y0)``: coverage in ``[0, 1]`` of shape ``(h, w)`` and
        the image position of its top-left pixel (may lie outside the image).
    """
    ss = SUPERSAMPLING
    pts = np.array([p for prim in prims for p in prim[1]], dtype=np.float64)
    pad = 1 + max([prim[2] / 2 for prim in prims if prim[0] == 'line'] + [0])
    x0 = int(math.floor(pts[:, 0].min() - pad))
    y0 = int(math.floor(pts[:, 1].min() - pad))
    w = int(math.ceil(pts[:, 0].max() + pad)) - x0
    h = int(math.ceil(pts[:, 1].max() + pad)) - y0
    canvas = Image.new('L', (w * ss, h * ss), 0)
    draw = ImageDraw.Draw(canvas)
    for prim in prims:
        xy = [((x - x0) * ss, (y - y0) * ss) for x, y in prim[1]]
        if prim[0] == 'poly':
            draw.polygon(xy, fill=prim[2])
        else:
            draw.line(xy, fill=255, width=max(1, int(round(prim[2] * ss))), joint='curve')
    hi = np.asarray(canvas, dtype=np.float32)
    alpha = hi.reshape(h, ss, w, ss).mean(axis=(1, 3)) / 255.0
    return alpha, x0, y0


def clip(x0: int, y0: int, h: int, w: int, size: int) -> Optional[Slices]:
    """Slices ``(image, patch)`` of an ``h`` x ``w`` patch at ``(x0, y0)``
    clipped to a ``size`` x ``size`` image; ``None`` when nothing is inside."""
    ix0, iy0 = max(x0, 0), max(y0, 0)
    ix1, iy1 = min(x0 + w, size), min(y0 + h, size)
    if ix0 >= ix1 or iy0 >= iy1:
        return None
    return ((slice(iy0, iy1), slice(ix0, ix1)),
            (slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0)))


def smooth_noise(rng: np.random.Generator, grid: int, size: int,
                 channels: int = 1) -> np.ndarray:
    """Unit-variance-ish noise on a coarse grid, bicubically upsampled."""
    out = []
    for _ in range(channels):
        g = rng.standard_normal((grid, grid)).astype(np.float32)
        out.append(np.asarray(Image.fromarray(g).resize((size, size), Image.BICUBIC)))
    return np.stack(out, axis=-1)


def fill(rng: np.random.Generator, color: np.ndarray, x0: int, y0: int, h: int, w: int,
         cx: float, cy: float, r: float, pattern_prob: float) -> np.ndarray:
    """Colour layer of an item over its patch: shaded solid or, with
    probability ``pattern_prob``, two-tone stripes; plus grain."""
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


def composite(img: np.ndarray, alpha: np.ndarray, layer: np.ndarray, sl: Slices) -> None:
    """Alpha-blend ``layer`` over ``img`` in place (``sl`` from :func:`clip`)."""
    isl, psl = sl
    a = alpha[psl][..., None]
    img[isl] = img[isl] * (1.0 - a) + layer[psl] * a


def pick_color(rng: np.random.Generator, preferred: np.ndarray,
               under: np.ndarray) -> np.ndarray:
    """``preferred`` if it stands out from ``under``, else a random colour
    that does, so every annotated shape stays visible (but not trivially)."""
    best, best_d = preferred, float(np.linalg.norm(preferred - under))
    for _ in range(10):
        if best_d >= MIN_CONTRAST:
            break
        c = rng.uniform(0, 255, 3)
        d = float(np.linalg.norm(c - under))
        if d > best_d:
            best, best_d = c, d
    return best


def _patches(img: np.ndarray, size: int, clutter: float, rng: np.random.Generator) -> None:
    """Faint large blobs over the background, in place."""
    for _ in range(int(rng.integers(0, round(3 * clutter) + 1))):
        r = rng.uniform(0.3, 0.6) * size
        cx, cy = rng.uniform(0, size, 2)
        alpha, x0, y0 = rasterize(distractor_prims('blob', cx, cy, r, size, rng))
        sl = clip(x0, y0, *alpha.shape, size)
        if sl is None:
            continue
        h, w = alpha.shape
        layer = fill(rng, rng.uniform(0, 255, 3), x0, y0, h, w, cx, cy, r, 0.0)
        composite(img, alpha * rng.uniform(0.15, 0.4), layer, sl)


def background(rng: np.random.Generator, size: int, clutter: float) -> np.ndarray:
    """Smooth colour gradient; with ``clutter > 0`` also mid-frequency
    texture and faint large patches. Returns a float ``(size, size, 3)``."""
    base = rng.uniform(30, 225, 3).astype(np.float32)
    img = base + rng.uniform(20, 60) * smooth_noise(rng, int(rng.integers(2, 5)), size, 3)
    if clutter > 0:
        amp = clutter * rng.uniform(6.0, 22.0)
        lum = smooth_noise(rng, int(rng.integers(8, 25)), size)
        chroma = smooth_noise(rng, int(rng.integers(8, 25)), size, 3)
        img = img + amp * lum + 0.4 * amp * chroma
        _patches(img, size, clutter, rng)
    return img
