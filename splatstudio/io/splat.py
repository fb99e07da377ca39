"""The compact ``.splat`` format of antimatter15's WebGL viewer.

A ``.splat`` file is a headerless array of 32-byte little-endian records:

====== ===================== ===========================================
bytes  field                 encoding
====== ===================== ===========================================
0-11   position x, y, z      float32
12-23  scale sx, sy, sz      float32, *activated* (``exp`` of log scale)
24-27  colour r, g, b, a     uint8: ``clip((0.5 + SH_C0 * dc) * 255)``,
                             ``clip(sigmoid(opacity) * 255)``
28-31  rotation w, x, y, z   uint8: ``clip(q / |q| * 128 + 128)``
====== ===================== ===========================================

Records are sorted by descending ``exp(sum(log scales)) * sigmoid(opacity)``
(volume times opacity), and float-to-byte conversion truncates, both exactly as
in the reference ``convert.py``. Only SH degree 0 survives.

A log scale whose ``exp`` overflows float32 (above about 88.72) is written as the largest float32, as
the other formats clamp scales to what they hold; `oversized_scale_count` counts such splats.

Decoding inverts these transforms: colour and alpha bytes are read as the centre
of their quantisation bin (so re-encoding reproduces the same bytes and alpha 0
or 255 stays finite), rotations as ``(b - 128) / 128``.
"""

from __future__ import annotations

import os

import numpy as np

from splatstudio.io.errors import FormatError, reports_out_of_memory
from splatstudio.io.ply import PathLike
from splatstudio.model.atomic import atomic_open
from splatstudio.model.splatcloud import (
    SplatCloud,
    all_finite,
    logit,
    normalize_quaternions,
    rgb_to_sh_dc,
    sh_dc_to_rgb,
    sigmoid,
)

RECORD = np.dtype([("position", "<f4", (3,)), ("scale", "<f4", (3,)), ("rgba", "u1", (4,)), ("rotation", "u1", (4,))])
RECORD_SIZE = RECORD.itemsize  # 32

_TINY_SCALE = np.finfo(np.float32).tiny
_LARGEST_SCALE = np.finfo(np.float32).max
_ALPHA_EPS = 1e-8  # keeps logit(1) finite while sigmoid() in float32 still gives exactly 1


def splat_sort_order(cloud: SplatCloud) -> np.ndarray:
    """Indices sorting `cloud` by descending volume x opacity.

    Compared as logarithms, ``sum(log scales) + log(sigmoid(opacity))``, which
    orders the same way but cannot overflow.
    """
    log_volume = cloud.scales.astype(np.float64).sum(axis=1)
    log_alpha = -np.logaddexp(0.0, -cloud.opacities.astype(np.float64))
    # the reference convert.py sorts with numpy's default (introsort): ties are rare and ordered alike
    return np.argsort(-(log_volume + log_alpha))


def _float32_exp(log_scales: np.ndarray) -> np.ndarray:
    """``exp`` of float32 log scales: infinite where it overflows float32, without numpy's warning."""
    with np.errstate(over="ignore"):
        return np.exp(log_scales)


def oversized_scale_count(cloud: SplatCloud) -> int:
    """Splats with a scale too large for a ``.splat`` file's float32 (written as the largest float32)."""
    return int(np.isinf(_float32_exp(cloud.scales)).any(axis=1).sum())


ENCODE_BLOCK = 1 << 16
"""Splats encoded at a time: the temporaries of a block stay small whatever the cloud's size."""


def encode_splat(cloud: SplatCloud) -> np.ndarray:
    """Encode `cloud` (validated) into a sorted array of `RECORD` structs.

    Encoded block by block in file order (the temporaries of a block stay small whatever the cloud's
    size), then put in splat order with one gather of opaque 32-byte items, far faster than gathering
    each field or structured records."""
    cloud.validate()
    records = np.empty(len(cloud), dtype=RECORD)
    for start in range(0, len(cloud), ENCODE_BLOCK):
        rows = slice(start, start + ENCODE_BLOCK)
        block = records[rows]
        block["position"] = cloud.positions[rows]
        block["scale"] = np.minimum(_float32_exp(cloud.scales[rows]), _LARGEST_SCALE)
        rgba = np.empty((len(block), 4), dtype=np.float32)
        rgba[:, :3] = sh_dc_to_rgb(cloud.sh_dc[rows])
        rgba[:, 3] = sigmoid(cloud.opacities[rows])
        block["rgba"] = np.clip(rgba * 255.0, 0, 255).astype(np.uint8)
        quaternions = normalize_quaternions(cloud.rotations[rows]) * 128.0 + 128.0
        block["rotation"] = np.clip(quaternions, 0, 255).astype(np.uint8)
    return np.take(records.view(f"V{RECORD_SIZE}"), splat_sort_order(cloud)).view(RECORD)


def decode_splat(records: np.ndarray, path: PathLike = "<memory>") -> SplatCloud:
    """Decode `RECORD` structs into a degree-0 `SplatCloud`; non-finite floats raise `FormatError`."""
    positions = records["position"].astype(np.float32)
    scales = records["scale"].astype(np.float32)
    for name, values in (("position", positions), ("scale", scales)):
        if not all_finite(values):
            bad = int(np.argmax(~np.isfinite(values).all(axis=1)))
            raise FormatError(path, f"splat {bad} has a non-finite {name} (NaN or inf)")
    rgba = (records["rgba"].astype(np.float32) + 0.5) / 255.0
    return SplatCloud(
        positions=positions,
        scales=np.log(np.maximum(scales, _TINY_SCALE), dtype=np.float64),
        rotations=(records["rotation"].astype(np.float32) - 128.0) / 128.0,
        opacities=logit(rgba[:, 3], eps=_ALPHA_EPS),
        sh_dc=rgb_to_sh_dc(np.minimum(rgba[:, :3], 1.0)),
    )


@reports_out_of_memory
def read_splat(path: PathLike) -> SplatCloud:
    """Read a ``.splat`` file; its size must be a multiple of 32 bytes."""
    size = os.path.getsize(path)
    if size % RECORD_SIZE:
        raise FormatError(path, f"size {size} bytes is not a multiple of the {RECORD_SIZE}-byte .splat record")
    return decode_splat(np.fromfile(path, dtype=RECORD), path)


def write_splat(path: PathLike, cloud: SplatCloud) -> None:
    """Write `cloud` as a ``.splat`` file (atomically: temporary file + ``os.replace``)."""
    records = encode_splat(cloud)
    with atomic_open(path) as handle:
        records.tofile(handle)
