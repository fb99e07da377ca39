"""Tests for `splatstudio.io.compressed_ply`, the chunked "compressed PLY" of SuperSplat / PlayCanvas.

Quantisation stated per field for the cloud -> file -> cloud round trip. The splats are
Morton-sorted and cut into chunks of 256; R is the range (max - min) of a field over the
splat's chunk:

* position: within R / (2 * 2047) on x and z and R / (2 * 1023) on y (11-10-11-bit rounding),
  plus float32 rounding of the decoded value; a range below 1e-5 keeps only its ends (within R);
* log scale: the same, over the chunk's log-scale range (clamped to [-20, 20]);
* rotation: the three smallest components within sqrt(2) / 2046 each (10 bits over
  [-1/sqrt(2), 1/sqrt(2)]), so the rotation angle is within 7 * sqrt(2) / 2046 = 4.8e-3 rad
  (0.28 degrees): the fourth component, at least 1/2, is rebuilt with at most 3x that error;
* colour ``0.5 + SH_C0 * dc``: within R / 510 (8-bit rounding over the chunk colour range),
  which is 1/255 or better whenever R <= 2;
* opacity: ``sigmoid(opacity)`` within 1/510 (8-bit rounding);
* SH rest: within 1/64, half the 1/32 byte step, on [-4 + 1/32, 4 - 1/32]; clamped to [-4, 4];
* normals are dropped.

Byte-level tests pack known values by hand; `js_*` below are line-by-line Python ports of the
published JavaScript (splat-transform's ``compressed-chunk.ts``, ``morton-order.ts`` and
``decompress-ply.ts``) that the vectorised code must match bit for bit.
"""

from __future__ import annotations

import math
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from _clouds import clouds, random_cloud
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plyfile import PlyData

from splatstudio.io.compressed_ply import (
    CHUNK_SIZE,
    decode_chunks,
    encode_chunks,
    is_compressed_ply,
    morton_order,
    read_compressed_ply,
    write_compressed_ply,
)
from splatstudio.io.errors import FormatError
from splatstudio.io.ply import write_splat_ply
from splatstudio.model.splatcloud import SH_C0, SplatCloud

TMP_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ROTATION_STEP = math.sqrt(2) / 2046  # largest error of one stored quaternion component
ROTATION_ANGLE = 7 * ROTATION_STEP  # largest rotation angle error, in radians
F32 = float(np.finfo(np.float32).eps)
CHUNK_FLOATS = [
    "min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
    "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z",
    "min_r", "min_g", "min_b", "max_r", "max_g", "max_b",
]  # fmt: skip


# --------------------------------------------------------------------------- helpers


def body_of(data: bytes) -> tuple[bytes, bytes]:
    """Split a PLY file into header text (through ``end_header\\n``) and body."""
    end = data.index(b"end_header\n") + len(b"end_header\n")
    return data[:end], data[end:]


def sorted_like_the_file(cloud: SplatCloud) -> SplatCloud:
    return cloud.subset(morton_order(cloud.positions))


def chunk_range(values: np.ndarray, limit: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per splat: the (lo, hi) of `values` over its chunk of 256, optionally clamped to [-limit, limit]."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    count = -(-n // CHUNK_SIZE)
    padded = np.concatenate([values, np.repeat(values[-1:], count * CHUNK_SIZE - n, axis=0)])
    chunks = padded.reshape(count, CHUNK_SIZE, -1)
    lo, hi = chunks.min(axis=1), chunks.max(axis=1)
    if limit is not None:
        lo, hi = np.clip(lo, -limit, limit), np.clip(hi, -limit, limit)
    return np.repeat(lo, CHUNK_SIZE, axis=0)[:n], np.repeat(hi, CHUNK_SIZE, axis=0)[:n]


def quantisation_bound(lo: np.ndarray, hi: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Half a step of the chunk range, a whole (sub-1e-5) range, plus float32 rounding."""
    width = hi - lo
    bound = np.where(width < 1e-5, width, width / (2 * steps))
    return bound * (1 + 1e-9) + F32 * np.maximum(np.abs(lo), np.abs(hi)) + 1e-30


def rotation_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (radians) of the rotation taking quaternion rows `a` to `b` (sign-insensitive, float64)."""

    def unit(q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        norms = np.linalg.norm(q, axis=1, keepdims=True)
        return np.where(norms > 0, q / np.where(norms > 0, norms, 1), [1.0, 0.0, 0.0, 0.0])

    a, b = unit(a), unit(b)
    b = b * np.where((a * b).sum(axis=1, keepdims=True) < 0, -1.0, 1.0)
    chord = np.linalg.norm(a - b, axis=1)
    return 4 * np.arcsin(np.minimum(1.0, chord / 2))


def assert_round_trip(cloud: SplatCloud, back: SplatCloud, degree: int | None = None) -> None:
    """`back` is `cloud`, Morton-sorted, within the tolerances stated in the module docstring."""
    want = sorted_like_the_file(cloud)
    degree = cloud.sh_degree if degree is None else degree
    assert len(back) == len(cloud) and back.sh_degree == degree and back.normals is None
    back.validate()
    if len(cloud) == 0:
        return
    steps = np.array([2047.0, 1023.0, 2047.0])

    lo, hi = chunk_range(want.positions)
    error = np.abs(back.positions.astype(np.float64) - want.positions)
    assert (error <= quantisation_bound(lo, hi, steps)).all(), "position"

    lo, hi = chunk_range(want.scales, limit=20.0)
    error = np.abs(back.scales.astype(np.float64) - np.clip(want.scales, lo, hi))
    assert (error <= quantisation_bound(lo, hi, steps)).all(), "scale"

    assert (rotation_angles(want.rotations, back.rotations) <= ROTATION_ANGLE).all(), "rotation"

    colour = (want.sh_dc.astype(np.float64) * SH_C0 + 0.5).astype(np.float32).astype(np.float64)
    lo, hi = chunk_range(colour)
    error = np.abs(back.sh_dc.astype(np.float64) * SH_C0 + 0.5 - colour)
    assert (error <= quantisation_bound(lo, hi, np.full(3, 255.0)) + 1e-6).all(), "colour"

    assert np.abs(back.alphas() - want.alphas()).max() <= 1 / 510 + 1e-6, "opacity"

    k = back.sh_rest.shape[1]
    expected_sh = np.clip(want.sh_rest[:, :k], -4.0, 4.0)
    assert np.abs(back.sh_rest - expected_sh).max(initial=0) <= 1 / 64 + 1e-6, "sh_rest"


def js_part1by2(x: int) -> int:
    x &= 0x000003FF
    x = (x ^ (x << 16)) & 0xFF0000FF
    x = (x ^ (x << 8)) & 0x0300F00F
    x = (x ^ (x << 4)) & 0x030C30C3
    return (x ^ (x << 2)) & 0x09249249


def js_morton_order(points: list[tuple[float, float, float]]) -> list[int]:
    """Port of splat-transform ``sortMortonOrder`` (scalar loops, recursion into runs over 256)."""
    indices = list(range(len(points)))

    def generate(start: int, end: int) -> None:
        sub = indices[start:end]
        mx = my = mz = big_x = big_y = big_z = None
        for ri in sub:
            x, y, z = points[ri]
            if mx is None:
                mx = big_x = x
                my = big_y = y
                mz = big_z = z
            else:
                if x < mx:
                    mx = x
                elif x > big_x:
                    big_x = x
                if y < my:
                    my = y
                elif y > big_y:
                    big_y = y
                if z < mz:
                    mz = z
                elif z > big_z:
                    big_z = z
        xlen, ylen, zlen = big_x - mx, big_y - my, big_z - mz
        if xlen == 0 and ylen == 0 and zlen == 0:
            return
        xmul = 0 if xlen == 0 else 1024 / xlen
        ymul = 0 if ylen == 0 else 1024 / ylen
        zmul = 0 if zlen == 0 else 1024 / zlen
        morton = []
        for ri in sub:
            x, y, z = points[ri]
            ix, iy, iz = (int(min(1023, d)) for d in ((x - mx) * xmul, (y - my) * ymul, (z - mz) * zmul))
            morton.append((js_part1by2(iz) << 2) + (js_part1by2(iy) << 1) + js_part1by2(ix))
        order = sorted(range(len(sub)), key=lambda i: morton[i])  # stable, like Array.prototype.sort
        indices[start:end] = [sub[i] for i in order]
        run_start, run_end = 0, 1
        while run_start < len(sub):
            while run_end < len(sub) and morton[order[run_end]] == morton[order[run_start]]:
                run_end += 1
            if run_end - run_start > 256:
                generate(start + run_start, start + run_end)
            run_start = run_end

    generate(0, len(points))
    return indices


def js_pack_chunk(cloud: SplatCloud) -> tuple[list[float], list[tuple[int, int, int, int]]]:
    """Port of splat-transform ``CompressedChunk.pack`` for one chunk of at most 256 splats."""
    rows = list(range(len(cloud))) + [len(cloud) - 1] * (256 - len(cloud))  # pad with the last splat

    def column(values: np.ndarray) -> list[float]:
        return [float(values[i]) for i in rows]

    x, y, z = (column(cloud.positions[:, i]) for i in range(3))
    s0, s1, s2 = (column(cloud.scales[:, i]) for i in range(3))
    # f_dc_* * SH_C0 + 0.5 is stored back into the chunk's Float32Array
    c0, c1, c2 = ([float(np.float32(v * SH_C0 + 0.5)) for v in column(cloud.sh_dc[:, i])] for i in range(3))
    opacity = column(cloud.opacities)
    rot = [column(cloud.rotations[:, i]) for i in range(4)]

    def min_max(data: list[float]) -> list[float]:
        lo = hi = data[0]
        for v in data[1:]:
            lo, hi = min(lo, v), max(hi, v)
        return [lo, hi]

    def clamp(v: float) -> float:
        return max(-20.0, min(20.0, v))

    px, py, pz = min_max(x), min_max(y), min_max(z)
    sx, sy, sz = ([clamp(v) for v in min_max(s)] for s in (s0, s1, s2))
    cr, cg, cb = min_max(c0), min_max(c1), min_max(c2)

    def normalize(v: float, lo: float, hi: float) -> float:
        if v <= lo:
            return 0.0
        if v >= hi:
            return 1.0
        return 0.0 if hi - lo < 0.00001 else (v - lo) / (hi - lo)

    def pack_unorm(v: float, bits: int) -> int:
        t = (1 << bits) - 1
        return max(0, min(t, math.floor(v * t + 0.5)))

    def pack111011(a: float, b: float, c: float) -> int:
        return (pack_unorm(a, 11) << 21) | (pack_unorm(b, 10) << 11) | pack_unorm(c, 11)

    def pack_rot(qx: float, qy: float, qz: float, qw: float) -> int:
        length = 1 / math.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)  # Quat.normalize (non-zero input)
        a = [qx * length, qy * length, qz * length, qw * length]
        largest = 0
        for i in range(4):
            largest = i if abs(a[i]) > abs(a[largest]) else largest
        if a[largest] < 0:
            a = [-v for v in a]
        norm = math.sqrt(2) * 0.5
        result = largest
        for i in range(4):
            if i != largest:
                result = (result << 10) | pack_unorm(a[i] * norm + 0.5, 10)
        return result

    words = []
    for i in range(len(cloud)):
        alpha = 1 / (1 + math.exp(-opacity[i]))
        colour = (
            (pack_unorm(normalize(c0[i], *cr), 8) << 24)
            | (pack_unorm(normalize(c1[i], *cg), 8) << 16)
            | (pack_unorm(normalize(c2[i], *cb), 8) << 8)
            | pack_unorm(alpha, 8)
        )
        words.append(
            (
                pack111011(normalize(x[i], *px), normalize(y[i], *py), normalize(z[i], *pz)),
                pack_rot(rot[0][i], rot[1][i], rot[2][i], rot[3][i]),
                pack111011(normalize(s0[i], *sx), normalize(s1[i], *sy), normalize(s2[i], *sz)),
                colour,
            )
        )
    table = [px[0], py[0], pz[0], px[1], py[1], pz[1], sx[0], sy[0], sz[0], sx[1], sy[1], sz[1]]
    table += [cr[0], cg[0], cb[0], cr[1], cg[1], cb[1]]
    return table, words


def js_decompress(table: list[float], words: tuple[int, int, int, int]) -> list[float]:
    """Port of splat-transform ``decompressPly`` for one splat: x y z, rot_0..3, scale_0..2, f_dc_0..2, opacity."""

    def unorm(value: int, bits: int) -> float:
        t = (1 << bits) - 1
        return (value & t) / t

    def lerp(a: float, b: float, t: float) -> float:
        return a * (1 - t) + b * t

    position, rotation, scale, colour = words
    p = (unorm(position >> 21, 11), unorm(position >> 11, 10), unorm(position, 11))
    s = (unorm(scale >> 21, 11), unorm(scale >> 11, 10), unorm(scale, 11))
    c = (unorm(colour >> 24, 8), unorm(colour >> 16, 8), unorm(colour >> 8, 8), unorm(colour, 8))
    norm = 1.0 / (math.sqrt(2) * 0.5)
    a, b, cc = ((unorm(rotation >> shift, 10) - 0.5) * norm for shift in (20, 10, 0))
    m = math.sqrt(max(0, 1.0 - (a * a + b * b + cc * cc)))
    rot = {0: (m, a, b, cc), 1: (a, m, b, cc), 2: (a, b, m, cc), 3: (a, b, cc, m)}[rotation >> 30]
    out = [lerp(table[i], table[i + 3], p[i]) for i in range(3)]
    out += list(rot)
    out += [lerp(table[6 + i], table[9 + i], s[i]) for i in range(3)]
    out += [(lerp(table[12 + i], table[15 + i], c[i]) - 0.5) / SH_C0 for i in range(3)]
    out.append(-math.inf if c[3] == 0 else math.inf if c[3] == 1 else -math.log(1 / c[3] - 1))  # JS: 1 / 0 = inf
    return [float(np.float32(v)) for v in out]


def cloud_in_order(cloud: SplatCloud) -> SplatCloud:
    """`cloud` already in Morton order, so that the file keeps it as is."""
    return sorted_like_the_file(cloud)


# --------------------------------------------------------------------------- layout, bytes


def test_header_is_the_published_layout(tmp_path: Path) -> None:
    path = tmp_path / "scene.compressed.ply"
    write_compressed_ply(path, random_cloud(300, sh_degree=1))
    header, body = body_of(path.read_bytes())
    expected = (
        "ply\n"
        "format binary_little_endian 1.0\n"
        "comment Generated by SplatStudio\n"
        "element chunk 2\n"
        "property float min_x\nproperty float min_y\nproperty float min_z\n"
        "property float max_x\nproperty float max_y\nproperty float max_z\n"
        "property float min_scale_x\nproperty float min_scale_y\nproperty float min_scale_z\n"
        "property float max_scale_x\nproperty float max_scale_y\nproperty float max_scale_z\n"
        "property float min_r\nproperty float min_g\nproperty float min_b\n"
        "property float max_r\nproperty float max_g\nproperty float max_b\n"
        "element vertex 300\n"
        "property uint packed_position\nproperty uint packed_rotation\n"
        "property uint packed_scale\nproperty uint packed_color\n"
        "element sh 300\n" + "".join(f"property uchar f_rest_{j}\n" for j in range(9)) + "end_header\n"
    )
    assert header.decode("ascii") == expected
    assert len(body) == 2 * 18 * 4 + 300 * 16 + 300 * 9


@pytest.mark.parametrize(("degree", "sh_bytes"), [(0, 0), (1, 9), (2, 24), (3, 45)])
def test_size_per_degree_and_plyfile_reads_it(tmp_path: Path, degree: int, sh_bytes: int) -> None:
    path = tmp_path / "scene.compressed.ply"
    write_compressed_ply(path, random_cloud(513, sh_degree=degree))
    header, body = body_of(path.read_bytes())
    assert len(body) == 3 * 72 + 513 * (16 + sh_bytes)
    ply = PlyData.read(str(path))  # an independent PLY reader agrees on the structure
    assert [e.name for e in ply.elements] == ["chunk", "vertex"] + (["sh"] if degree else [])
    assert ply["chunk"].count == 3 and ply["vertex"].count == 513
    assert [p.name for p in ply["chunk"].properties] == CHUNK_FLOATS
    words = ["packed_position", "packed_rotation", "packed_scale", "packed_color"]
    assert ply["vertex"].data.dtype == np.dtype([(name, "<u4") for name in words])
    if degree:
        assert ply["sh"].data.dtype == np.dtype([(f"f_rest_{j}", "u1") for j in range(sh_bytes)])


def three_splats() -> SplatCloud:
    """B, A, C: the writer must store them as A, C, B (Morton order over the bounding box)."""
    colour = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.25, 0.75, 0.6]])
    sh_rest = np.zeros((3, 3, 3))
    sh_rest[1] = [[0.0, 1.0, -4.0], [5.0, 3.99, -0.01], [-5.0, 0.5, 2.0]]  # A's [k, channel]
    return SplatCloud(
        positions=[[2.0, 4.0, 8.0], [0.0, 0.0, 0.0], [1.0, 1.0, 2.0]],
        scales=[[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0], [0.0, 0.0, 0.0]],
        rotations=[[0.0, 0.0, 0.0, -2.0], [1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]],
        opacities=[40.0, 0.0, -40.0],
        sh_dc=(colour - 0.5) / SH_C0,
        sh_rest=sh_rest,
    )


def test_bit_packing_of_known_values(tmp_path: Path) -> None:
    path = tmp_path / "three.compressed.ply"
    write_compressed_ply(path, three_splats())
    _, body = body_of(path.read_bytes())
    assert len(body) == 72 + 3 * 16 + 3 * 9
    table = struct.unpack("<18f", body[:72])
    assert table[:12] == (0.0, 0.0, 0.0, 2.0, 4.0, 8.0, -1.0, -2.0, -3.0, 1.0, 2.0, 3.0)
    assert table[12:] == pytest.approx((0, 0, 0, 1, 1, 1), abs=1e-6)  # colour range, rounded via float32
    a, c, b = (struct.unpack("<4I", body[72 + 16 * i : 88 + 16 * i]) for i in range(3))

    # packed_position: x 11 bits << 21 | y 10 bits << 11 | z 11 bits of (p - min) / (max - min)
    assert a[0] == 0 and b[0] == 0xFFFFFFFF
    assert c[0] == (1024 << 21) | (256 << 11) | 512  # (0.5, 0.25, 0.25): floor(t * (2^n - 1) + 0.5)
    # packed_rotation: largest index << 30, then the other three as 10-bit (v * sqrt(2)/2 + 0.5)
    assert a[1] == (0 << 30) | (512 << 20) | (512 << 10) | 512  # identity, w = rot_0 largest
    assert b[1] == (3 << 30) | (512 << 20) | (512 << 10) | 512  # (0, 0, 0, -2): rot_3, sign flipped
    assert c[1] == (0 << 30) | (873 << 20) | (873 << 10) | 873  # all 0.5: the first wins the tie
    # packed_scale: log scales like positions
    assert a[2] == 0 and b[2] == 0xFFFFFFFF
    assert c[2] == (1024 << 21) | (512 << 11) | 1024
    # packed_color: r << 24 | g << 16 | b << 8 | alpha, colour over the chunk range, alpha = sigmoid
    assert a[3] == 128  # black, sigmoid(0) = 0.5 -> floor(127.5 + 0.5)
    assert b[3] == 0xFFFFFFFF  # white, sigmoid(40) = 1
    assert c[3] == (64 << 24) | (191 << 16) | (153 << 8) | 0  # (0.25, 0.75, 0.6), sigmoid(-40) -> 0
    # sh: trunc((v / 8 + 0.5) * 256) clamped, channel-major f_rest_(c * 3 + k)
    sh = body[72 + 48 :]
    assert list(sh[0:9]) == [128, 255, 0, 160, 255, 144, 0, 127, 192]  # A
    assert list(sh[9:27]) == [128] * 18  # C and B: zeros


def build_file(
    chunks: list[list[float]],
    words: list[tuple[int, ...]],
    sh: list[list[int]] | None = None,
    order: str = "<",
    colour_range: bool = True,
) -> bytes:
    """A compressed PLY assembled with `struct` from the published layout, independently of the writer."""
    names = CHUNK_FLOATS if colour_range else CHUNK_FLOATS[:12]
    fmt = "binary_little_endian" if order == "<" else "binary_big_endian"
    lines = ["ply", f"format {fmt} 1.0", f"element chunk {len(chunks)}"]
    lines += [f"property float {name}" for name in names]
    lines += [f"element vertex {len(words)}"]
    lines += [f"property uint packed_{name}" for name in ("position", "rotation", "scale", "color")]
    if sh:
        lines += [f"element sh {len(sh)}"] + [f"property uchar f_rest_{j}" for j in range(len(sh[0]))]
    data = ("\n".join([*lines, "end_header"]) + "\n").encode()
    data += b"".join(struct.pack(f"{order}{len(names)}f", *row) for row in chunks)
    data += b"".join(struct.pack(f"{order}4I", *w) for w in words)
    data += b"".join(bytes(row) for row in sh or [])
    return data


@pytest.mark.parametrize("order", ["<", ">"])
def test_decoding_a_hand_built_file(tmp_path: Path, order: str) -> None:
    identity_ish = (2 << 30) | (512 << 20) | (512 << 10) | 512  # rot_2 largest, others (512/1023 - 0.5) * sqrt 2
    words = [
        ((1 << 21) | (2 << 11) | 3, identity_ish, (2047 << 21) | 0, (255 << 24) | (0 << 16) | (51 << 8) | 255),
        (0xFFFFFFFF, (1 << 30) | (1023 << 20) | (0 << 10) | 512, 0xFFFFFFFF, 51),
    ]
    chunk = [0, 0, 0, 2047, 1023, 2047, -10, -5, -2, 10, 5, 2, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2]
    sh = [[0, 255, 128, 1, 2, 3, 4, 5, 6], [128] * 9]
    path = tmp_path / "hand.ply"
    path.write_bytes(build_file([chunk], words, sh, order))
    assert is_compressed_ply(path)
    cloud = read_compressed_ply(path)
    assert cloud.sh_degree == 1 and len(cloud) == 2
    np.testing.assert_allclose(cloud.positions, [[1, 2, 3], [2047, 1023, 2047]], rtol=1e-6)
    np.testing.assert_allclose(cloud.scales, [[10, -5, -2], [10, 5, 2]], rtol=1e-6)
    small = (512 / 1023 - 0.5) * math.sqrt(2)
    np.testing.assert_allclose(cloud.rotations[0], [small, small, math.sqrt(1 - 3 * small**2), small], rtol=1e-6)
    top, bottom = 0.5 * math.sqrt(2), -0.5 * math.sqrt(2)  # bytes 1023 and 0
    # rot_1 largest: rebuilt as sqrt(max(0, 1 - ...)), which clamps to 0 here
    np.testing.assert_allclose(cloud.rotations[1], [top, 0.0, bottom, small], atol=1e-7)
    colours = cloud.sh_dc * SH_C0 + 0.5
    np.testing.assert_allclose(colours[0], [0.8, 0.4, 0.6 + 0.6 * 51 / 255], atol=1e-6)  # lerp over min..max
    np.testing.assert_allclose(colours[1], [0.2, 0.4, 0.6], atol=1e-6)
    np.testing.assert_allclose(cloud.opacities, [40.0, math.log(0.2 / 0.8)], rtol=1e-6)  # byte 255 -> 40
    sh_values = [
        -4.0,
        4.0,
        (128.5 / 256 - 0.5) * 8,
        (1.5 / 256 - 0.5) * 8,
        (2.5 / 256 - 0.5) * 8,
        (3.5 / 256 - 0.5) * 8,
        (4.5 / 256 - 0.5) * 8,
        (5.5 / 256 - 0.5) * 8,
        (6.5 / 256 - 0.5) * 8,
    ]
    # file column c * 3 + k is sh_rest[:, k, c]
    np.testing.assert_array_equal(cloud.sh_rest[0], np.array(sh_values, dtype=np.float32).reshape(3, 3).T)
    np.testing.assert_array_equal(cloud.sh_rest[1], np.full((3, 3), 0.015625, dtype=np.float32))


def test_older_files_without_chunk_colour_range(tmp_path: Path) -> None:
    words = [(0, 0, 0, (255 << 24) | (0 << 16) | (51 << 8) | 0)]
    path = tmp_path / "old.ply"
    path.write_bytes(build_file([[1, 2, 3, 1, 2, 3, -1, -1, -1, -1, -1, -1]], words, colour_range=False))
    cloud = read_compressed_ply(path)
    np.testing.assert_allclose(cloud.sh_dc * SH_C0 + 0.5, [[1.0, 0.0, 0.2]], atol=1e-6)  # the colour itself
    assert cloud.opacities[0] == -40.0 and cloud.sh_degree == 0
    np.testing.assert_array_equal(cloud.positions, [[1, 2, 3]])


def test_encoder_matches_a_port_of_the_published_writer() -> None:
    cloud = random_cloud(300, sh_degree=0, seed=11)
    cloud.positions[:40] = cloud.positions[0]  # equal values and ...
    cloud.scales[40:80, 1] = -30.0  # ... log scales beyond the [-20, 20] clamp
    cloud.sh_dc[80:90] = 0.0
    for first in (0, 256):  # a full chunk and a partial one
        part = cloud.subset(np.arange(first, min(first + 256, len(cloud))))
        table, words = encode_chunks(part)
        js_table, js_words = js_pack_chunk(part)
        np.testing.assert_array_equal(table[0], np.array(js_table, dtype=np.float32))
        np.testing.assert_array_equal(words, np.array(js_words, dtype=np.uint32))


def test_decoder_matches_a_port_of_the_published_reader() -> None:
    rng = np.random.default_rng(4)
    words = rng.integers(0, 2**32, (600, 4), dtype=np.uint64).astype(np.uint32)
    words[:3, 3] &= 0xFFFFFF00  # alpha byte 0 ...
    words[3:6, 3] |= 0xFF  # ... and 255 are read as logits -40 and 40 (the engine's choice)
    lo = rng.normal(0, 3, (3, 9))
    hi = lo + rng.uniform(0, 5, (3, 9))
    table = np.concatenate([lo[:, 0:3], hi[:, 0:3], lo[:, 3:6], hi[:, 3:6], lo[:, 6:9], hi[:, 6:9]], axis=1)
    table = table.astype(np.float32)
    cloud = decode_chunks(table, words)
    for i in range(6, 600, 7):
        expected = js_decompress([float(v) for v in table[i // 256]], tuple(int(w) for w in words[i]))
        expected[-1] = max(-40.0, min(40.0, expected[-1]))  # infinite logits: the engine's +-40
        got = [*cloud.positions[i], *cloud.rotations[i], *cloud.scales[i], *cloud.sh_dc[i], cloud.opacities[i]]
        assert got == expected, i
    assert (cloud.opacities[:3] == -40).all() and (cloud.opacities[3:6] == 40).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_morton_order_matches_a_port_of_the_published_sort(seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = rng.uniform(-10, 10, (700, 3)).astype(np.float32)
    points[:400] = rng.normal(0, 1e-4, (400, 3))  # one cell at the top level: a run of 400 sorted again
    points[400:420] = points[400]  # identical points stop the recursion
    points[420:440, 2] = 5.0  # a flat axis
    expected = js_morton_order([tuple(float(v) for v in p) for p in points])
    np.testing.assert_array_equal(morton_order(points), expected)


def test_file_is_morton_sorted(tmp_path: Path) -> None:
    cloud = random_cloud(300, sh_degree=0, seed=2)
    path = tmp_path / "sorted.compressed.ply"
    write_compressed_ply(path, cloud)
    assert_round_trip(cloud, read_compressed_ply(path))
    first = path.read_bytes()
    write_compressed_ply(path, cloud.subset(np.arange(300)[::-1]))  # the same splats in another order ...
    assert path.read_bytes() == first  # ... give the same file (no two share a Morton code here)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_within_quantisation(tmp_path: Path, degree: int) -> None:
    cloud = random_cloud(1000, sh_degree=degree, seed=degree, normals=True)
    path = tmp_path / "scene.compressed.ply"
    write_compressed_ply(path, cloud)
    back = read_compressed_ply(path)
    assert_round_trip(cloud, back)


def test_reencoding_a_decoded_cloud_reproduces_the_words() -> None:
    cloud = cloud_in_order(random_cloud(1000, sh_degree=0, seed=9))
    table, words = encode_chunks(cloud)
    decoded = decode_chunks(table, words)
    table_again, words_again = encode_chunks(decoded)
    np.testing.assert_array_equal(table_again, table)
    np.testing.assert_array_equal(words_again[:, [0, 2, 3]], words[:, [0, 2, 3]])  # position, scale, colour
    # a rotation whose two largest components nearly tie may swap which one is dropped
    same = words_again[:, 1] == words[:, 1]
    assert same.mean() > 0.99
    again = decode_chunks(table_again, words_again)
    assert (rotation_angles(again.rotations[~same], decoded.rotations[~same]) <= ROTATION_ANGLE).all()


@TMP_SETTINGS
@given(cloud=clouds(max_size=20))
def test_round_trip_random_clouds(tmp_path: Path, cloud: SplatCloud) -> None:
    path = tmp_path / "random.compressed.ply"
    write_compressed_ply(path, cloud)
    assert_round_trip(cloud, read_compressed_ply(path))


@TMP_SETTINGS
@given(
    n=st.integers(0, 700),
    degree=st.integers(0, 3),
    seed=st.integers(0, 2**16),
    spread=st.sampled_from([1e-6, 1e-3, 1.0, 1e3]),
)
def test_round_trip_random_sizes_and_spreads(tmp_path: Path, n: int, degree: int, seed: int, spread: float) -> None:
    cloud = random_cloud(n, sh_degree=degree, seed=seed)
    cloud.positions *= np.float32(spread)
    path = tmp_path / "random.compressed.ply"
    write_compressed_ply(path, cloud)
    assert_round_trip(cloud, read_compressed_ply(path))


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_degree_reduction_on_write(tmp_path: Path, degree: int) -> None:
    cloud = random_cloud(50, sh_degree=3)
    path = tmp_path / "less.compressed.ply"
    write_compressed_ply(path, cloud, sh_degree=degree)
    back = read_compressed_ply(path)
    assert back.sh_degree == degree
    assert_round_trip(cloud.with_sh_degree(degree), back)


def test_cannot_raise_sh_degree(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot raise SH degree from 1 to 2"):
        write_compressed_ply(tmp_path / "x.compressed.ply", random_cloud(3, sh_degree=1), sh_degree=2)


def test_edge_values(tmp_path: Path) -> None:
    cloud = random_cloud(5, sh_degree=1)
    cloud.positions[:] = [1.5, -2.0, 3.0]  # all equal: an empty range, exact
    cloud.scales[0] = [-30.0, 25.0, 0.0]  # beyond the [-20, 20] chunk clamp
    cloud.rotations[1] = 0.0  # a zero quaternion is the identity
    cloud.opacities[2:4] = [-100.0, 100.0]
    cloud.sh_rest[0, 0] = [-9.0, 9.0, 0.0]  # beyond [-4, 4]
    path = tmp_path / "edge.compressed.ply"
    write_compressed_ply(path, cloud)
    back = read_compressed_ply(path)
    back.validate()
    order = morton_order(cloud.positions)
    np.testing.assert_array_equal(order, np.arange(5))  # identical points keep their order
    np.testing.assert_array_equal(back.positions, cloud.positions)
    assert back.scales[0, 0] == -20.0 and back.scales[0, 1] == 20.0
    # the identity is not exactly representable: its three zeros come back as (512 / 1023 - 0.5) * sqrt 2
    assert 2e-3 < rotation_angles(back.rotations[1:2], np.array([[1.0, 0, 0, 0]]))[0] < ROTATION_ANGLE
    assert back.alphas()[2] < 1e-12 and back.alphas()[3] == 1.0
    np.testing.assert_array_equal(back.sh_rest[0, 0, :2], [-4.0, 4.0])


def test_empty_cloud_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "empty.compressed.ply"
    for degree in (0, 2):
        write_compressed_ply(path, SplatCloud.empty(degree))
        back = read_compressed_ply(path)
        assert len(back) == 0 and back.sh_degree == degree
        assert b"element chunk 0\n" in path.read_bytes()


def test_write_is_atomic_on_invalid_cloud(tmp_path: Path) -> None:
    path = tmp_path / "scene.compressed.ply"
    write_compressed_ply(path, random_cloud(3))
    before = path.read_bytes()
    bad = random_cloud(3)
    bad.positions[1, 0] = np.nan
    with pytest.raises(ValueError):
        write_compressed_ply(path, bad)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["scene.compressed.ply"]


# --------------------------------------------------------------------------- detection


def test_is_compressed_ply(tmp_path: Path) -> None:
    compressed, plain, junk = tmp_path / "a.ply", tmp_path / "b.ply", tmp_path / "c.ply"
    write_compressed_ply(compressed, random_cloud(10))
    write_splat_ply(plain, random_cloud(10))
    junk.write_bytes(b"not a ply at all")
    assert is_compressed_ply(compressed)
    assert not is_compressed_ply(plain)
    assert not is_compressed_ply(junk)
    with pytest.raises(FormatError, match="b.ply: compressed PLY has no 'chunk' element"):
        read_compressed_ply(plain)


# --------------------------------------------------------------------------- malformed files


@pytest.fixture(scope="module")
def good_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("good") / "good.compressed.ply"
    write_compressed_ply(path, random_cloud(300, sh_degree=1, seed=3))
    return path.read_bytes()


def edit_header(data: bytes, old: str, new: str) -> bytes:
    header, body = body_of(data)
    assert old.encode() in header
    return header.replace(old.encode(), new.encode(), 1) + body


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("format binary_little_endian", "format ascii", "must be binary, not ASCII"),
        ("property uint packed_position", "property float packed_position", "'vertex.packed_position' must be uint, not float"),
        ("property float min_x", "property double min_x", "'chunk.min_x' must be float, not double"),
        ("property uchar f_rest_3", "property float f_rest_3", "'sh.f_rest_3' must be uchar, not float"),
        ("property uint packed_scale", "property uint packed_scal", "lacks property packed_scale"),
        ("property float max_scale_z", "property float max_scale_w", "lacks property max_scale_z"),
        ("property float min_g", "property float min_gg", "lacks property min_g"),
        ("element chunk 2", "element chunk 3", "declares 3 chunks for 300 splats; expected 2"),
        ("element sh 300", "element sh 299", "'sh' element has 299 rows but there are 300 splats"),
        ("property uchar f_rest_8\n", "property uchar f_rest_8\nproperty uchar f_rest_9\n", "has 10 properties"),
        ("property uchar f_rest_8", "property uchar g_rest_8", "lacks property f_rest_8"),
        ("element sh 300", "element normals 300", "unexpected element 'normals'"),
        ("element chunk 2", "element block 2", "unexpected element 'block'"),
        ("property uint packed_color", "property list uchar uint packed_color", "has list properties"),
        ("element vertex 300", "element vertex 1000000000", "declares 2 chunks for 1000000000 splats"),
    ],
)  # fmt: skip
def test_malformed_headers(tmp_path: Path, good_file: bytes, old: str, new: str, message: str) -> None:
    path = tmp_path / "bad.ply"
    path.write_bytes(edit_header(good_file, old, new))
    with pytest.raises(FormatError, match=f"^bad.ply: .*{message}"):
        read_compressed_ply(path)


@pytest.mark.parametrize("count", [10**9, 10**30])
def test_huge_counts_fail_fast_before_allocating(tmp_path: Path, good_file: bytes, count: int) -> None:
    data = edit_header(good_file, "element vertex 300", f"element vertex {count}")
    data = edit_header(data, "element sh 300", f"element sh {count}")
    data = edit_header(data, "element chunk 2", f"element chunk {-(-count // 256)}")
    header, body = body_of(data)
    path = tmp_path / "huge.ply"
    path.write_bytes(header + body[:100])
    size = len(header) + 100
    started = time.perf_counter()
    with pytest.raises(FormatError, match=f"header declares {count} splats, .* but the file holds {size} bytes"):
        read_compressed_ply(path)
    assert time.perf_counter() - started < 1.0


def test_trailing_bytes_are_rejected(tmp_path: Path, good_file: bytes) -> None:
    path = tmp_path / "long.ply"
    path.write_bytes(good_file + b"\0")
    with pytest.raises(FormatError, match="followed by unexpected bytes"):
        read_compressed_ply(path)


@pytest.mark.parametrize("column", range(18))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_chunk_bounds(tmp_path: Path, good_file: bytes, column: int, bad: float) -> None:
    header, body = body_of(good_file)
    body = bytearray(body)
    body[72 + 4 * column : 76 + 4 * column] = struct.pack("<f", bad)  # the second chunk
    path = tmp_path / "nan.ply"
    path.write_bytes(header + bytes(body))
    with pytest.raises(FormatError, match=f"chunk 1 has a non-finite {CHUNK_FLOATS[column]}"):
        read_compressed_ply(path)


def test_every_truncation_raises_format_error(tmp_path: Path, good_file: bytes) -> None:
    path = tmp_path / "cut.ply"
    header, _ = body_of(good_file)
    cuts = [*range(0, len(header), 5), len(header) - 1, len(header), *range(len(header) + 1, len(good_file), 97)]
    for cut in cuts:
        path.write_bytes(good_file[:cut])
        with pytest.raises(FormatError):
            read_compressed_ply(path)


def read_or_format_error(path: Path) -> None:
    """Reading gives a valid cloud or a `FormatError`; anything else propagates and fails the test."""
    try:
        cloud = read_compressed_ply(path)
    except FormatError:
        return
    cloud.validate()


def test_byte_flips_in_header_raise_only_format_error(tmp_path: Path, good_file: bytes) -> None:
    header, _ = body_of(good_file)
    rng = np.random.default_rng(0)
    path = tmp_path / "flip.ply"
    for position in range(0, len(header), 3):  # every third byte, each with a random mask
        data = bytearray(good_file)
        data[position] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(data))
        read_or_format_error(path)


@TMP_SETTINGS
@given(data=st.data())
def test_byte_flips_in_body_give_a_valid_cloud_or_format_error(
    tmp_path: Path, good_file: bytes, data: st.DataObject
) -> None:
    header, body = body_of(good_file)
    body = bytearray(body)
    for _ in range(data.draw(st.integers(1, 8))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path / "flip.ply"
    path.write_bytes(header + bytes(body))
    read_or_format_error(path)


@TMP_SETTINGS
@given(garbage=st.binary(max_size=400), keep=st.integers(0, 1200))
def test_random_bytes_raise_only_format_error(tmp_path: Path, good_file: bytes, garbage: bytes, keep: int) -> None:
    path = tmp_path / "garbage.ply"
    path.write_bytes(good_file[:keep] + garbage)
    read_or_format_error(path)
