"""PlayCanvas's SOG ("Spatially Ordered Gaussians"): read and write version 2, bundled (``.sog``, a zip) or not.

The format is specified in the PlayCanvas developer manual ("The SOG Format", version 2) and written and
read by ``@playcanvas/splat-transform`` (``src/lib/writers/write-sog.ts``, ``src/lib/readers/read-sog.ts``,
version 3.7.0, which writes version 2; the tests in ``tests/interop`` run that very package). A scene is a
``meta.json`` plus lossless WebP images; the bundled form is a zip holding the same files at its root.

Images
------
Every image but ``shN_centroids`` holds one splat per pixel, row-major from the top left: splat ``i`` is at
``x = i % W, y = i // W``; ``count <= W * H`` and the pixels after ``count`` are ignored. This writer makes
``W = ceil(sqrt(N) / 4) * 4`` and ``H = ceil(N / W / 4) * 4`` (as splat-transform) and puts the splats in
Morton (Z-curve) order of their positions, so that neighbours in the image are neighbours in space and
the WebP compresses well.

================== ======= ======================================================================
image              RGBA    content
================== ======= ======================================================================
means_l / means_u  R, G, B low / high byte of a 16-bit ``v`` per axis: ``t = lt(p)`` with
                           ``lt(p) = sign(p) * ln(|p| + 1)``, ``v = 65535 * (t - min) / (max - min)``
                           (``mins``/``maxs`` in meta are those of ``lt(p)``); read back as
                           ``lt^-1(min + (max - min) * v / 65535)``, a zero range read as 1
quats              R, G, B the three smallest components of the unit quaternion (w, x, y, z), in that
                   A       order, of the quaternion made to have its largest component positive, each
                           ``255 * (q * sqrt(2) * 0.5 + 0.5)``; A = 252 + the index of the largest,
                           which is rebuilt as ``sqrt(1 - sum of the others squared)``
scales             R, G, B indexes into ``scales.codebook``: 256 log scales shared by the 3 axes
sh0                R, G, B indexes into ``sh0.codebook``: 256 SH DC values shared by the 3 channels
                   A       ``sigmoid(opacity) * 255``
shN_labels         R, G    16-bit index (R low) into the SH palette of ``shN.count`` entries
shN_centroids      R, G, B palette entry ``e``, coefficient ``j`` (of 3, 8 or 15 for ``shN.bands`` 1..3) at
                           ``x = (e % 64) * coeffs + j``, ``y = e // 64`` (width ``64 * coeffs``): indexes
                           into ``shN.codebook``, 256 values shared by all coefficients and channels
================== ======= ======================================================================

Codebooks are made by k-means, as the specification has them: a weighted one-dimensional k-means of 256
centres over a histogram of the pooled values (scales, DC, and the SH palette's values), and a k-means of
``min(64, 2^floor(log2(N / 1024))) * 1024`` centres (splat-transform's palette size, at most N) over the
splats' SH coefficients, each a vector of 3 x coeffs numbers, 6 Lloyd iterations (splat-transform: 10).
The latter is hierarchical here, so that a million splats take tens of seconds on a CPU rather than the
hours of a flat k-means of 65,536 centres: a coarse k-means of ``sqrt(size)`` centres, then, within each
coarse cluster, a k-means whose share of the palette is that of the cluster's splats. Everything is
seeded, so the same cloud always gives the same file.

Coordinates: SOG holds the scene in the 3DGS PLY's own frame (the manual: "SOG stores Gaussians in the
same coordinate system as 3DGS PLY files"), so nothing is converted.

Where this writer departs from splat-transform's (the format allows both): positions, quaternion
components and opacity are rounded to the nearest step where splat-transform truncates, and the SH
palette's count is the number of entries written (splat-transform writes the palette size). Version 1
(no ``version`` in meta.json) is not read.

Readers check before they allocate: the meta's fields and types, ``count`` at most `MAX_SPLATS`, every
image's size against ``count`` (read from the WebP header before the pixels are decoded), zip members
against the size their image can take, and every index against its codebook or palette. Problems raise
`FormatError` naming the file.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError, features

from splatstudio.io.errors import FormatError, load_json_text, reports_out_of_memory
from splatstudio.io.ply import PathLike
from splatstudio.model.atomic import atomic_open
from splatstudio.model.splatcloud import SplatCloud, logit, sigmoid

META_VERSION = 2
META_NAME = "meta.json"
SH_COEFFS = (0, 3, 8, 15)
CODEBOOK_SIZE = 256
PALETTE_COLUMNS = 64  # palette entries per row of shN_centroids
MAX_SPLATS = 30_000_000
MAX_IMAGE_SIDE = 16383  # WebP's limit
MAX_META_BYTES = 1 << 22
QUAT_TAG = 252
SQRT2 = math.sqrt(2.0)
# the three stored components (indexes into w, x, y, z) for each index of the largest
_OTHERS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]], dtype=np.intp)
_OPACITY_EPS = 1e-6  # splat-transform's clamp of the alpha before the logit

WEBP_QUALITY = 25
"""Lossless WebP effort (Pillow's ``quality`` in lossless mode, 0..100) and ``method`` (0..6): more effort
made files no smaller, on a trained scene (within 0.1 %), for up to 8 times the encoding time."""
WEBP_METHOD = 2


def webp_available() -> bool:
    """Pillow was built with WebP (every wheel on PyPI is)."""
    return bool(features.check("webp"))


# --------------------------------------------------------------------------- k-means


def quantize_1d(values: np.ndarray, k: int = CODEBOOK_SIZE, iterations: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """A codebook of `k` sorted float32 values for `values` and each value's index into it (uint8 when k <= 256).

    Weighted Lloyd k-means over a histogram of at most 4096 bins: the bins are placed by a blend of rank
    and value and weighted so that the centres follow the square root of the values' density (splat-transform
    weights its bins likewise): sparse tails (the largest splats, the most saturated colours) get centres of
    their own rather than all going to the dense middle."""
    flat = np.asarray(values, dtype=np.float32).reshape(-1)
    dtype = np.uint8 if k <= 256 else np.uint16
    if flat.size == 0:
        return np.zeros(k, dtype=np.float32), np.zeros(0, dtype=dtype)
    ordered = np.sort(flat)
    lo, hi = float(ordered[0]), float(ordered[-1])
    if hi - lo < 1e-20:
        return np.full(k, lo, dtype=np.float32), np.zeros(flat.size, dtype=dtype)
    n = ordered.size
    bins = min(4096, n)
    iqr = float(ordered[(3 * n) // 4] - ordered[n // 4])
    beta = min(0.999, max(0.5, 1.0 - iqr / (hi - lo)))
    position = beta * (np.arange(n) / n) + (1.0 - beta) * ((ordered.astype(np.float64) - lo) / (hi - lo))
    index = np.minimum((position * bins).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins).astype(np.float64)
    sums = np.bincount(index, weights=ordered, minlength=bins)
    used = counts > 0
    centres = sums[used] / counts[used]
    # weight = count x density^-1/2 (density = count / the bin's width): the centres then follow the square
    # root of the values' density instead of the density itself, whatever the bins' placement
    spacing = np.diff(centres, prepend=centres[0], append=centres[-1])
    width = np.maximum((spacing[1:] + spacing[:-1]) / 2, (hi - lo) * 1e-9)
    weights = np.sqrt(counts[used] * width)
    if centres.size <= k:
        codebook = np.concatenate([centres, np.full(k - centres.size, centres[-1])])
    else:
        cumulative = np.cumsum(weights)
        targets = (np.arange(k) + 0.5) / k * cumulative[-1]
        codebook = centres[np.minimum(np.searchsorted(cumulative, targets), centres.size - 1)]
        prefix_w = np.concatenate([[0.0], cumulative])
        prefix_wx = np.concatenate([[0.0], np.cumsum(weights * centres)])
        for _ in range(iterations):
            edges = np.searchsorted(centres, (codebook[1:] + codebook[:-1]) / 2)
            starts, ends = np.concatenate([[0], edges]), np.concatenate([edges, [centres.size]])
            w = prefix_w[ends] - prefix_w[starts]
            updated = np.where(w > 0, (prefix_wx[ends] - prefix_wx[starts]) / np.where(w > 0, w, 1), codebook)
            if np.array_equal(updated, codebook):
                break
            codebook = np.sort(updated)
    codebook = np.sort(codebook).astype(np.float32)
    return codebook, nearest_sorted(codebook, flat).astype(dtype)


def nearest_sorted(codebook: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of the nearest entry of the sorted `codebook` for each value."""
    midpoints = (codebook[1:].astype(np.float64) + codebook[:-1]) / 2
    return np.searchsorted(midpoints, values, side="right")


PLUS_PLUS_LIMIT = 16


def palette_size(n: int) -> int:
    """SH palette entries for `n` splats: splat-transform's ``min(64, 2^floor(log2(n / 1024))) * 1024``."""
    if n <= 0:
        return 0
    return int(min(64.0, 2.0 ** math.floor(math.log2(n / 1024))) * 1024)


def _nearest_rows(points: np.ndarray, centroids: np.ndarray, block: int = 16384) -> np.ndarray:
    """Index of the nearest centroid (squared Euclidean) for each row of `points`."""
    c_sq = np.einsum("ij,ij->i", centroids, centroids)
    scaled = np.ascontiguousarray((centroids * np.float32(-2.0)).T)
    labels = np.empty(len(points), dtype=np.int64)
    for start in range(0, len(points), block):
        distance = points[start : start + block] @ scaled  # |c|^2 - 2 p.c: |p - c|^2 less |p|^2
        distance += c_sq
        labels[start : start + block] = np.argmin(distance, axis=1)
    return labels


def _seed(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: each next centre drawn with probability proportional to the squared distance to
    the nearest centre so far (distinct rows while any row is not yet a centre)."""
    centres = np.empty((k, points.shape[1]), dtype=np.float32)
    first = int(rng.integers(len(points)))
    centres[0] = points[first]
    nearest = np.einsum("ij,ij->i", points - centres[0], points - centres[0]).astype(np.float64)
    for i in range(1, k):
        total = nearest.sum()
        pick = int(rng.choice(len(points), p=nearest / total)) if total > 0 else int(rng.integers(len(points)))
        centres[i] = points[pick]
        np.minimum(nearest, np.einsum("ij,ij->i", points - centres[i], points - centres[i]), out=nearest)
    return centres


def _lloyd(points: np.ndarray, k: int, iterations: int, rng: np.random.Generator,
           plus_plus: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """k-means of `points` (n >= k), k-means++ seeded or (faster) from k distinct rows; (centroids, labels)."""
    if plus_plus:
        centroids = _seed(points, k, rng)
    else:
        centroids = points[np.sort(rng.choice(len(points), size=k, replace=False))].astype(np.float32)
    labels = _nearest_rows(points, centroids)
    for _ in range(iterations):
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros((k, points.shape[1]), dtype=np.float64)
        _sum_rows(sums, labels, points)
        filled = counts > 0
        centroids[filled] = (sums[filled] / counts[filled, None]).astype(np.float32)
        if not filled.all():  # an empty centre takes the point farthest from its own
            residual = np.einsum("ij,ij->i", points - centroids[labels], points - centroids[labels])
            far = np.argsort(residual)[::-1][: int((~filled).sum())]
            centroids[~filled] = points[far]
        new = _nearest_rows(points, centroids)
        if np.array_equal(new, labels):
            break
        labels = new
    return centroids, labels


def _sum_rows(sums: np.ndarray, labels: np.ndarray, points: np.ndarray) -> None:
    """``sums[labels[i]] += points[i]`` for every row, by sorting (much faster than ``np.add.at``)."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    sums[sorted_labels[starts]] = np.add.reduceat(points[order].astype(np.float64), starts, axis=0)


def kmeans(points: np.ndarray, k: int, iterations: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`k` centroids (float32, k x D) for the rows of `points` and each row's label (int64).

    Fewer rows than `k`: every row is its own centroid. Otherwise a coarse k-means of ``sqrt(k)`` centres
    (fitted on at most 65,536 rows, then every row assigned), and in each coarse cluster a k-means whose
    number of centres is the cluster's share of `k` (largest remainders), at least one and at most its
    rows. The coarse centres are k-means++ seeded, and so are the fine ones of a cluster given at most
    `PLUS_PLUS_LIMIT`; larger shares start from distinct rows of their cluster (seeding the 65,536 centres of
    a million splats by k-means++, one centre at a time, would take longer than the clustering).
    Deterministic for a given `seed`."""
    points = np.ascontiguousarray(points, dtype=np.float32)
    n = len(points)
    if n <= k:
        return points.copy(), np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    coarse_k = max(1, min(256, int(round(math.sqrt(k)))))
    sample = points if n <= 65536 else points[np.sort(rng.choice(n, size=65536, replace=False))]
    coarse, _ = _lloyd(sample, min(coarse_k, len(sample)), iterations, rng)
    coarse_labels = _nearest_rows(points, coarse)
    sizes = np.bincount(coarse_labels, minlength=len(coarse))
    shares = _allocate(sizes, k)
    order = np.argsort(coarse_labels, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    centroids = np.empty((k, points.shape[1]), dtype=np.float32)
    labels = np.empty(n, dtype=np.int64)
    offset = 0
    for cluster in range(len(coarse)):
        share = int(shares[cluster])
        if share == 0:
            continue
        members = order[bounds[cluster] : bounds[cluster + 1]]
        if share >= len(members):
            found, local = points[members], np.arange(len(members))
        else:
            found, local = _lloyd(points[members], share, iterations, rng, plus_plus=share <= PLUS_PLUS_LIMIT)
        centroids[offset : offset + len(found)] = found
        labels[members] = offset + local
        offset += len(found)
    return centroids[:offset], labels


def _allocate(sizes: np.ndarray, k: int) -> np.ndarray:
    """Split `k` over clusters of `sizes` in proportion (largest remainders): at least 1 for a non-empty
    cluster, at most its size, summing to min(k, sizes.sum())."""
    total = int(sizes.sum())
    k = min(k, total)
    exact = sizes * (k / total)
    shares = np.minimum(np.maximum(np.floor(exact).astype(np.int64), (sizes > 0).astype(np.int64)), sizes)
    remainder = exact - np.floor(exact)
    while shares.sum() != k:
        if shares.sum() < k:
            room = np.where(shares < sizes, remainder + (shares < exact), -np.inf)
            shares[int(np.argmax(room))] += 1
        else:
            excess = np.where(shares > 1, exact - shares, np.inf)
            shares[int(np.argmin(excess))] -= 1
        remainder = np.zeros_like(remainder)
    return shares


# --------------------------------------------------------------------------- encoding


def image_size(n: int) -> tuple[int, int]:
    """(width, height) of the per-splat images for `n` splats (at least 4 x 4)."""
    width = max(4, math.ceil(math.sqrt(n) / 4) * 4)
    height = max(4, math.ceil(n / width / 4) * 4)
    return width, height


def log_transform(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def inverse_log_transform(t: np.ndarray) -> np.ndarray:
    return np.sign(t) * np.expm1(np.abs(t))


def morton_order(positions: np.ndarray) -> np.ndarray:
    """Indexes that sort `positions` along a Z-curve over their bounding box (16 bits per axis)."""
    if len(positions) == 0:
        return np.zeros(0, dtype=np.int64)
    lo = positions.min(axis=0).astype(np.float64)
    extent = positions.max(axis=0).astype(np.float64) - lo
    scale = np.where(extent > 0, 65535.0 / np.where(extent > 0, extent, 1.0), 0.0)
    cells = np.clip(((positions - lo) * scale).astype(np.int64), 0, 65535).astype(np.uint64)
    code = np.zeros(len(positions), dtype=np.uint64)
    for axis in range(3):
        spread = cells[:, axis]
        spread = (spread | (spread << np.uint64(32))) & np.uint64(0x1F00000000FFFF)
        spread = (spread | (spread << np.uint64(16))) & np.uint64(0x1F0000FF0000FF)
        spread = (spread | (spread << np.uint64(8))) & np.uint64(0x100F00F00F00F00F)
        spread = (spread | (spread << np.uint64(4))) & np.uint64(0x10C30C30C30C30C3)
        spread = (spread | (spread << np.uint64(2))) & np.uint64(0x1249249249249249)
        code |= spread << np.uint64(axis)
    return np.argsort(code, kind="stable")


def _to_byte(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _pack_quaternions(rotations: np.ndarray) -> np.ndarray:
    """(N, 4) RGBA bytes of (w, x, y, z) quaternions: smallest three and 252 + the largest's index."""
    q = rotations.astype(np.float64)
    norm = np.linalg.norm(q, axis=1)
    q = np.where(norm[:, None] > 0, q / np.where(norm > 0, norm, 1.0)[:, None], [1.0, 0.0, 0.0, 0.0])
    largest = np.argmax(np.abs(q), axis=1)
    sign = np.where(q[np.arange(len(q)), largest] < 0, -1.0, 1.0)
    others = np.take_along_axis(q, _OTHERS[largest], axis=1) * (sign * SQRT2)[:, None]
    out = np.empty((len(q), 4), dtype=np.uint8)
    out[:, :3] = _to_byte(255.0 * (others * 0.5 + 0.5))
    out[:, 3] = QUAT_TAG + largest
    return out


def _webp(pixels: np.ndarray, width: int, height: int, quality: int, method: int) -> bytes:
    """Lossless WebP of `pixels` (M x 4 bytes, M <= width * height, padded with zeros), exact RGB under
    transparent pixels (an opacity of 0 keeps its colour)."""
    image = np.zeros((width * height, 4), dtype=np.uint8)
    image[: len(pixels)] = pixels
    buffer = io.BytesIO()
    Image.fromarray(image.reshape(height, width, 4), "RGBA").save(
        buffer, format="WEBP", lossless=True, quality=quality, method=method, exact=True
    )
    return buffer.getvalue()


def _json_floats(values: np.ndarray) -> list[float]:
    """JSON numbers for float32 values, each the shortest decimal that reads back as the same float32 (what
    readers keep: splat-transform's are Float32Arrays): 3 codebooks of 256 take 8 kB, not 15."""
    return [float(str(np.float32(v))) for v in values]


def _generator() -> str:
    try:
        return f"SplatStudio {metadata.version('splatstudio')}"
    except metadata.PackageNotFoundError:
        return "SplatStudio"


def encode_sog_files(
    cloud: SplatCloud, *, sh_iterations: int = 6, quality: int = WEBP_QUALITY, method: int = WEBP_METHOD
) -> dict[str, bytes]:
    """The files of a SOG scene of `cloud` (``meta.json`` and the WebP images) by name."""
    if not webp_available():
        raise RuntimeError("this Pillow was built without WebP, which SOG needs")
    cloud.validate()
    n = len(cloud)
    if n > MAX_SPLATS:
        raise ValueError(f"{n} splats is more than the {MAX_SPLATS} SOG files here may hold")
    width, height = image_size(n)
    order = morton_order(cloud.positions)
    files: dict[str, bytes] = {}

    def image(name: str, pixels: np.ndarray, w: int = width, h: int = height) -> None:
        files[name] = _webp(pixels, w, h, quality, method)

    t = log_transform(cloud.positions[order].astype(np.float64))
    mins = t.min(axis=0) if n else np.zeros(3)
    maxs = t.max(axis=0) if n else np.zeros(3)
    extent = maxs - mins
    v = np.where(extent > 0, np.rint(65535.0 * (t - mins) / np.where(extent > 0, extent, 1.0)), 0.0)
    v = np.clip(v, 0, 65535).astype(np.uint16)
    low, high = np.full((n, 4), 255, dtype=np.uint8), np.full((n, 4), 255, dtype=np.uint8)
    low[:, :3], high[:, :3] = v & 0xFF, v >> 8
    image("means_l.webp", low)
    image("means_u.webp", high)
    image("quats.webp", _pack_quaternions(cloud.rotations[order]))

    scale_codebook, scale_labels = quantize_1d(cloud.scales)
    pixels = np.full((n, 4), 255, dtype=np.uint8)
    pixels[:, :3] = scale_labels.reshape(n, 3)[order]
    image("scales.webp", pixels)

    dc_codebook, dc_labels = quantize_1d(cloud.sh_dc)
    pixels = np.empty((n, 4), dtype=np.uint8)
    pixels[:, :3] = dc_labels.reshape(n, 3)[order]
    pixels[:, 3] = _to_byte(sigmoid(cloud.opacities[order]).astype(np.float64) * 255.0)
    image("sh0.webp", pixels)

    meta: dict = {
        "version": META_VERSION,
        "asset": {"generator": _generator()},
        "count": n,
        "means": {"mins": [float(x) for x in mins], "maxs": [float(x) for x in maxs],  # float64: exact bounds
                  "files": ["means_l.webp", "means_u.webp"]},
        "scales": {"codebook": _json_floats(scale_codebook), "files": ["scales.webp"]},
        "quats": {"files": ["quats.webp"]},
        "sh0": {"codebook": _json_floats(dc_codebook), "files": ["sh0.webp"]},
    }
    bands = cloud.sh_degree
    if bands > 0 and n > 0:
        coeffs = SH_COEFFS[bands]
        # one row per splat in f_rest order (channel-major), as splat-transform clusters them
        rest = np.ascontiguousarray(cloud.sh_rest[order].transpose(0, 2, 1).reshape(n, 3 * coeffs))
        centroids, labels = kmeans(rest, palette_size(n), iterations=sh_iterations)
        entries = len(centroids)
        sh_codebook, sh_bytes = quantize_1d(centroids)
        sh_bytes = sh_bytes.reshape(entries, 3, coeffs)
        rows = math.ceil(entries / PALETTE_COLUMNS)
        palette = np.zeros((rows * PALETTE_COLUMNS * coeffs, 4), dtype=np.uint8)
        palette[: entries * coeffs, :3] = sh_bytes.transpose(0, 2, 1).reshape(entries * coeffs, 3)
        palette[: entries * coeffs, 3] = 255
        image("shN_centroids.webp", palette, PALETTE_COLUMNS * coeffs, rows)
        pixels = np.zeros((n, 4), dtype=np.uint8)
        pixels[:, 0], pixels[:, 1], pixels[:, 3] = labels & 0xFF, labels >> 8, 255
        image("shN_labels.webp", pixels)
        meta["shN"] = {"count": entries, "bands": bands, "codebook": _json_floats(sh_codebook),
                       "files": ["shN_centroids.webp", "shN_labels.webp"]}
    files[META_NAME] = json.dumps(meta).encode()
    return files


def encode_sog(cloud: SplatCloud, **options: int) -> bytes:
    """The bytes of a bundled ``.sog``: a zip (stored, the images are compressed already) of the files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in encode_sog_files(cloud, **options).items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


def write_sog(path: PathLike, cloud: SplatCloud, sh_degree: int | None = None) -> None:
    """Write `cloud` as a bundled ``.sog``, atomically (temporary file + ``os.replace``). `sh_degree` drops
    the SH bands above it (it never adds any)."""
    if sh_degree is not None and sh_degree < cloud.sh_degree:
        cloud = cloud.with_sh_degree(sh_degree)
    data = encode_sog(cloud)
    with atomic_open(path) as handle:
        handle.write(data)


def write_sog_folder(meta_path: PathLike, cloud: SplatCloud) -> None:
    """Write the unbundled form: `meta_path` (``…/meta.json``) and the images beside it, each atomically."""
    folder = Path(meta_path).parent
    files = encode_sog_files(cloud)
    meta = files.pop(META_NAME)
    for name, data in files.items():
        with atomic_open(folder / name) as handle:
            handle.write(data)
    with atomic_open(meta_path) as handle:
        handle.write(meta)


# --------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class _Meta:
    count: int
    mins: np.ndarray
    maxs: np.ndarray
    scale_codebook: np.ndarray
    dc_codebook: np.ndarray
    files: dict[str, str]  # role -> file name
    sh_bands: int = 0
    sh_count: int = 0
    sh_codebook: np.ndarray | None = None


def _field(path: PathLike, parent: dict, key: str, where: str) -> object:
    if not isinstance(parent, dict) or key not in parent:
        raise FormatError(path, f"meta.json has no '{where}{key}'")
    return parent[key]


def _numbers(path: PathLike, value: object, length: int, what: str) -> np.ndarray:
    if not isinstance(value, list) or len(value) != length or not all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in value
    ):
        raise FormatError(path, f"meta.json: {what} must be a list of {length} numbers")
    array = np.asarray(value, dtype=np.float64)
    if not np.isfinite(array).all():
        raise FormatError(path, f"meta.json: {what} holds a number that is not finite")
    return array


def _file_names(path: PathLike, section: dict, name: str, count: int) -> list[str]:
    files = _field(path, section, "files", f"{name}.")
    if not isinstance(files, list) or len(files) != count or not all(isinstance(f, str) and f for f in files):
        raise FormatError(path, f"meta.json: {name}.files must list {count} file name(s)")
    for f in files:
        if "/" in f or "\\" in f or f in (".", ".."):
            raise FormatError(path, f"meta.json: {name}.files names '{f}', which is not a file beside meta.json")
    return files


def _parse_meta(path: PathLike, raw: bytes) -> _Meta:
    if len(raw) > MAX_META_BYTES:
        raise FormatError(path, f"meta.json holds {len(raw)} bytes, more than a SOG meta.json has")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(path, "meta.json is not UTF-8 text") from None
    meta = load_json_text(path, text)
    if not isinstance(meta, dict):
        raise FormatError(path, "meta.json is not a JSON object")
    if "version" not in meta:
        raise FormatError(path, "meta.json has no 'version': SOG version 1 is not supported (splat-transform "
                                "converts it to version 2)")
    if meta["version"] != META_VERSION:
        raise FormatError(path, f"unsupported SOG version {meta['version']!r} (this reader handles 2)")
    count = _field(path, meta, "count", "")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise FormatError(path, f"meta.json: count must be a whole number of splats, got {count!r}")
    if count > MAX_SPLATS:
        raise FormatError(path, f"meta.json claims {count} splats, more than the {MAX_SPLATS} this reader accepts")
    means = _field(path, meta, "means", "")
    files = {}
    files["means_l"], files["means_u"] = _file_names(path, means, "means", 2)
    mins = _numbers(path, _field(path, means, "mins", "means."), 3, "means.mins")
    maxs = _numbers(path, _field(path, means, "maxs", "means."), 3, "means.maxs")
    scales = _field(path, meta, "scales", "")
    (files["scales"],) = _file_names(path, scales, "scales", 1)
    scale_codebook = _numbers(path, _field(path, scales, "codebook", "scales."), CODEBOOK_SIZE, "scales.codebook")
    (files["quats"],) = _file_names(path, _field(path, meta, "quats", ""), "quats", 1)
    sh0 = _field(path, meta, "sh0", "")
    (files["sh0"],) = _file_names(path, sh0, "sh0", 1)
    dc_codebook = _numbers(path, _field(path, sh0, "codebook", "sh0."), CODEBOOK_SIZE, "sh0.codebook")
    result = _Meta(count, mins, maxs, scale_codebook, dc_codebook, files)
    shn = meta.get("shN")
    if shn is None:
        return result
    bands = _field(path, shn, "bands", "shN.")
    entries = _field(path, shn, "count", "shN.")
    if bands not in (0, 1, 2, 3) or isinstance(bands, bool):
        raise FormatError(path, f"meta.json: shN.bands must be 0..3, got {bands!r}")
    if not isinstance(entries, int) or isinstance(entries, bool) or not 0 <= entries <= 65536:
        raise FormatError(path, f"meta.json: shN.count must be 0..65536 palette entries, got {entries!r}")
    if bands == 0:
        return result
    files["shN_centroids"], files["shN_labels"] = _file_names(path, shn, "shN", 2)
    sh_codebook = _numbers(path, _field(path, shn, "codebook", "shN."), CODEBOOK_SIZE, "shN.codebook")
    return _Meta(count, mins, maxs, scale_codebook, dc_codebook, files, bands, entries, sh_codebook)


def _decode_image(path: PathLike, name: str, data: bytes, min_pixels: int, max_pixels: int,
                  width: int | None = None) -> np.ndarray:
    """The RGBA pixels (H x W x 4) of image `name`, its size checked from the header before decoding."""
    try:
        image = Image.open(io.BytesIO(data), formats=["WEBP"])
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise FormatError(path, f"{name} is not a WebP image ({exc})") from None
    w, h = image.size
    if width is not None and w != width:
        raise FormatError(path, f"{name} is {w} pixels wide; it must be {width}")
    if not (min_pixels <= w * h <= max_pixels) or w > MAX_IMAGE_SIDE or h > MAX_IMAGE_SIDE:
        raise FormatError(path, f"{name} is {w}x{h} pixels; the scene needs {min_pixels} to {max_pixels}")
    try:
        return np.asarray(image.convert("RGBA"))
    except (OSError, ValueError, SyntaxError) as exc:
        raise FormatError(path, f"{name}: corrupt WebP image ({exc})") from None


def _max_pixels(count: int) -> int:
    width, height = image_size(count)
    return max(4 * count, width * height) + 65536


def decode_sog_files(path: PathLike, fetch: Callable[[str, int], bytes]) -> SplatCloud:
    """Decode a SOG scene whose files `fetch(name, most_bytes)` returns (at most that many bytes, or one more
    to show that the file is larger); problems raise `FormatError` naming `path`."""
    meta = _parse_meta(path, fetch(META_NAME, MAX_META_BYTES + 1))
    n = meta.count
    most_pixels = _max_pixels(n)
    images: dict[str, np.ndarray] = {}
    shape = None
    for role in ("means_l", "means_u", "quats", "scales", "sh0") + (("shN_labels",) if meta.sh_bands else ()):
        name = meta.files[role]
        data = fetch(name, 8 * most_pixels + (1 << 16))
        pixels = _decode_image(path, name, data, n, most_pixels)
        if shape is None:
            shape = pixels.shape
        elif pixels.shape != shape:
            raise FormatError(path, f"{name} is {pixels.shape[1]}x{pixels.shape[0]} pixels; the other images "
                                    f"are {shape[1]}x{shape[0]}")
        images[role] = pixels.reshape(-1, 4)[:n]

    lo, hi = images["means_l"][:, :3].astype(np.uint32), images["means_u"][:, :3].astype(np.uint32)
    v = (lo | (hi << 8)).astype(np.float64)
    extent = np.where(meta.maxs - meta.mins != 0, meta.maxs - meta.mins, 1.0)
    positions = inverse_log_transform(meta.mins + extent * (v / 65535.0))

    quats = images["quats"]
    tags = quats[:, 3].astype(np.intp) - QUAT_TAG
    bad = (tags < 0) | (tags > 3)
    if bad.any():
        raise FormatError(path, f"{int(bad.sum())} of {n} splats have a quaternion tag outside 252..255 in "
                                f"{meta.files['quats']} (first at splat {int(np.argmax(bad))})")
    others = (quats[:, :3].astype(np.float64) / 255.0 * 2.0 - 1.0) / SQRT2
    rotations = np.empty((n, 4), dtype=np.float64)
    np.put_along_axis(rotations, _OTHERS[tags], others, axis=1)
    largest = np.sqrt(np.maximum(0.0, 1.0 - np.einsum("ij,ij->i", others, others)))
    np.put_along_axis(rotations, tags[:, None], largest[:, None], axis=1)

    scales = meta.scale_codebook[images["scales"][:, :3]]
    sh0 = images["sh0"]
    sh_dc = meta.dc_codebook[sh0[:, :3]]
    byte = np.arange(256, dtype=np.float64) / 255.0
    opacities = logit(np.clip(byte, _OPACITY_EPS, 1.0 - _OPACITY_EPS))[sh0[:, 3]]

    sh_rest = np.zeros((n, 0, 3), dtype=np.float32)
    if meta.sh_bands:
        coeffs = SH_COEFFS[meta.sh_bands]
        name = meta.files["shN_centroids"]
        rows = max(1, math.ceil(meta.sh_count / PALETTE_COLUMNS))
        palette = _decode_image(path, name, fetch(name, 8 * rows * PALETTE_COLUMNS * coeffs + (1 << 16)),
                                meta.sh_count * coeffs, rows * PALETTE_COLUMNS * coeffs, PALETTE_COLUMNS * coeffs)
        labels = images["shN_labels"][:, 0].astype(np.int64) | (images["shN_labels"][:, 1].astype(np.int64) << 8)
        beyond = labels >= meta.sh_count
        if beyond.any():
            raise FormatError(path, f"{int(beyond.sum())} of {n} splats point past the {meta.sh_count} entries of "
                                    f"the SH palette (first at splat {int(np.argmax(beyond))})")
        entries = palette.reshape(-1, 4)[: meta.sh_count * coeffs, :3].reshape(meta.sh_count, coeffs, 3)
        sh_rest = meta.sh_codebook.astype(np.float32)[entries][labels]  # (n, coeffs, 3), channel last

    cloud = SplatCloud(positions=positions, scales=scales, rotations=rotations, opacities=opacities,
                       sh_dc=sh_dc, sh_rest=sh_rest)
    if not np.isfinite(cloud.positions).all():
        raise FormatError(path, "decoding produced positions that are not finite (means.mins/maxs too large)")
    return cloud


@reports_out_of_memory
def read_sog(path: PathLike) -> SplatCloud:
    """Read a bundled ``.sog`` (a zip) or the ``meta.json`` of an unbundled scene, its images beside it."""
    path = Path(path)
    if path.name.lower() == META_NAME:
        folder = path.parent

        def fetch_file(name: str, most: int) -> bytes:
            target = path if name == META_NAME else folder / name
            try:
                with open(target, "rb") as handle:
                    return handle.read(most)
            except FileNotFoundError:
                raise FormatError(path, f"{name}, which meta.json names, is not in {folder}") from None

        return decode_sog_files(path, fetch_file)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        with open(path, "rb") as handle:
            start = handle.read(4)
        if not start:
            raise FormatError(path, "empty file") from None
        raise FormatError(path, f"not a SOG bundle: a .sog is a zip archive, this file starts with {start!r}") from None
    with archive:
        members = {info.filename: info for info in archive.infolist()}

        def fetch_member(name: str, most: int) -> bytes:
            info = members.get(name)
            if info is None:
                raise FormatError(path, f"the archive holds no {name}")
            if info.file_size > most:
                raise FormatError(path, f"{name} holds {info.file_size} bytes, more than the scene can need")
            try:
                with archive.open(info) as handle:
                    data = handle.read(most + 1)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise FormatError(path, f"{name}: corrupt archive member ({exc})") from None
            except NotImplementedError as exc:  # zipfile's word for a compression method it cannot read
                raise FormatError(path, f"{name} is compressed in a way this reader does not know ({exc})") from None
            if len(data) > most:
                raise FormatError(path, f"{name} holds more than the {info.file_size} bytes the archive states")
            return data

        return decode_sog_files(path, fetch_member)
