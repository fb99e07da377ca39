"""The attribute arrays of an ``.spz`` file: how a `SplatCloud` is quantised into them and read back
(``packGaussians`` / ``unpackGaussians`` of the reference; the containers that hold them are
`splatstudio.io.spz.container`).

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
"""

from __future__ import annotations

import math

import numpy as np

from splatstudio.io.errors import FormatError
from splatstudio.io.ply import PathLike
from splatstudio.model.splatcloud import SplatCloud, all_finite, logit, sh_rest_count, sigmoid

FIRST_SMALLEST_THREE_VERSION = 3  # MIN_SMALLEST_THREE_QUATERNIONS_VERSION
SPZ_MAX_SH_DEGREE = 4
SPZ_SH_DIMS = (0, 3, 8, 15, 24)  # coefficients per channel (without DC) for degree 0..4
DEFAULT_FRACTIONAL_BITS = 12
MAX_FRACTIONAL_BITS = 24
SH1_BITS = 5  # DEFAULT_SH1_BITS
SH_REST_BITS = 4  # DEFAULT_SH_REST_BITS

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


# --------------------------------------------------------------------------- decoding


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


def unpack_attributes(path: PathLike, header, arrays: dict[str, np.ndarray], rub: bool) -> SplatCloud:
    """The `SplatCloud` the arrays of a file with `header` (a `container.SpzHeader`) hold; `rub`: turn RUB to RDF."""
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
