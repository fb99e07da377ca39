"""Which splats a selection tool takes (issue 23, item 2): pure numpy, no Qt.

Screen-space tools (rectangle, lasso, brush) test each splat's *centre* projected with the viewer's camera,
through the whole depth (as SuperSplat's do): a splat is taken when its centre is in front of the camera and
inside the shape. The rectangle compares coordinates; the lasso and the brush are rasterised at the view's
pixel size first (a lasso of hundreds of points against a million centres would otherwise cost seconds), so
a centre counts as inside when the centre of the pixel it falls in is (even-odd rule for a lasso that crosses
itself). World-space tools (box, sphere) and value thresholds (opacity, size, colour) need no camera.

At a million splats and 1280x720, projecting the centres takes ~15 ms and any of these shapes a few ms more
(``benchmarks/viewer_bench.py --selection``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from splatstudio.model.geometry import Intrinsics
from splatstudio.model.splatcloud import SplatCloud


@dataclass(frozen=True)
class Projected:
    """Splat centres in pixel coordinates of a view (``xy`` (N, 2) float32, top-left origin) and whether each
    is in front of the camera (``ahead``)."""

    xy: np.ndarray
    ahead: np.ndarray
    width: int
    height: int


def project_centres(positions: np.ndarray, view: np.ndarray, intr: Intrinsics, near: float) -> Projected:
    """Project ``positions`` with the 4x4 world-to-camera ``view`` and pinhole ``intr`` (as the viewer draws)."""
    p = np.asarray(positions, dtype=np.float32)
    r = np.asarray(view[:3, :3], dtype=np.float64)
    t = np.asarray(view[:3, 3], dtype=np.float64)

    def row(i: int) -> np.ndarray:  # element-wise, not a BLAS product: its threads stalled 0.5 s beside llvmpipe's
        out = p[:, 0] * np.float32(r[i, 0])
        out += p[:, 1] * np.float32(r[i, 1])
        out += p[:, 2] * np.float32(r[i, 2])
        out += np.float32(t[i])
        return out

    z = row(2)
    ahead = z > np.float32(near)
    inv = np.float32(1.0) / np.where(ahead, z, np.float32(1.0))
    xy = np.empty((len(p), 2), dtype=np.float32)
    for axis, (focal, principal) in enumerate(((intr.fx, intr.cx), (intr.fy, intr.cy))):
        column = row(axis)
        column *= inv
        column *= np.float32(focal)
        column += np.float32(principal)
        xy[:, axis] = column
    return Projected(xy, ahead, int(intr.width), int(intr.height))


def in_rectangle(projected: Projected, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Centres inside the rectangle with corners (x0, y0), (x1, y1) (pixels, any order; edges included)."""
    lo_x, hi_x = min(x0, x1), max(x0, x1)
    lo_y, hi_y = min(y0, y1), max(y0, y1)
    x, y = projected.xy[:, 0], projected.xy[:, 1]
    return projected.ahead & (x >= lo_x) & (x <= hi_x) & (y >= lo_y) & (y <= hi_y)


def polygon_raster(polygon: np.ndarray, width: int, height: int) -> np.ndarray:
    """(height, width) bool: the pixels whose centres are inside ``polygon`` ((K, 2) pixel coordinates, closed
    implicitly), by the even-odd rule. Each row's crossings with the edges are counted with a running sum, so
    the cost is one pass over the pixels whatever the number of vertices."""
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    out = np.zeros((height, width), dtype=bool)
    if len(poly) < 3 or width <= 0 or height <= 0:
        return out
    # only the rows and columns of the polygon's bounding box can be inside
    x0, y0 = (max(int(np.floor(v)) - 1, 0) for v in poly.min(axis=0))
    x1, y1 = min(int(np.ceil(poly[:, 0].max())) + 1, width), min(int(np.ceil(poly[:, 1].max())) + 1, height)
    if x0 >= x1 or y0 >= y1:
        return out
    out[y0:y1, x0:x1] = _polygon_block(poly - [x0, y0], x1 - x0, y1 - y0)
    return out


def _polygon_block(poly: np.ndarray, width: int, height: int) -> np.ndarray:
    out = np.zeros((height, width), dtype=bool)
    a, b = poly, np.roll(poly, -1, axis=0)
    ys = np.arange(height, dtype=np.float64) + 0.5  # pixel centres
    # an edge crosses row y when y is in [min(ya, yb), max(ya, yb)) (half-open: a vertex counts once)
    ya, yb = a[:, 1][None, :], b[:, 1][None, :]
    crosses = ((ya <= ys[:, None]) & (yb > ys[:, None])) | ((yb <= ys[:, None]) & (ya > ys[:, None]))
    rows, edges = np.nonzero(crosses)
    if not len(rows):
        return out
    ax, ay, bx, by = a[edges, 0], a[edges, 1], b[edges, 0], b[edges, 1]
    x = ax + (ys[rows] - ay) * (bx - ax) / (by - ay)
    # a crossing at x flips the parity of every pixel centre at or right of it: column ceil(x - 0.5)
    column = np.clip(np.ceil(x - 0.5), 0, width).astype(np.int64)
    flips = np.zeros((height, width + 1), dtype=np.int32)
    np.add.at(flips, (rows, column), 1)
    return (np.cumsum(flips[:, :width], axis=1) & 1).astype(bool)


def brush_raster(stroke: np.ndarray, radius: float, width: int, height: int) -> np.ndarray:
    """(height, width) bool: the pixels whose centres are within ``radius`` pixels of the brush's path
    (``stroke`` (K, 2), its points joined by straight segments)."""
    pts = np.asarray(stroke, dtype=np.float64).reshape(-1, 2)
    out = np.zeros((height, width), dtype=bool)
    if not len(pts) or radius <= 0 or width <= 0 or height <= 0:
        return out
    r = float(radius)
    if len(pts) == 1:
        pts = np.vstack([pts, pts])
    for a, b in zip(pts[:-1], pts[1:], strict=True):
        lo = np.floor(np.minimum(a, b) - r).astype(int)
        hi = np.ceil(np.maximum(a, b) + r).astype(int) + 1
        x0, y0 = max(lo[0], 0), max(lo[1], 0)
        x1, y1 = min(hi[0], width), min(hi[1], height)
        if x0 >= x1 or y0 >= y1:
            continue
        px = np.arange(x0, x1, dtype=np.float64) + 0.5
        py = np.arange(y0, y1, dtype=np.float64) + 0.5
        gx, gy = np.meshgrid(px, py)
        d = b - a
        length2 = float(d @ d)
        s = np.zeros_like(gx) if length2 == 0 else np.clip(((gx - a[0]) * d[0] + (gy - a[1]) * d[1]) / length2, 0, 1)
        near = (gx - a[0] - s * d[0]) ** 2 + (gy - a[1] - s * d[1]) ** 2 <= r * r
        out[y0:y1, x0:x1] |= near
    return out


def in_raster(projected: Projected, raster: np.ndarray) -> np.ndarray:
    """Centres in front of the camera that fall in a pixel set in ``raster`` ((height, width) bool)."""
    height, width = raster.shape
    x, y = projected.xy[:, 0], projected.xy[:, 1]
    inside = projected.ahead & (x >= 0) & (x < width) & (y >= 0) & (y < height)
    idx = np.flatnonzero(inside)
    out = np.zeros(len(x), dtype=bool)
    out[idx] = raster[y[idx].astype(np.int32), x[idx].astype(np.int32)]
    return out


def in_polygon(projected: Projected, polygon: np.ndarray) -> np.ndarray:
    """Centres inside the lasso ``polygon`` (see :func:`polygon_raster`)."""
    return in_raster(projected, polygon_raster(polygon, projected.width, projected.height))


def in_brush(projected: Projected, stroke: np.ndarray, radius: float) -> np.ndarray:
    """Centres under the brush's path (see :func:`brush_raster`)."""
    return in_raster(projected, brush_raster(stroke, radius, projected.width, projected.height))


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Exact even-odd test of points (N, 2) against a polygon (K, 2): the reference the raster is checked
    against (one pass per edge: for a few points or a few edges)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    inside = np.zeros(len(pts), dtype=bool)
    if len(poly) < 3:
        return inside
    x, y = pts[:, 0], pts[:, 1]
    for (ax, ay), (bx, by) in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        straddles = (ay <= y) != (by <= y)
        with np.errstate(divide="ignore", invalid="ignore"):
            cross_x = ax + (y - ay) * (bx - ax) / (by - ay)
        inside ^= straddles & (x < cross_x)
    return inside


# ------------------------------------------------------------------------------------ world space


def in_box(positions: np.ndarray, center, half_size, rotation=None) -> np.ndarray:
    """Positions inside a box of centre ``center``, half sizes ``half_size`` along its axes (the columns of
    ``rotation``; identity: axis-aligned), faces included."""
    c = np.asarray(center, dtype=np.float64).reshape(3)
    h = np.asarray(half_size, dtype=np.float64).reshape(3)
    r = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    local = (np.asarray(positions, dtype=np.float64) - c) @ r
    return (np.abs(local) <= h).all(axis=1)


def in_sphere(positions: np.ndarray, center, radius: float) -> np.ndarray:
    """Positions within ``radius`` of ``center`` (its surface included)."""
    d = np.asarray(positions, dtype=np.float64) - np.asarray(center, dtype=np.float64).reshape(3)
    return np.einsum("ij,ij->i", d, d) <= float(radius) ** 2


# ------------------------------------------------------------------------------------ by value


@dataclass(frozen=True)
class SplatValues:
    """What the value tools threshold, once per model: opacity (0..1), size (the largest axis' standard
    deviation in the model's units) and base colour (RGB 0..1, the degree-0 colour)."""

    opacity: np.ndarray
    size: np.ndarray
    color: np.ndarray

    @classmethod
    def of(cls, cloud: SplatCloud) -> SplatValues:
        return cls(cloud.alphas().astype(np.float32), np.exp(cloud.scales.max(axis=1)).astype(np.float32)
                   if len(cloud) else np.zeros(0, np.float32), cloud.colors_rgb().astype(np.float32))


def by_values(values: SplatValues, opacity: tuple[float, float] | None = None,
              size: tuple[float, float] | None = None, color: tuple[float, float, float] | None = None,
              tolerance: float = 0.1) -> np.ndarray:
    """Splats whose opacity and size are within the given (low, high) ranges (None: any) and, with ``color``,
    whose base colour is within ``tolerance`` of it (Euclidean distance in RGB 0..1)."""
    keep = np.ones(len(values.opacity), dtype=bool)
    if opacity is not None:
        keep &= (values.opacity >= opacity[0]) & (values.opacity <= opacity[1])
    if size is not None:
        keep &= (values.size >= size[0]) & (values.size <= size[1])
    if color is not None:
        d = values.color - np.asarray(color, dtype=np.float32).reshape(1, 3)
        keep &= np.einsum("ij,ij->i", d, d) <= np.float32(tolerance) ** 2
    return keep


def histogram(values: np.ndarray, bins: int = 48, log: bool = False,
              mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(counts, edges) of ``values`` (of those in ``mask``), on a log scale with ``log`` (edges then in the
    values' own units); empty input gives zero counts over [0, 1]."""
    v = np.asarray(values, dtype=np.float64)
    if mask is not None:
        v = v[mask]
    v = v[np.isfinite(v)]
    if log:
        v = v[v > 0]
    if not len(v):
        return np.zeros(bins, dtype=np.int64), np.linspace(0.0, 1.0, bins + 1)
    lo, hi = (np.percentile(v, 0.5), np.percentile(v, 99.5)) if len(v) > 200 else (v.min(), v.max())
    if log:
        lo, hi = np.log10(lo), np.log10(hi)
        v = np.log10(v)
    if hi <= lo:
        hi = lo + 1e-6
    counts, edges = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))
    return counts, (10.0 ** edges if log else edges)
