"""Niantic's compressed ``.spz`` Gaussian-splat format: read versions 2, 3 and 4, write 3 and 4.

Everything below follows the reference implementation ``nianticlabs/spz``: ``src/cc/load-spz.cc``,
``src/cc/splat-utils.h`` and ``include/spz/splat-types.h`` as of commit ``49df0b19ba6e`` (the stored
version that writes the version-4 container; ``splat-types.h`` read at ``8d13ea8c7184``), checked
against the gzip-only ``load-spz.cc`` of commits ``031fd0431182`` and ``95ab5a98bc40`` and the
``README.md`` (``047aae65d6d2``). All integers are little endian.

Containers
----------

**Versions 2 and 3** are one gzip stream (deflate, default level, as ``compressGzipped``) holding a
16-byte header followed by the attribute arrays back to back:

====== ========= ===============================================================
bytes  type      field
====== ========= ===============================================================
0-3    uint32    magic ``0x5053474e`` (the bytes ``NGSP``)
4-7    uint32    version: 2 or 3 (like the reference reader, this one also takes 4 here)
8-11   uint32    number of points N
12     uint8     SH degree 0..4
13     uint8     fractional bits of the fixed-point positions (12 from the reference writer)
14     uint8     flags: 0x1 antialiased (mip-splatting), 0x2 has extensions
15     uint8     reserved, 0
====== ========= ===============================================================

**Version 4** is not compressed as a whole: a 32-byte plain header (``NgspFileHeader``), an optional
extension block, a table of contents and one zstd frame per non-empty attribute array:

====== ========= ===============================================================
bytes  type      field
====== ========= ===============================================================
0-3    uint32    magic ``0x5053474e`` (``NGSP``)
4-7    uint32    version: 4
8-11   uint32    number of points N
12     uint8     SH degree 0..4
13     uint8     fractional bits
14     uint8     flags (as above)
15     uint8     number of streams S: the non-empty arrays (6, or 5 without SH, 0 when N = 0)
16-19  uint32    TOC byte offset T (32 + size of the extension block)
20-31  12 bytes  reserved, 0
32-T             extension records ``[u32 type][u32 length][payload]`` (flag 0x2)
T-...  S x 16    TOC: per stream uint64 compressed size, uint64 uncompressed size
...              the S zstd streams (level 12 in the reference), back to back, to the end of file
====== ========= ===============================================================

Attribute arrays (their order in both containers; stored "structure of arrays", N records each)
------------------------------------------------------------------------------------------------

============ ============== =====================================================================
array        bytes/point    encoding (in the stored frame, see Coordinates)
============ ============== =====================================================================
positions    9              x, y, z as 24-bit two's complement fixed point, ``round(p * 2^fb)``
alphas       1              ``round(sigmoid(opacity) * 255)``
colors       3              SH DC per channel, ``round(dc * 0.15 * 255 + 127.5)``
scales       3              log scale, ``round((log_scale + 10) * 16)``
rotations    3 (v2) / 4     v2: x, y, z of the unit quaternion with w >= 0, ``round(q * 127.5 + 127.5)``;
                            v3+: "smallest three" in a uint32: bits 30-31 index (x, y, z, w order)
                            of the largest component, made positive; the other three in index order
                            from bits 20-29 down to 0-9, each a sign bit (bit 9) and a 9-bit
                            magnitude ``trunc(511 * |q_i| / sqrt(1/2) + 0.5)``
sh           3 x K          K = 0, 3, 8, 15, 24 coefficients for degree 0..4, coefficient-major
                            with the channel fastest (``sh1n1_r, sh1n1_g, sh1n1_b, sh10_r``...):
                            ``q = round(x * 128) + 128`` rounded to a multiple of the bucket size
                            (8 for the degree-1 coefficients, 16 for degree 2 and up: 5 and 4 bits)
                            and clamped to 0..255; read back as ``(b - 128) / 128``
============ ============== =====================================================================

``round`` rounds half away from zero and every result is clamped to 0..255 (``toUint8``). Reading
inverts these: ``b / 16 - 10``, ``(b / 255 - 0.5) / 0.15``, ``logit(b / 255)`` and so on, with the
reconstructed quaternion component ``sqrt(max(0, 1 - sum of the others squared))``.

Coordinates
-----------
The header has no field for the coordinate frame. The reference README calls SPZ's internal frame RUB
(x right, y up, z back: OpenGL / three.js), but the reference converts only when the caller names a
frame: ``PackOptions::from`` and ``UnpackOptions::to`` default to ``CoordinateSystem::UNSPECIFIED``,
which stores and loads the values as they are. Its own ``ply_to_spz`` and ``spz_to_ply`` tools, its
Python helpers (``spz_file_ops.py``), PlayCanvas's ``splat-transform`` (``makeSpzPackOptions``: "data is
baked to PLY/RDF space before saving and written with ``from: UNSPECIFIED``"; its reader "decodes raw")
and Spark's reader all leave the frame alone, so SPZ files in circulation hold the PLY's own RDF frame
(x right, y down, z forward: COLMAP, `SplatCloud`). This module does the same by default
(``rub=False``): a PLY -> SPZ -> PLY trip through any of those tools gives the same scene.

``rub=True`` converts RDF <-> RUB as the reference's ``CoordinateConverter`` does when asked (``from =
RDF``, ``to = RUB``): a 180 degree turn about x, its own inverse, so the same tables serve both ways:
positions times (1, -1, -1); quaternion x, y, z times (1, -1, -1), w unchanged; SH coefficient k times
``FLIP_SH[k]``, the sign each basis function takes when y and z change sign (degree 1 in the order y, z,
x: -, -, +; degree 2 xy, yz, 3zz-1, xz, xx-yy: -, +, +, -, +; the table is the reference's
``flipSh``). It reads files made with an explicit RUB conversion, such as those SplatStudio wrote before
it followed the tools above (they show upside down and mirrored front to back when read as RDF).

Decisions where the reference leaves a choice
---------------------------------------------
* Writing uses 12 fractional bits, as the reference, whenever the scene fits (|coordinate| < 2048);
  otherwise the largest count that fits, down to 0 (|coordinate| < 8388607.5). The header records it
  and every reader honours it. A scene with a coordinate beyond that is refused with a `FormatError`
  counting the splats outside; the reference would wrap such coordinates around silently.
* Values beyond what a byte field holds are clamped to it, as the reference does, even those whose
  scaled value overflows float32 (a log scale of 1e38).
* Zero quaternions are written as the identity (the reference would write NaN), and quaternions so
  small or large that float32 normalisation fails are normalised in float64.
* Alpha bytes 0 and 255 read back as ``logit(1e-8)`` and ``logit(1 - 1e-8)`` (about -18.4 and 18.4,
  which the float32 sigmoid maps to exactly 0 and 1) instead of the reference's infinities.
* SH degree 4 files are read with degree 4 dropped (`SplatCloud` holds degree 0..3); bands 1..3 are
  stored first, so they are unaffected.
* Extensions are skipped, as in a reference build without ``SPZ_BUILD_EXTENSIONS``: in version 4 the
  block before the TOC; in the gzip container up to 1 MiB after the attribute arrays when flag 0x2 is
  set (where ``49df0b19`` writes them; older reference builds such as ``031fd043`` wrote them before
  the arrays, and such files cannot be told apart and are rejected or misread).
* Empty clouds are written and read (N = 0, no streams), although the reference loader refuses them.
* Version 1 (float16 positions, never released) is refused.

Readers check before they allocate: N at most `MAX_POINTS`; N no larger than the compressed size
allows (version 4: the reference's own bound, size x 1024 / 9; gzip: deflate cannot expand more than
1032-fold); beyond `SMALL_CLOUD` splats, N no larger than the file's size in bytes (`plausible_points`:
a bomb of repeated bytes passes the bounds before, truthfully, and its decoded cloud would take
thousands of times the file's size in memory); the 16-byte gzip header is inflated alone, then
exactly the bytes the header calls for (plus one, to detect extra data) with ``max_length``; every
zstd stream must declare the exact size its attribute needs and is read incrementally into a buffer
of that size. Any inconsistency, a
truncated or corrupt stream, trailing data or a bad field raises `FormatError` naming the file.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import zstandard

from splatstudio.io.errors import FormatError, reports_out_of_memory
from splatstudio.io.ply import PathLike
from splatstudio.model.atomic import atomic_open
from splatstudio.model.splatcloud import SplatCloud, all_finite, logit, sh_rest_count, sigmoid

MAGIC = 0x5053474E
MAGIC_BYTES = b"NGSP"
GZIP_MAGIC = b"\x1f\x8b"
LEGACY_HEADER = struct.Struct("<IIIBBBB")  # 16 bytes, inside the gzip stream (versions 1-3)
NGSP_HEADER = struct.Struct("<IIIBBBBI12s")  # 32 bytes, plain (version 4)
TOC_ENTRY = struct.Struct("<QQ")  # compressed size, uncompressed size

READ_VERSIONS = (2, 3, 4)
WRITE_VERSIONS = (3, 4)
FIRST_NGSP_VERSION = 4  # MIN_ZSTD_SPZ_HEADER_VERSION
FIRST_SMALLEST_THREE_VERSION = 3  # MIN_SMALLEST_THREE_QUATERNIONS_VERSION

FLAG_ANTIALIASED = 0x1
FLAG_HAS_EXTENSIONS = 0x2

SPZ_MAX_SH_DEGREE = 4
SPZ_SH_DIMS = (0, 3, 8, 15, 24)  # coefficients per channel (without DC) for degree 0..4
DEFAULT_FRACTIONAL_BITS = 12
MAX_FRACTIONAL_BITS = 24
SH1_BITS = 5  # DEFAULT_SH1_BITS
SH_REST_BITS = 4  # DEFAULT_SH_REST_BITS
ZSTD_LEVEL = 12  # compressZstd default
GZIP_LEVEL = 6  # Z_DEFAULT_COMPRESSION

MAX_POINTS = 30_000_000
"""Largest point count accepted from a header (about 2.4 GB of attributes at SH degree 3)."""
ZSTD_MAX_RATIO = 1024  # kMaxCompressionRatio of the reference
MIN_BYTES_PER_POINT = 9  # kMinBytesPerPoint: the positions stream alone
DEFLATE_MAX_RATIO = 1032  # deflate cannot expand data more than this
MIN_REAL_BYTES_PER_POINT = 1
"""Compressed bytes a real splat takes at the least. Real scenes take several: positions, rotations and
colours of distinct splats barely compress. Only repeated values (a bomb) get below one byte."""
SMALL_CLOUD = 1 << 18
"""Splats a file may declare whatever its size: synthetic scenes of repeated values legitimately compress
far better than real ones, and a cloud this small decodes in modest memory (figures in NOTES.md)."""
MAX_EXTENSION_BYTES = 1 << 20  # extension records tolerated after the arrays of a gzip stream
MAX_FILE_BYTES = 4 << 30

COLOR_SCALE = np.float32(0.15)
SQRT1_2 = np.float32(0.707106781186547524401)
_INT24_MAX = (1 << 23) - 1
MAX_COORDINATE = _INT24_MAX + 0.5
"""Coordinates of smaller magnitude fit the 24-bit fixed-point positions (with 0 fractional bits)."""
_ALPHA_EPS = 1e-8

# RDF (PLY) <-> RUB (the README's frame): x keeps its sign, y and z flip (coordinateConverter in splat-types.h).
_X, _Y, _Z = 1.0, -1.0, -1.0
FLIP_P = np.array([_X, _Y, _Z], dtype=np.float32)
FLIP_Q = np.array([_Y * _Z, _X * _Z, _X * _Y], dtype=np.float32)  # quaternion x, y, z; w never flips
FLIP_SH = np.array(
    [
        _Y, _Z, _X,  # degree 1: y, z, x
        _X * _Y, _Y * _Z, 1.0, _X * _Z, 1.0,  # degree 2: xy, yz, 2zz-xx-yy, xz, xx-yy
        _Y, _X * _Y * _Z, _Y, _Z, _X, _Z, _X,  # degree 3
        _X * _Y, _Y * _Z, _X * _Y, _Y * _Z, 1.0, _X * _Z, 1.0, _X * _Z, _Y,  # degree 4
    ],
    dtype=np.float32,
)  # fmt: skip

_KEEP_P = np.ones(3, dtype=np.float32)
_KEEP_Q = np.ones(3, dtype=np.float32)
_KEEP_SH = np.ones(len(FLIP_SH), dtype=np.float32)


def _signs(rub: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Position, quaternion (x, y, z) and SH coefficient signs between `SplatCloud` and the stored frame."""
    return (FLIP_P, FLIP_Q, FLIP_SH) if rub else (_KEEP_P, _KEEP_Q, _KEEP_SH)


ATTRIBUTES = ("positions", "alphas", "colors", "scales", "rotations", "sh")
"""Order of the attribute arrays in both containers (``kAllSplatAttributes``)."""

# Smallest three: for each largest index, the other three in increasing order.
_OTHERS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]], dtype=np.intp)


@dataclass(frozen=True)
class SpzHeader:
    """The header fields of an ``.spz`` file; `container` is ``"gzip"`` (versions 2-3) or ``"ngsp"`` (4)."""

    version: int
    num_points: int
    sh_degree: int
    fractional_bits: int
    flags: int
    container: str

    @property
    def antialiased(self) -> bool:
        """The scene was trained with antialiasing (mip-splatting) and should be rendered so."""
        return bool(self.flags & FLAG_ANTIALIASED)

    @property
    def has_extensions(self) -> bool:
        return bool(self.flags & FLAG_HAS_EXTENSIONS)

    @property
    def sh_dim(self) -> int:
        """SH coefficients per channel, without DC."""
        return SPZ_SH_DIMS[self.sh_degree]

    def attribute_sizes(self) -> list[tuple[str, int]]:
        """Byte size of each attribute array, in file order (including empty ones)."""
        n = self.num_points
        rotation_bytes = 4 if self.version >= FIRST_SMALLEST_THREE_VERSION else 3
        sizes = (9 * n, n, 3 * n, 3 * n, rotation_bytes * n, 3 * self.sh_dim * n)
        return list(zip(ATTRIBUTES, sizes, strict=True))


# --------------------------------------------------------------------------- encoding


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """``std::round`` elementwise (ties away from zero), exact in the input's own precision."""
    rounded = np.rint(x)  # ties to even; only exact ties can differ
    tie = np.abs(x - rounded) == 0.5
    if tie.any():
        rounded[tie] = x[tie] + np.copysign(0.5, x[tie]).astype(x.dtype)
    return rounded


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """``toUint8``: round half away from zero and clamp to 0..255."""
    return np.clip(_round_half_away(x), 0, 255).astype(np.uint8)


def choose_fractional_bits(positions: np.ndarray, name: PathLike = "<memory>") -> int:
    """12 (the reference's choice) if every coordinate fits 24 bits with it, else the most that fit; a
    `FormatError` naming `name` (the file to write) if some coordinate fits with none."""
    if positions.size == 0:
        return DEFAULT_FRACTIONAL_BITS
    largest = float(np.abs(positions).max())
    for bits in range(DEFAULT_FRACTIONAL_BITS, -1, -1):
        if math.floor(largest * 2.0**bits + 0.5) <= _INT24_MAX:
            return bits
    outside = int((np.abs(positions) >= MAX_COORDINATE).any(axis=1).sum())
    raise FormatError(
        name,
        f"{outside} of {len(positions)} splats have a coordinate that does not fit the 24-bit SPZ position: SPZ "
        f"holds coordinates of magnitude below {MAX_COORDINATE:.1f} (the largest here is {largest:g}); "
        "PLY and .splat hold any",
    )


def _pack_positions(positions: np.ndarray, bits: int, flip: np.ndarray) -> np.ndarray:
    fixed = _round_half_away(positions * np.float32(2.0**bits) * flip).astype("<i4")
    return np.ascontiguousarray(fixed.reshape(-1, 1).view(np.uint8)[:, :3]).reshape(-1)


def _pack_rotations_smallest_three(quaternions: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """``packQuaternionSmallestThree`` for unit (w, x, y, z) quaternions, x, y, z times `flip`."""
    q = np.ascontiguousarray(quaternions[:, [1, 2, 3, 0]], dtype=np.float32)  # x, y, z, w
    q[:, :3] *= flip
    largest = np.argmax(np.abs(q), axis=1)  # first of equal magnitudes, like the reference loop
    negate = np.take_along_axis(q, largest[:, None], axis=1)[:, 0] < 0
    others = np.take_along_axis(q, _OTHERS[largest], axis=1)
    magnitude = (np.float32(511.0) * (np.abs(others) / SQRT1_2) + np.float32(0.5)).astype(np.uint32)
    sign = ((others < 0) ^ negate[:, None]).astype(np.uint32)
    fields = (sign << 9) | np.minimum(magnitude, 511)
    comp = (largest.astype(np.uint32) << 30) | (fields[:, 0] << 20) | (fields[:, 1] << 10) | fields[:, 2]
    return comp.astype("<u4").view(np.uint8)


def _bucket_table(bits: int) -> np.ndarray:
    """Byte -> byte rounded to the nearest multiple of the bucket size ``2^(8 - bits)`` (ties up), max 255."""
    bucket = 1 << (8 - bits)
    q = np.arange(256)
    return np.minimum((q + bucket // 2) // bucket * bucket, 255).astype(np.uint8)


def _pack_sh(sh_rest: np.ndarray, sh1_bits: int, sh_rest_bits: int, flip: np.ndarray) -> np.ndarray:
    """``quantizeSH`` of (N, K, 3) coefficients, coefficient k times ``flip[k]``, into N * K * 3 bytes."""
    n, k, _ = sh_rest.shape
    out = np.empty((n, k, 3), dtype=np.uint8)
    scale = (flip[:k] * np.float32(128.0))[:, None]  # exact: a power of two with a sign
    tables = (_bucket_table(sh1_bits), _bucket_table(sh_rest_bits))
    step = max(1, (1 << 22) // max(1, 3 * k))  # bounded temporaries for large clouds
    for start in range(0, n, step):
        q = _round_half_away(sh_rest[start : start + step] * scale)
        q += np.float32(128.0)
        q = np.clip(q, 0, 255, out=q).astype(np.uint8)
        out[start : start + step, :3] = tables[0][q[:, :3]]  # degree 1: sh1_bits
        out[start : start + step, 3:] = tables[1][q[:, 3:]]  # degree 2 and up: sh_rest_bits
    return out.reshape(-1)


def _normalized_rotations(cloud: SplatCloud) -> np.ndarray:
    """Unit (w, x, y, z) quaternions computed in float32 as the reference's ``normalized`` does (same
    sum order, x y z w), so that the packed bytes match it; zero, tiny or huge quaternions, where
    float32 would give NaN or lose precision, are taken from `SplatCloud.normalized_rotations`
    (float64, zero becomes the identity)."""
    q = cloud.rotations
    with np.errstate(all="ignore"):  # the rows where this fails are replaced below
        squared = q[:, 1] * q[:, 1] + q[:, 2] * q[:, 2] + q[:, 3] * q[:, 3] + q[:, 0] * q[:, 0]
        unit = q / np.sqrt(squared)[:, None]
    awkward = ~((squared >= 1e-30) & np.isfinite(squared))
    if awkward.any():
        unit[awkward] = cloud.subset(awkward).normalized_rotations()
    return unit


def pack_attributes(
    cloud: SplatCloud,
    version: int = 4,
    *,
    sh1_bits: int = SH1_BITS,
    sh_rest_bits: int = SH_REST_BITS,
    fractional_bits: int | None = None,
    name: PathLike = "<memory>",
    rub: bool = False,
) -> tuple[int, list[np.ndarray]]:
    """Quantise a validated `cloud`: returns (fractional bits, the six uint8 arrays in `ATTRIBUTES` order).
    `name` is the file being written, named in the error for coordinates SPZ cannot hold; `rub` converts
    to RUB (see Coordinates)."""
    flip_p, flip_q, flip_sh = _signs(rub)
    if not (1 <= sh1_bits <= 8 and 1 <= sh_rest_bits <= 8):
        raise ValueError(f"SH quantisation bits must be 1..8, got {sh1_bits} and {sh_rest_bits}")
    bits = choose_fractional_bits(cloud.positions, name) if fractional_bits is None else int(fractional_bits)
    if not 0 <= bits <= MAX_FRACTIONAL_BITS:
        raise ValueError(f"fractional bits must be 0..{MAX_FRACTIONAL_BITS}, got {bits}")
    if len(cloud) and math.floor(float(np.abs(cloud.positions).max()) * 2.0**bits + 0.5) > _INT24_MAX:
        raise ValueError(f"positions do not fit 24 bits with {bits} fractional bits")
    positions = _pack_positions(cloud.positions, bits, flip_p)
    alphas = _to_uint8(sigmoid(cloud.opacities) * np.float32(255.0))
    # a finite value that overflows float32 once scaled becomes +-inf, which the byte's clamp takes to 0 or
    # 255 as it does any value beyond the field's range (`_round_half_away`'s tie test sees inf - inf, a NaN
    # that is no tie)
    with np.errstate(over="ignore", invalid="ignore"):
        colors = _to_uint8(cloud.sh_dc * (COLOR_SCALE * np.float32(255.0)) + np.float32(0.5 * 255.0)).reshape(-1)
        scales = _to_uint8((cloud.scales + np.float32(10.0)) * np.float32(16.0)).reshape(-1)
        sh = _pack_sh(cloud.sh_rest, sh1_bits, sh_rest_bits, flip_sh)
    unit = _normalized_rotations(cloud)
    if version >= FIRST_SMALLEST_THREE_VERSION:
        rotations = _pack_rotations_smallest_three(unit, flip_q)
    else:  # packQuaternionFirstThree: x, y, z with w made non-negative
        xyzw = unit[:, [1, 2, 3, 0]]
        xyzw[:, :3] *= flip_q
        xyzw *= np.where(xyzw[:, 3:] < 0, np.float32(-127.5), np.float32(127.5))
        rotations = _to_uint8(xyzw[:, :3] + np.float32(127.5)).reshape(-1)
    return bits, [positions, alphas, colors, scales, rotations, sh]


def encode_spz(
    cloud: SplatCloud,
    version: int = 4,
    sh_degree: int | None = None,
    *,
    antialiased: bool = False,
    sh1_bits: int = SH1_BITS,
    sh_rest_bits: int = SH_REST_BITS,
    level: int | None = None,
    name: PathLike = "<memory>",
    rub: bool = False,
) -> bytes:
    """Encode `cloud` as a version 3 (gzip) or 4 (NGSP + zstd) ``.spz`` file and return its bytes.

    `sh_degree` drops the SH bands above it (it never adds any); `level` is the zstd (v4, default 12)
    or deflate (v3, default 6) compression level; `rub` stores the scene turned to RUB instead of in
    its own frame (see Coordinates). Invalid clouds raise `ValueError`; a coordinate SPZ cannot hold, a
    `FormatError` naming `name`.
    """
    if version not in WRITE_VERSIONS:
        raise ValueError(f"SPZ version {version} cannot be written; choose one of {WRITE_VERSIONS}")
    cloud.validate()
    if sh_degree is not None:
        if sh_degree not in range(4):
            raise ValueError(f"SH degree must be 0..3, got {sh_degree}")
        if sh_degree < cloud.sh_degree:
            cloud = SplatCloud(
                positions=cloud.positions,
                scales=cloud.scales,
                rotations=cloud.rotations,
                opacities=cloud.opacities,
                sh_dc=cloud.sh_dc,
                sh_rest=cloud.sh_rest[:, : sh_rest_count(sh_degree)],
            )
    bits, arrays = pack_attributes(cloud, version, sh1_bits=sh1_bits, sh_rest_bits=sh_rest_bits, name=name, rub=rub)
    n, degree = len(cloud), cloud.sh_degree
    flags = FLAG_ANTIALIASED if antialiased else 0
    if version >= FIRST_NGSP_VERSION:
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL if level is None else level)
        raw = [a for a in arrays if a.size]
        chunks = [compressor.compress(a) for a in raw]
        header = NGSP_HEADER.pack(MAGIC, version, n, degree, bits, flags, len(chunks), NGSP_HEADER.size, bytes(12))
        toc = b"".join(TOC_ENTRY.pack(len(c), a.size) for c, a in zip(chunks, raw, strict=True))
        return b"".join([header, toc, *chunks])
    deflate = zlib.compressobj(GZIP_LEVEL if level is None else level, zlib.DEFLATED, 16 + zlib.MAX_WBITS, 9)
    parts = [deflate.compress(LEGACY_HEADER.pack(MAGIC, version, n, degree, bits, flags, 0))]
    parts += [deflate.compress(a) for a in arrays]
    parts.append(deflate.flush())
    return b"".join(parts)


def write_spz(
    path: PathLike,
    cloud: SplatCloud,
    version: int = 4,
    sh_degree: int | None = None,
    *,
    antialiased: bool = False,
    level: int | None = None,
    rub: bool = False,
) -> None:
    """Write `cloud` as ``.spz`` (version 4 by default, or 3), atomically (temporary file + ``os.replace``).

    `level` is the compression level (the reference's zstd 12 / deflate 6 by default); zstd level 3
    writes about five times faster for files about 3 % larger. Readers do not depend on it. `rub`: see
    Coordinates (off: the scene's own frame, as other tools write).
    """
    data = encode_spz(
        cloud, version=version, sh_degree=sh_degree, antialiased=antialiased, level=level, name=path, rub=rub
    )
    with atomic_open(path) as handle:
        handle.write(data)


# --------------------------------------------------------------------------- decoding


def _check_header(path: PathLike, header: SpzHeader, compressed_size: int) -> None:
    """Validate the fixed fields and bound N by `MAX_POINTS` and by what the file could hold."""
    if header.version == 1:
        raise FormatError(path, "SPZ version 1 (float16 positions, never released) is not supported")
    if header.version not in READ_VERSIONS:
        raise FormatError(path, f"unsupported SPZ version {header.version} (this reader handles 2, 3 and 4)")
    if header.container == "ngsp" and header.version < FIRST_NGSP_VERSION:
        raise FormatError(path, f"version {header.version} in an NGSP (version 4) container")
    if header.sh_degree > SPZ_MAX_SH_DEGREE:
        raise FormatError(path, f"SH degree {header.sh_degree} in the header; SPZ allows 0..{SPZ_MAX_SH_DEGREE}")
    if header.fractional_bits > MAX_FRACTIONAL_BITS:
        raise FormatError(
            path, f"{header.fractional_bits} fractional position bits in the header; at most {MAX_FRACTIONAL_BITS}"
        )
    n = header.num_points
    if n > MAX_POINTS:
        raise FormatError(path, f"header claims {n} splats, more than the {MAX_POINTS} this reader accepts")
    if header.container == "ngsp":
        limit = compressed_size * ZSTD_MAX_RATIO // MIN_BYTES_PER_POINT
        if n > limit:
            raise FormatError(path, f"header claims {n} splats but a {compressed_size}-byte file holds at most {limit}")
    else:
        body = LEGACY_HEADER.size + sum(size for _, size in header.attribute_sizes())
        if body > compressed_size * DEFLATE_MAX_RATIO:
            raise FormatError(
                path,
                f"header claims {n} splats ({body} bytes) but {compressed_size} bytes of gzip cannot hold that much",
            )
    if n > plausible_points(compressed_size):
        raise FormatError(
            path,
            f"header claims {n} splats but the file has only {compressed_size} bytes: real SPZ scenes take several "
            f"bytes per splat, so this is refused as a decompression bomb (loading it would take about "
            f"{_decoded_gb(header):.1f} GB of memory)",
        )


def plausible_points(compressed_size: int) -> int:
    """The most splats an ``.spz`` file of `compressed_size` bytes may declare: any count up to `SMALL_CLOUD`,
    beyond it one per `MIN_REAL_BYTES_PER_POINT` bytes of the file."""
    return max(SMALL_CLOUD, compressed_size // MIN_REAL_BYTES_PER_POINT)


def _decoded_gb(header: SpzHeader) -> float:
    """Size of the decoded `SplatCloud` (float32, SH up to degree 3): what a bomb would make us allocate."""
    floats = 3 + 3 + 4 + 1 + 3 + 3 * sh_rest_count(min(header.sh_degree, 3))
    return header.num_points * floats * 4 / 1e9


def _gzip_header(path: PathLike, data: bytes) -> tuple[SpzHeader, zlib._Decompress]:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        head = inflater.decompress(data, LEGACY_HEADER.size)
    except zlib.error as exc:
        raise FormatError(path, f"corrupt gzip stream ({exc})") from None
    if len(head) < LEGACY_HEADER.size:
        what = "holds only" if inflater.eof else "is truncated after"
        raise FormatError(path, f"the gzip stream {what} {len(head)} bytes, less than the 16-byte SPZ header")
    magic, version, n, degree, bits, flags, _reserved = LEGACY_HEADER.unpack(head)
    if magic != MAGIC:
        raise FormatError(path, "the gzip stream does not start with the SPZ magic 'NGSP'")
    return SpzHeader(version, n, degree, bits, flags, "gzip"), inflater


def _read_gzip(path: PathLike, data: bytes) -> tuple[SpzHeader, dict[str, np.ndarray]]:
    header, inflater = _gzip_header(path, data)
    _check_header(path, header, len(data))
    sizes = header.attribute_sizes()
    body = sum(size for _, size in sizes)
    allowed = body + (MAX_EXTENSION_BYTES if header.has_extensions else 0)
    try:
        rest = inflater.decompress(inflater.unconsumed_tail, allowed + 1)
    except zlib.error as exc:
        raise FormatError(path, f"corrupt gzip stream ({exc})") from None
    what = f"{header.num_points} splats of SH degree {header.sh_degree} need {body} bytes after the header"
    if len(rest) > allowed:  # (with the cap reached, unconsumed_tail holds input not yet inflated)
        raise FormatError(path, f"the stream holds more data than the header calls for: {what}")
    if len(rest) < body:
        if not inflater.eof:
            raise FormatError(path, f"truncated gzip stream: it ends after {len(rest)} bytes of data; {what}")
        raise FormatError(path, f"missing data: the stream holds {len(rest)} bytes; {what}")
    if not inflater.eof:
        raise FormatError(path, "truncated gzip stream (no end of stream and checksum)")
    if inflater.unused_data:
        raise FormatError(path, f"{len(inflater.unused_data)} trailing bytes after the gzip stream")
    flat = np.frombuffer(rest, dtype=np.uint8)
    arrays, offset = {}, 0
    for name, size in sizes:
        arrays[name] = flat[offset : offset + size]
        offset += size
    return header, arrays


def _read_zstd_stream(path: PathLike, chunk: memoryview, size: int, name: str) -> np.ndarray:
    """Decompress one zstd stream into exactly `size` bytes, never producing more than `size` + 1."""
    out = np.empty(size, dtype=np.uint8)
    view, filled = memoryview(out), 0
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(chunk, read_across_frames=True)
        while filled < size:
            got = reader.readinto(view[filled:])
            if not got:
                break
            filled += got
        extra = reader.read(1)
    except zstandard.ZstdError as exc:
        raise FormatError(path, f"corrupt zstd stream '{name}' ({exc})") from None
    if filled < size:
        raise FormatError(path, f"zstd stream '{name}' holds {filled} bytes; the header calls for {size}")
    if extra:
        raise FormatError(path, f"zstd stream '{name}' holds more than the {size} bytes the header calls for")
    return out


def _read_ngsp(path: PathLike, data: bytes) -> tuple[SpzHeader, dict[str, np.ndarray]]:
    if len(data) < NGSP_HEADER.size:
        raise FormatError(path, f"truncated: {len(data)} bytes, less than the 32-byte NGSP header")
    _magic, version, n, degree, bits, flags, num_streams, toc_offset, _reserved = NGSP_HEADER.unpack_from(data)
    header = SpzHeader(version, n, degree, bits, flags, "ngsp")
    _check_header(path, header, len(data))
    sizes = [(name, size) for name, size in header.attribute_sizes() if size]
    if num_streams != len(sizes):
        raise FormatError(
            path, f"header lists {num_streams} streams; {n} splats of SH degree {degree} need {len(sizes)}"
        )
    if toc_offset < NGSP_HEADER.size:
        raise FormatError(path, f"table of contents at byte {toc_offset}, inside the 32-byte header")
    offset = toc_offset + TOC_ENTRY.size * num_streams
    if offset > len(data):
        raise FormatError(path, f"truncated: the table of contents ends at byte {offset} of {len(data)}")
    spans = []
    for index, (name, size) in enumerate(sizes):
        compressed, uncompressed = TOC_ENTRY.unpack_from(data, toc_offset + TOC_ENTRY.size * index)
        if uncompressed != size:
            raise FormatError(path, f"stream '{name}' holds {uncompressed} bytes; {n} splats need {size}")
        if compressed > len(data) - offset:
            raise FormatError(path, f"truncated: stream '{name}' runs past the end of the file")
        spans.append((name, size, offset, compressed))
        offset += compressed
    if offset != len(data):
        raise FormatError(path, f"{len(data) - offset} trailing bytes after the last stream")
    whole = memoryview(data)
    arrays = {name: np.zeros(0, dtype=np.uint8) for name in ATTRIBUTES}
    for name, size, start, compressed in spans:
        arrays[name] = _read_zstd_stream(path, whole[start : start + compressed], size, name)
    return header, arrays


def _unpack_smallest_three(raw: np.ndarray) -> np.ndarray:
    """``unpackQuaternionSmallestThree``: 4 bytes per point to (x, y, z, w) float32 in the stored frame."""
    comp = raw.view("<u4").astype(np.uint32)
    largest = (comp >> 30).astype(np.intp)
    fields = np.stack([(comp >> 20) & 1023, (comp >> 10) & 1023, comp & 1023], axis=1)
    values = SQRT1_2 * (fields & 511).astype(np.float32) / np.float32(511.0)
    values = np.where(fields >> 9 == 1, -values, values)
    sum_squares = np.einsum("ij,ij->i", values, values)
    q = np.empty((len(comp), 4), dtype=np.float32)
    np.put_along_axis(q, _OTHERS[largest], values, axis=1)
    np.put_along_axis(q, largest[:, None], np.sqrt(np.maximum(np.float32(0.0), 1 - sum_squares))[:, None], axis=1)
    return q


def _unpack(path: PathLike, header: SpzHeader, arrays: dict[str, np.ndarray], rub: bool) -> SplatCloud:
    flip_p, flip_q, flip_sh = _signs(rub)
    n = header.num_points
    padded = np.empty((n * 3, 4), dtype=np.uint8)  # 24-bit little endian -> int32 with sign extension
    padded[:, :3] = arrays["positions"].reshape(-1, 3)
    padded[:, 3] = np.where(padded[:, 2] & 0x80, 0xFF, 0)
    fixed = padded.view("<i4").reshape(n, 3)
    positions = fixed.astype(np.float32) * np.float32(2.0**-header.fractional_bits) * flip_p

    byte = np.arange(256, dtype=np.float32)
    scales = (byte / np.float32(16.0) - np.float32(10.0))[arrays["scales"].reshape(n, 3)]
    if header.version >= FIRST_SMALLEST_THREE_VERSION:
        xyzw = _unpack_smallest_three(arrays["rotations"])
    else:  # unpackQuaternionFirstThree
        xyz = (byte * np.float32(1.0 / 127.5) - np.float32(1.0))[arrays["rotations"].reshape(n, 3)]
        w = np.sqrt(np.maximum(np.float32(0.0), 1 - np.einsum("ij,ij->i", xyz, xyz)))
        xyzw = np.column_stack([xyz, w])
    rotations = np.empty((n, 4), dtype=np.float32)
    rotations[:, 0] = xyzw[:, 3]
    rotations[:, 1:] = xyzw[:, :3] * flip_q

    opacities = logit(byte / np.float32(255.0), eps=_ALPHA_EPS)[arrays["alphas"]]
    colors = ((byte / np.float32(255.0) - np.float32(0.5)) / COLOR_SCALE)[arrays["colors"].reshape(n, 3)]

    k = sh_rest_count(min(header.sh_degree, 3))
    sh = arrays["sh"].reshape(n, header.sh_dim, 3)[:, :k]
    sh_rest = sh.astype(np.float32)  # (b - 128) / 128, then the coordinate flip; all exact
    sh_rest -= np.float32(128.0)
    sh_rest *= (flip_sh[:k] / np.float32(128.0))[:, None]

    cloud = SplatCloud(
        positions=positions, scales=scales, rotations=rotations, opacities=opacities, sh_dc=colors, sh_rest=sh_rest
    )
    for name in ("positions", "scales", "rotations", "opacities", "sh_dc", "sh_rest"):
        if not all_finite(getattr(cloud, name)):
            raise FormatError(path, f"decoding produced non-finite {name}")
    return cloud


def decode_spz_header(data: bytes, name: PathLike = "<memory>") -> SpzHeader:
    """Parse and validate just the header of ``.spz`` bytes (inflating only 16 bytes of a gzip stream)."""
    if data[:4] == MAGIC_BYTES:
        if len(data) < NGSP_HEADER.size:
            raise FormatError(name, f"truncated: {len(data)} bytes, less than the 32-byte NGSP header")
        version, n, degree, bits, flags = NGSP_HEADER.unpack_from(data)[1:6]
        header = SpzHeader(version, n, degree, bits, flags, "ngsp")
    elif data[:2] == GZIP_MAGIC:
        header = _gzip_header(name, data)[0]
    else:
        raise _not_spz(name, data)
    _check_header(name, header, len(data))
    return header


def decode_spz_with_header(
    data: bytes, name: PathLike = "<memory>", rub: bool = False
) -> tuple[SplatCloud, SpzHeader]:
    """Decode ``.spz`` bytes into a `SplatCloud` (PLY storage convention) and its header; `rub`: the file
    holds RUB, to be turned to RDF (see Coordinates)."""
    if data[:4] == MAGIC_BYTES:
        header, arrays = _read_ngsp(name, data)
    elif data[:2] == GZIP_MAGIC:
        header, arrays = _read_gzip(name, data)
    else:
        raise _not_spz(name, data)
    return _unpack(name, header, arrays, rub), header


def decode_spz(data: bytes, name: PathLike = "<memory>", rub: bool = False) -> SplatCloud:
    """Decode ``.spz`` bytes; every problem with them raises `FormatError` mentioning `name`."""
    return decode_spz_with_header(data, name, rub)[0]


def _not_spz(name: PathLike, data: bytes) -> FormatError:
    if not data:
        return FormatError(name, "empty file")
    return FormatError(name, f"not an SPZ file: starts with {bytes(data[:4])!r}, neither gzip nor 'NGSP'")


def _read_bytes(path: PathLike) -> bytes:
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise FormatError(path, f"{size} bytes is more than the {MAX_FILE_BYTES} an SPZ file of this reader may have")
    with open(path, "rb") as handle:
        return handle.read()


@reports_out_of_memory
def read_spz_header(path: PathLike) -> SpzHeader:
    """Read and validate the header of an ``.spz`` file (version, point count, SH degree, flags)."""
    return decode_spz_header(_read_bytes(path), path)


@reports_out_of_memory
def read_spz(path: PathLike, rub: bool = False) -> SplatCloud:
    """Read an ``.spz`` file of version 2, 3 or 4 into a `SplatCloud`; `rub`: the file holds RUB
    coordinates, such as SplatStudio's own ``.spz`` files written before it stored the PLY frame."""
    return decode_spz(_read_bytes(path), path, rub)
