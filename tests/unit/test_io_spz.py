"""Tests for `splatstudio.io.spz`, Niantic's compressed ``.spz`` format (read v2-v4, write v3 and v4).

Quantisation stated per field for the cloud -> file -> cloud round trip (fb = fractional bits in the
header, 12 unless a coordinate reaches 2048; "clipped" = the value clamped to what the byte can hold):

* position: half a fixed-point step, ``2^-(fb + 1)`` (the float32 input times ``2^fb`` is exact);
* log scale: half a step of 1/16, i.e. 1/32, after clipping to [-10, 5.9375];
* alpha (``sigmoid(opacity)``): half a step, 0.5 / 255;
* colour (SH DC): half a step of 1 / (0.15 * 255), i.e. 0.0131, after clipping to +-3.33;
* SH, degree 1: half a bucket of 8/128 plus half of the 1/128 grid, 4.5/128; degree 2 and 3: 8.5/128
  (buckets of 16/128); after clipping to [-1, 1];
* rotation (smallest three): each stored component within half a step of sqrt(1/2)/511, which keeps
  the angle between the original and the decoded rotation below ``4 * sqrt(3) * step / 2`` = 0.0048 rad;
* normals are dropped.
"""

from __future__ import annotations

import gzip
import math
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import zstandard
from _clouds import clouds, random_cloud
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splatstudio.io.errors import FormatError
from splatstudio.io.spz import (
    FLIP_P,
    FLIP_Q,
    FLIP_SH,
    MAX_POINTS,
    SpzHeader,
    decode_spz,
    decode_spz_header,
    decode_spz_with_header,
    encode_spz,
    read_spz,
    read_spz_header,
    write_spz,
)
from splatstudio.model.splatcloud import SplatCloud, sh_rest_count
from splatstudio.render.sh import sh_basis

TMP_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

LEGACY = "<IIIBBBB"  # magic, version, N, SH degree, fractional bits, flags, reserved
NGSP = "<IIIBBBBI12s"  # ... number of streams, TOC offset, reserved
MAGIC = 0x5053474E
NAMES = ("positions", "alphas", "colors", "scales", "rotations", "sh")

STEP_Q = math.sqrt(0.5) / 511
ANGLE_TOL = 4 * math.sqrt(3) * STEP_Q / 2
SCALE_TOL = 1 / 32 + 1e-5
ALPHA_TOL = 0.5 / 255 + 1e-6
DC_LIMIT = 127.5 / (0.15 * 255)
DC_TOL = 0.5 / (0.15 * 255) + 1e-5
SH1_TOL = 4.5 / 128 + 1e-6
SH_REST_TOL = 8.5 / 128 + 1e-6


# --------------------------------------------------------------------------- helpers


def legacy_file(body: bytes, n: int, version: int = 3, degree: int = 0, bits: int = 12, flags: int = 0) -> bytes:
    """A version 1-3 file: gzip of the 16-byte header and `body`."""
    return gzip.compress(struct.pack(LEGACY, MAGIC, version, n, degree, bits, flags, 0) + body)


def ngsp_file(
    streams: list[bytes],
    n: int,
    degree: int = 0,
    bits: int = 12,
    flags: int = 0,
    extensions: bytes = b"",
    sizes: list[int] | None = None,
    num_streams: int | None = None,
    version: int = 4,
) -> bytes:
    """A version 4 file with the given raw streams, zstd-compressed; `sizes` overrides the TOC's sizes."""
    chunks = [zstandard.ZstdCompressor(level=3).compress(s) for s in streams]
    sizes = [len(s) for s in streams] if sizes is None else sizes
    count = len(chunks) if num_streams is None else num_streams
    header = struct.pack(NGSP, MAGIC, version, n, degree, bits, flags, count, 32 + len(extensions), bytes(12))
    toc = b"".join(struct.pack("<QQ", len(c), s) for c, s in zip(chunks, sizes, strict=True))
    return header + extensions + toc + b"".join(chunks)


def ngsp_streams(data: bytes) -> tuple[tuple, dict[str, np.ndarray]]:
    """Parse an NGSP file independently of the module: (header fields, raw streams by name)."""
    fields = struct.unpack_from(NGSP, data)
    count, toc = fields[6], fields[7]
    offset = toc + 16 * count
    raw = []
    for i in range(count):
        compressed, uncompressed = struct.unpack_from("<QQ", data, toc + 16 * i)
        out = zstandard.ZstdDecompressor().decompress(data[offset : offset + compressed])
        assert len(out) == uncompressed
        raw.append(np.frombuffer(out, dtype=np.uint8))
        offset += compressed
    assert offset == len(data)
    names = [name for name in NAMES if name != "sh" or count == 6]
    return fields, dict(zip(names, raw, strict=True))


def legacy_streams(data: bytes) -> tuple[tuple, dict[str, np.ndarray]]:
    body = gzip.decompress(data)
    fields = struct.unpack_from(LEGACY, body)
    n, degree = fields[2], fields[3]
    k = sh_rest_count(degree)
    sizes = (9 * n, n, 3 * n, 3 * n, 4 * n, 3 * k * n)
    raw, offset = {}, 16
    for name, size in zip(NAMES, sizes, strict=True):
        raw[name] = np.frombuffer(body, dtype=np.uint8, count=size, offset=offset)
        offset += size
    assert offset == len(body)
    return fields, raw


def int24(values: list[int]) -> bytes:
    return b"".join(struct.pack("<i", v)[:3] for v in values)


def smallest_three(comp_bytes: bytes) -> np.ndarray:
    """Decode one smallest-three rotation per the published layout: (x, y, z, w)."""
    comp = struct.unpack("<I", comp_bytes)[0]
    largest = comp >> 30
    q = [0.0] * 4
    others = [i for i in range(4) if i != largest]
    for shift, i in zip((20, 10, 0), others, strict=True):
        field = (comp >> shift) & 1023
        q[i] = (-1 if field >> 9 else 1) * math.sqrt(0.5) * (field & 511) / 511
    q[largest] = math.sqrt(max(0.0, 1 - sum(v * v for v in q)))
    return np.array(q)


def rotation_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotation_angles(a: SplatCloud, b: SplatCloud) -> np.ndarray:
    dot = np.abs(np.einsum("ij,ij->i", a.normalized_rotations().astype(np.float64), b.normalized_rotations()))
    return 2 * np.arccos(np.clip(dot, 0.0, 1.0))


def assert_round_trip(cloud: SplatCloud, back: SplatCloud, bits: int = 12) -> None:
    assert len(back) == len(cloud) and back.sh_degree == cloud.sh_degree and back.normals is None
    assert np.abs(back.positions - cloud.positions).max(initial=0) <= 2.0 ** -(bits + 1)
    assert np.abs(back.scales - np.clip(cloud.scales, -10, 5.9375)).max(initial=0) <= SCALE_TOL
    assert np.abs(back.alphas() - cloud.alphas()).max(initial=0) <= ALPHA_TOL
    assert np.abs(back.sh_dc - np.clip(cloud.sh_dc, -DC_LIMIT, DC_LIMIT)).max(initial=0) <= DC_TOL
    sh_error = np.abs(back.sh_rest - np.clip(cloud.sh_rest, -1, 1))
    assert sh_error[:, :3].max(initial=0) <= SH1_TOL
    assert sh_error[:, 3:].max(initial=0) <= SH_REST_TOL
    assert rotation_angles(cloud, back).max(initial=0) <= ANGLE_TOL
    back.validate()


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_within_quantisation(tmp_path: Path, version: int, degree: int) -> None:
    cloud = random_cloud(500, sh_degree=degree, seed=degree, normals=True)
    path = tmp_path / "scene.spz"
    write_spz(path, cloud, version=version)
    header = read_spz_header(path)
    assert header == SpzHeader(version, 500, degree, 12, 0, "gzip" if version == 3 else "ngsp")
    assert_round_trip(cloud, read_spz(path))


@TMP_SETTINGS
@given(cloud=clouds(max_size=20), version=st.sampled_from([3, 4]))
def test_round_trip_random_clouds(cloud: SplatCloud, version: int) -> None:
    back, header = decode_spz_with_header(encode_spz(cloud, version=version), "random.spz")
    largest, bits = float(np.abs(cloud.positions).max(initial=0)), header.fractional_bits
    fits = [math.floor(largest * 2.0**b + 0.5) < 1 << 23 for b in range(13)]
    assert fits[bits] and (bits == 12 or not fits[bits + 1])  # 12, or the most that fit 24 bits
    assert_round_trip(cloud, back, header.fractional_bits)


def test_decoded_values_re_encode_to_the_same_bytes() -> None:
    cloud = random_cloud(2000, sh_degree=3, seed=11)
    for version in (3, 4):
        data = encode_spz(cloud, version=version)
        assert encode_spz(cloud, version=version) == data  # deterministic
        back = decode_spz(data)
        again = encode_spz(back, version=version)
        parse = legacy_streams if version == 3 else ngsp_streams
        first, second = parse(data)[1], parse(again)[1]
        for name in ("positions", "alphas", "colors", "scales", "sh"):
            np.testing.assert_array_equal(first[name], second[name], err_msg=name)
        # rotations: the same up to near-ties of the largest component (same rotation, other bytes)
        assert (first["rotations"].view("<u4") == second["rotations"].view("<u4")).mean() > 0.98
        assert rotation_angles(back, decode_spz(again)).max() <= ANGLE_TOL


def test_sh_degree_option_drops_bands(tmp_path: Path) -> None:
    cloud = random_cloud(50, sh_degree=3, seed=1)
    path = tmp_path / "low.spz"
    write_spz(path, cloud, sh_degree=1)
    back = read_spz(path)
    assert back.sh_degree == 1
    np.testing.assert_allclose(back.sh_rest, np.clip(cloud.sh_rest[:, :3], -1, 1), atol=SH1_TOL)
    write_spz(path, random_cloud(5, sh_degree=0), sh_degree=3)  # never adds bands
    assert read_spz(path).sh_degree == 0
    with pytest.raises(ValueError, match="SH degree must be 0..3"):
        encode_spz(cloud, sh_degree=4)
    with pytest.raises(ValueError, match="version 2 cannot be written"):
        encode_spz(cloud, version=2)


def test_compression_level_changes_only_the_compressed_bytes(tmp_path: Path) -> None:
    cloud = random_cloud(300, sh_degree=2, seed=8)
    path = tmp_path / "fast.spz"
    write_spz(path, cloud, level=1)
    assert path.read_bytes() != encode_spz(cloud)
    assert ngsp_streams(path.read_bytes())[1].keys() == ngsp_streams(encode_spz(cloud))[1].keys()
    for name, raw in ngsp_streams(path.read_bytes())[1].items():
        np.testing.assert_array_equal(raw, ngsp_streams(encode_spz(cloud))[1][name])
    assert_round_trip(cloud, read_spz(path))


def test_empty_cloud(tmp_path: Path) -> None:
    for version in (3, 4):
        path = tmp_path / f"empty{version}.spz"
        write_spz(path, SplatCloud.empty(2), version=version)
        back = read_spz(path)
        assert len(back) == 0 and back.sh_degree == 2
    assert (tmp_path / "empty4.spz").stat().st_size == 32  # header, no TOC entries, no streams


def test_large_coordinates_use_fewer_fractional_bits() -> None:
    cloud = random_cloud(10, sh_degree=0, seed=3)
    cloud.positions[0] = [5000.0, -3.0, 0.1]
    back, header = decode_spz_with_header(encode_spz(cloud))
    assert header.fractional_bits == 10  # 5000 * 2^10 < 2^23 <= 5000 * 2^11
    assert_round_trip(cloud, back, 10)
    cloud.positions[0, 0] = 2.0e7
    with pytest.raises(ValueError, match="does not fit the 24-bit SPZ position"):
        encode_spz(cloud)


def test_zero_quaternion_is_written_as_identity() -> None:
    cloud = random_cloud(2, sh_degree=0)
    cloud.rotations[0] = 0
    back = decode_spz(encode_spz(cloud))
    np.testing.assert_allclose(back.rotations[0], [1, 0, 0, 0], atol=1e-6)


def test_antialiased_flag() -> None:
    data = encode_spz(random_cloud(3, sh_degree=0), antialiased=True)
    assert data[14] == 0x1 and decode_spz_header(data).antialiased
    assert not decode_spz_header(encode_spz(random_cloud(3, sh_degree=0), version=3)).antialiased
    legacy = encode_spz(random_cloud(3, sh_degree=0), version=3, antialiased=True)
    assert gzip.decompress(legacy)[14] == 0x1 and decode_spz_header(legacy).antialiased


def test_write_is_atomic_on_invalid_cloud(tmp_path: Path) -> None:
    path = tmp_path / "scene.spz"
    write_spz(path, random_cloud(3))
    before = path.read_bytes()
    bad = random_cloud(3)
    bad.scales[1, 2] = np.nan
    with pytest.raises(ValueError):
        write_spz(path, bad)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["scene.spz"]


# --------------------------------------------------------------------------- byte layout


def one_splat() -> SplatCloud:
    return SplatCloud(
        positions=[[1.0, 2.0, -3.0]],
        scales=[[0.0, -10.0, 1.5]],
        rotations=[[2.0, 0.0, 0.0, 0.0]],  # identity, unnormalised
        opacities=[0.0],
        sh_dc=[[0.0, 1.0, -1.0]],
        sh_rest=[[[0.5, -0.25, 0.0], [0.03, 0.0, 1.0], [-1.0, 0.1, 0.2]]],
    )


# Expected bytes of `one_splat`, from the published encoding, in the PLY's own frame (as the reference with
# CoordinateSystem::UNSPECIFIED, its ply_to_spz tool and splat-transform store it).
ONE_SPLAT = {
    "positions": int24([4096, 8192, -12288]),  # (1, 2, -3) * 2^12
    "alphas": bytes([128]),  # sigmoid(0) * 255 = 127.5, rounded away from zero
    "colors": bytes([128, 166, 89]),  # dc * 38.25 + 127.5 = 127.5, 165.75, 89.25
    "scales": bytes([160, 0, 184]),  # (log s + 10) * 16
    "rotations": struct.pack("<I", 3 << 30),  # largest = w (index 3), the others zero
    # round(x * 128) + 128, then to the nearest multiple of the bucket, 8 (ties up), at most 255:
    # 0.5, -0.25, 0 -> 192, 96, 128 | 0.03, 0, 1 -> 132 -> 136, 128, 256 -> 255 | -1, 0.1, 0.2 -> 0, 141 -> 144, 154 -> 152
    "sh": bytes([192, 96, 128, 136, 128, 255, 0, 144, 152]),
}


def test_encoder_writes_the_published_v3_layout() -> None:
    data = encode_spz(one_splat(), version=3)
    assert data[:2] == b"\x1f\x8b"
    body = gzip.decompress(data)
    assert struct.unpack_from(LEGACY, body) == (MAGIC, 3, 1, 1, 12, 0, 0)
    assert body[:4] == b"NGSP"
    assert body[16:] == b"".join(ONE_SPLAT[name] for name in NAMES)


def test_encoder_writes_the_published_v4_layout() -> None:
    data = encode_spz(one_splat(), version=4)
    assert data[:4] == b"NGSP"
    fields, raw = ngsp_streams(data)
    assert fields == (MAGIC, 4, 1, 1, 12, 0, 6, 32, bytes(12))
    for name in NAMES:
        assert raw[name].tobytes() == ONE_SPLAT[name], name


def test_rotations_are_normalised_in_float32_like_the_reference() -> None:
    """Quaternions whose packed bytes depend on float32 rounding in ``normalized``; the expected words
    come from the reference's ``packQuaternionSmallestThree`` compiled from C++ (float64 normalisation
    gives 0xCF6F0655, 0xEFDD558B and 0x0759B57D)."""
    cloud = random_cloud(3, sh_degree=0)
    cloud.rotations[:] = [
        [-1.929218053817749, -0.9440128803253174, -1.725536584854126, -0.3246627151966095],
        [-1.6557217836380005, 0.972310483455658, -1.3130849599838257, 1.5198850631713867],
        [-0.9188805222511292, -1.4269438982009888, 0.28220638632774353, -0.2637377679347992],
    ]
    # the reference's words were made with the RDF -> RUB conversion (from = RDF)
    words = ngsp_streams(encode_spz(cloud, rub=True))[1]["rotations"].view("<u4")
    assert [hex(w) for w in words] == ["0xcf6f0a55", "0xefdd598b", "0x759b57e"]


@pytest.mark.parametrize(("degree", "streams"), [(0, 5), (2, 6)])
def test_v4_header_and_table_of_contents(degree: int, streams: int) -> None:
    n = 7
    data = encode_spz(random_cloud(n, sh_degree=degree, seed=2), antialiased=True)
    magic, version, count, deg, bits, flags, num, toc, reserved = struct.unpack_from(NGSP, data)
    assert (magic, version, count, deg, bits, flags, num, toc, reserved) == (
        MAGIC, 4, n, degree, 12, 1, streams, 32, bytes(12)
    )  # fmt: skip
    entries = [struct.unpack_from("<QQ", data, 32 + 16 * i) for i in range(streams)]
    expected = [9 * n, n, 3 * n, 3 * n, 4 * n, 3 * sh_rest_count(degree) * n][:streams]
    assert [u for _, u in entries] == expected
    assert 32 + 16 * streams + sum(c for c, _ in entries) == len(data)
    offset = 32 + 16 * streams
    for compressed, uncompressed in entries:  # each stream is one zstd frame of the stated size
        frame = data[offset : offset + compressed]
        assert zstandard.frame_content_size(frame) == uncompressed
        assert len(zstandard.ZstdDecompressor().decompress(frame)) == uncompressed
        offset += compressed


def hand_built_body(bits: int) -> tuple[bytes, SplatCloud]:
    """Two splats of SH degree 1 as raw arrays (v3+ rotations) and what they decode to (no frame change)."""
    half = 2.0**-bits
    body = b"".join(
        [
            int24([1 << bits, -512, 0x7FFFFF]) + int24([-(1 << 23), 3, 0]),  # positions
            bytes([255, 0]),  # alphas
            bytes([0, 255, 128, 64, 192, 1]),  # colors
            bytes([0, 160, 255, 16, 80, 96]),  # scales
            struct.pack("<I", 3 << 30 | 511 << 20) + struct.pack("<I", 1 << 30 | 511),  # rotations
            bytes([0, 255, 128, 64, 192, 128, 128, 128, 144]) + bytes([128] * 9),  # sh
        ]
    )
    s = math.sqrt(0.5)
    expected = SplatCloud(
        positions=[[1.0, -512 * half, 0x7FFFFF * half], [-(1 << 23) * half, 3 * half, 0.0]],
        scales=[[-10.0, 0.0, 255 / 16 - 10], [-9.0, -5.0, -4.0]],
        # A: largest w, x = sqrt(1/2); B: largest y, w = sqrt(1/2)
        rotations=[[s, s, 0, 0], [s, 0, s, 0]],
        opacities=[18.42068, -18.42068],  # logit(1 -+ 1e-8)
        sh_dc=np.array([[0, 255, 128], [64, 192, 1]]) / 255 / 0.15 - 0.5 / 0.15,
        sh_rest=[[[-1.0, 127 / 128, 0.0], [-0.5, 0.5, 0.0], [0.0, 0.0, 0.125]], np.zeros((3, 3))],
    )
    return body, expected


def assert_decodes_to(cloud: SplatCloud, expected: SplatCloud) -> None:
    np.testing.assert_array_equal(cloud.positions, expected.positions)
    np.testing.assert_array_equal(cloud.scales, expected.scales)
    np.testing.assert_allclose(cloud.rotations, expected.rotations, atol=2e-7)
    np.testing.assert_allclose(cloud.opacities, expected.opacities, rtol=1e-5)
    np.testing.assert_allclose(cloud.sh_dc, expected.sh_dc, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(cloud.sh_rest, expected.sh_rest)
    np.testing.assert_allclose(cloud.alphas(), [1.0, 0.0], atol=1e-7)  # alpha bytes 255 and 0


@pytest.mark.parametrize("bits", [12, 10, 0])
def test_hand_built_v3_file(bits: int) -> None:
    body, expected = hand_built_body(bits)
    data = legacy_file(body, 2, version=3, degree=1, bits=bits, flags=1)
    assert decode_spz_header(data) == SpzHeader(3, 2, 1, bits, 1, "gzip")
    assert_decodes_to(decode_spz(data), expected)


def test_hand_built_v4_file_with_extensions() -> None:
    body, expected = hand_built_body(12)
    sizes = [18, 2, 6, 6, 8, 18]
    streams, offset = [], 0
    for size in sizes:
        streams.append(body[offset : offset + size])
        offset += size
    extension = struct.pack("<II", 0xADBE0002, 12) + struct.pack("<3f", -0.5, 0.5, 1.0)  # skipped
    data = ngsp_file(streams, 2, degree=1, flags=0x3, extensions=extension)
    header = decode_spz_header(data)
    assert header.antialiased and header.has_extensions and header.version == 4
    assert_decodes_to(decode_spz(data), expected)


def test_hand_built_v2_file() -> None:
    """Version 2: rotations are three bytes x, y, z with ``q = b / 127.5 - 1`` and w >= 0 rebuilt."""
    body = b"".join(
        [
            int24([4096, 4096, -4096]) + int24([0, 0, 0]),
            bytes([200, 10]),
            bytes([128, 128, 128, 0, 0, 0]),
            bytes([160, 160, 160, 0, 0, 0]),
            bytes([218, 128, 37]) + bytes([128, 128, 128]),
        ]
    )
    cloud = decode_spz(legacy_file(body, 2, version=2))
    np.testing.assert_array_equal(cloud.positions, [[1, 1, -1], [0, 0, 0]])
    xyz = np.array([218, 128, 37]) / 127.5 - 1  # 0.7098, 0.0039, -0.7098: |xyz| > 1, so w = 0
    np.testing.assert_allclose(cloud.rotations[0], [0.0, *xyz], atol=1e-6)
    small = 0.5 / 127.5  # 128 / 127.5 - 1
    np.testing.assert_allclose(cloud.rotations[1], [math.sqrt(1 - 3 * small**2), small, small, small], atol=1e-6)
    turned = decode_spz(legacy_file(body, 2, version=2), rub=True)
    np.testing.assert_array_equal(turned.positions, [[1, -1, 1], [0, 0, 0]])
    np.testing.assert_allclose(turned.rotations[0], [0.0, xyz[0], -xyz[1], -xyz[2]], atol=1e-6)
    np.testing.assert_allclose(cloud.alphas(), [200 / 255, 10 / 255], atol=1e-6)
    assert cloud.sh_degree == 0


def test_degree_four_files_keep_bands_one_to_three() -> None:
    n = 2
    sh = np.arange(n * 24 * 3, dtype=np.uint8).tobytes()
    streams = [bytes(9 * n), bytes(n), bytes(3 * n), bytes(3 * n), struct.pack("<I", 3 << 30) * n, sh]
    cloud = decode_spz(ngsp_file(streams, n, degree=4))
    assert cloud.sh_degree == 3
    raw = np.frombuffer(sh, dtype=np.uint8).reshape(n, 24, 3)[:, :15].astype(np.float32)
    np.testing.assert_array_equal(cloud.sh_rest, (raw - 128) / 128)
    np.testing.assert_array_equal(decode_spz(ngsp_file(streams, n, degree=4), rub=True).sh_rest,
                                  (raw - 128) / 128 * FLIP_SH[:15, None])


# --------------------------------------------------------------------------- coordinate system


def test_the_payload_keeps_the_ply_frame_by_default() -> None:
    """As the reference does with CoordinateSystem::UNSPECIFIED (its ply_to_spz tool, splat-transform, Spark):
    +y in the PLY is +y in the file. tests/interop/test_splat_transform.py checks it against splat-transform."""
    cloud = random_cloud(3, sh_degree=1)
    cloud.positions[:] = [[0, 1, 0], [0, 0, 1], [1, 0, 0]]
    cloud.rotations[:] = [[0.5, 0.5, 0.5, 0.5], [0, 0, 1, 0], [1, 0, 0, 0]]
    cloud.sh_rest[:] = 0.5  # exact in the buckets
    for version, parse in ((4, ngsp_streams), (3, legacy_streams)):
        raw = parse(encode_spz(cloud, version=version))[1]
        assert raw["positions"].tobytes() == int24([0, 4096, 0, 0, 0, 4096, 4096, 0, 0])
        assert (raw["sh"] == 192).all()  # 0.5 * 128 + 128, no sign changed
        x, y, z, w = smallest_three(raw["rotations"][:4].tobytes())
        np.testing.assert_allclose([w, x, y, z], [0.5, 0.5, 0.5, 0.5], atol=STEP_Q)
        back = decode_spz(encode_spz(cloud, version=version))
        np.testing.assert_array_equal(back.positions, cloud.positions)
        np.testing.assert_array_equal(back.sh_rest, cloud.sh_rest)


def test_rub_files_are_the_scene_turned_half_way_about_x() -> None:
    """``rub=True`` writes what the reference writes with ``from = RDF`` (and SplatStudio wrote before it kept
    the PLY frame): +y in the PLY is -y in the file; reading with ``rub=True`` turns it back."""
    cloud = random_cloud(3, sh_degree=0)
    cloud.positions[:] = [[0, 1, 0], [0, 0, 1], [1, 0, 0]]
    for version, parse in ((4, ngsp_streams), (3, legacy_streams)):
        data = encode_spz(cloud, version=version, rub=True)
        raw = parse(data)[1]["positions"]
        assert raw.tobytes() == int24([0, -4096, 0, 0, 0, -4096, 4096, 0, 0])
        np.testing.assert_array_equal(decode_spz(data, rub=True).positions, cloud.positions)
        np.testing.assert_array_equal(decode_spz(data).positions, cloud.positions * [1, -1, -1])


def test_flip_tables_are_a_half_turn_about_x() -> None:
    turn = np.diag([1.0, -1.0, -1.0])  # RDF <-> RUB
    np.testing.assert_array_equal(FLIP_P, np.diag(turn))
    np.testing.assert_array_equal(FLIP_Q, [1, -1, -1])
    # Every SH basis function of degree 1..3 evaluated at the turned direction equals its value at the
    # original direction times its flip, so flipped coefficients give the same colour in both frames.
    d = np.random.default_rng(0).normal(size=(200, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    np.testing.assert_allclose(sh_basis(d @ turn.T, 3)[:, 1:], sh_basis(d, 3)[:, 1:] * FLIP_SH[:15], atol=1e-6)


def test_payload_rotations_and_sh_are_those_of_the_turned_scene() -> None:
    cloud = random_cloud(40, sh_degree=3, seed=9)
    cloud.sh_rest[:] = np.random.default_rng(1).choice([-0.5, 0.5], size=cloud.sh_rest.shape)  # exact in buckets
    raw = ngsp_streams(encode_spz(cloud, rub=True))[1]
    turn = np.diag([1.0, -1.0, -1.0])
    rotations = raw["rotations"].reshape(-1, 4)
    for q, packed in zip(cloud.rotations, rotations, strict=True):
        x, y, z, w = smallest_three(packed.tobytes())
        np.testing.assert_allclose(
            rotation_matrix(np.array([w, x, y, z])), turn @ rotation_matrix(q) @ turn, atol=4 * STEP_Q * 3
        )
    stored = (raw["sh"].reshape(40, 15, 3).astype(np.float64) - 128) / 128
    np.testing.assert_array_equal(stored, cloud.sh_rest * FLIP_SH[:15, None])
    # so the view-dependent colour is unchanged: SH_rub(turned direction) == SH_ply(direction)
    d = np.random.default_rng(2).normal(size=(40, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    ply = np.einsum("nk,nkc->nc", sh_basis(d, 3)[:, 1:], cloud.sh_rest)
    rub = np.einsum("nk,nkc->nc", sh_basis(d @ turn.T, 3)[:, 1:], stored)
    np.testing.assert_allclose(rub, ply, atol=1e-5)


# --------------------------------------------------------------------------- malformed files


def small_files() -> dict[str, bytes]:
    cloud = random_cloud(20, sh_degree=1, seed=4)
    return {"v3": encode_spz(cloud, version=3), "v4": encode_spz(cloud, version=4)}


@pytest.mark.parametrize("kind", ["v3", "v4"])
def test_every_truncation_is_a_format_error(kind: str) -> None:
    data = small_files()[kind]
    for cut in range(0, len(data)):
        with pytest.raises(FormatError):
            decode_spz(data[:cut], "cut.spz")


@pytest.mark.parametrize("kind", ["v3", "v4"])
def test_random_byte_flips_give_a_valid_cloud_or_format_error(kind: str) -> None:
    data = small_files()[kind]
    rng = np.random.default_rng(5)
    errors = 0
    for _ in range(400):
        mutated = bytearray(data)
        for position in rng.integers(0, len(data), rng.integers(1, 4)):
            mutated[position] ^= int(rng.integers(1, 256))
        try:
            cloud = decode_spz(bytes(mutated), "flipped.spz")
        except FormatError:
            errors += 1
            continue
        cloud.validate()
    assert errors > 0


@TMP_SETTINGS
@given(data=st.binary(max_size=200), prefix=st.sampled_from([b"", b"NGSP", b"\x1f\x8b\x08\x00"]))
def test_random_bytes_give_a_valid_cloud_or_format_error(data: bytes, prefix: bytes) -> None:
    try:
        cloud = decode_spz(prefix + data, "random.spz")
    except FormatError:
        return
    cloud.validate()


def raises_quickly_and_small(data: bytes, match: str, limit_bytes: int = 4 << 20) -> None:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(FormatError, match=match):
            decode_spz(data, "bad.spz")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 5.0
    assert peak < limit_bytes, peak


def test_header_claiming_a_billion_points() -> None:
    big = 10**9
    raises_quickly_and_small(ngsp_file([], big, num_streams=6), f"claims {big} splats, more than the {MAX_POINTS}")
    raises_quickly_and_small(legacy_file(b"", big), f"claims {big} splats, more than")
    # within MAX_POINTS, but more than a tiny file can hold
    raises_quickly_and_small(ngsp_file([b"x"], 10**6), r"claims 1000000 splats but a \d+-byte file holds at most")
    raises_quickly_and_small(legacy_file(bytes(100), 10**6), "cannot hold that much")


@pytest.fixture(scope="module")
def zeros_gzip() -> bytes:
    """16 MiB of zeros after a v3 header claiming 1000 splats: about 16 KiB of gzip."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [deflate.compress(struct.pack(LEGACY, MAGIC, 3, 1000, 0, 12, 0, 0))]
    parts += [deflate.compress(bytes(1 << 20)) for _ in range(16)]
    return b"".join([*parts, deflate.flush()])


def test_gzip_bomb(zeros_gzip: bytes) -> None:
    assert len(zeros_gzip) < 64 << 10
    raises_quickly_and_small(zeros_gzip, "holds more data than the header calls for")


def test_zstd_bomb() -> None:
    n = 1000
    streams = [bytes(9 * n), bytes(n), bytes(3 * n), bytes(3 * n), bytes(4 * n)]
    bomb = zstandard.ZstdCompressor(level=1).compress(bytes(64 << 20))  # 64 MiB in about 2 KiB
    chunks = [zstandard.ZstdCompressor(level=3).compress(s) for s in streams]
    chunks[0] = bomb
    header = struct.pack(NGSP, MAGIC, 4, n, 0, 12, 0, 5, 32, bytes(12))
    toc = b"".join(struct.pack("<QQ", len(c), len(s)) for c, s in zip(chunks, streams, strict=True))
    raises_quickly_and_small(header + toc + b"".join(chunks), "'positions' holds more than the 9000 bytes")


def test_zstd_stream_without_content_size_is_read_incrementally() -> None:
    n = 3
    streams = [bytes(9 * n), bytes(n), bytes(3 * n), bytes(3 * n), struct.pack("<I", 3 << 30) * n]
    chunks = [zstandard.ZstdCompressor(write_content_size=False).compress(s) for s in streams]
    header = struct.pack(NGSP, MAGIC, 4, n, 0, 12, 0, 5, 32, bytes(12))
    toc = b"".join(struct.pack("<QQ", len(c), len(s)) for c, s in zip(chunks, streams, strict=True))
    cloud = decode_spz(header + toc + b"".join(chunks))
    assert len(cloud) == n and (cloud.positions == 0).all()


def v4_parts(n: int = 2) -> list[bytes]:
    return [bytes(9 * n), bytes(n), bytes(3 * n), bytes(3 * n), struct.pack("<I", 3 << 30) * n]


def v3_body(n: int = 2) -> bytes:
    return b"".join(v4_parts(n))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty file"),
        (b"PK\x03\x04 not an spz", "not an SPZ file"),
        (b"NGSP\x04\x00", "less than the 32-byte NGSP header"),
        (gzip.compress(b"NGSP"), "holds only 4 bytes, less than the 16-byte SPZ header"),
        (gzip.compress(b"XXXX" + bytes(12)), "does not start with the SPZ magic"),
        (legacy_file(v3_body(), 2, version=1), "version 1 .* not supported"),
        (legacy_file(v3_body(), 2, version=5), "unsupported SPZ version 5"),
        (ngsp_file(v4_parts(), 2, version=3), "version 3 in an NGSP"),
        (ngsp_file(v4_parts(), 2, version=7), "unsupported SPZ version 7"),
        (legacy_file(v3_body(), 2, degree=5), "SH degree 5 in the header; SPZ allows 0..4"),
        (ngsp_file(v4_parts(), 2, bits=25), "25 fractional position bits"),
        (ngsp_file(v4_parts(), 2, num_streams=6), "header lists 6 streams; 2 splats of SH degree 0 need 5"),
        (ngsp_file(v4_parts(), 2, sizes=[18, 2, 6, 6, 9]), "stream 'rotations' holds 9 bytes; 2 splats need 8"),
        (ngsp_file(v4_parts(), 2) + b"\0", "1 trailing bytes after the last stream"),
        (ngsp_file(v4_parts(), 2)[:-1], "stream 'rotations' runs past the end of the file"),
        (legacy_file(v3_body()[:-1], 2), "missing data: the stream holds 39 bytes"),
        (legacy_file(v3_body() + b"\0", 2), "more data than the header calls for"),
        (legacy_file(v3_body(), 2) + b"junk", "4 trailing bytes after the gzip stream"),
        (legacy_file(v3_body(), 2)[:-6], "truncated gzip stream"),
        (legacy_file(v3_body(), 2)[:-8] + b"\0\0\0\0" + legacy_file(v3_body(), 2)[-4:], "corrupt gzip stream"),
    ],
)
def test_malformed_files_raise_format_error(data: bytes, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        decode_spz(data, "bad.spz")


def test_misplaced_table_of_contents() -> None:
    data = bytearray(ngsp_file(v4_parts(), 2))
    data[16:20] = struct.pack("<I", 8)
    with pytest.raises(FormatError, match="table of contents at byte 8"):
        decode_spz(bytes(data))
    data[16:20] = struct.pack("<I", 10_000)
    with pytest.raises(FormatError, match="truncated: the table of contents ends at byte"):
        decode_spz(bytes(data))


def test_corrupt_zstd_frame() -> None:
    data = bytearray(ngsp_file(v4_parts(), 2))
    data[32 + 5 * 16 : 32 + 5 * 16 + 4] = b"\0\0\0\0"  # clobber the first frame's magic
    with pytest.raises(FormatError, match="corrupt zstd stream 'positions'"):
        decode_spz(bytes(data))


def test_gzip_extension_records_after_the_arrays_are_skipped() -> None:
    extension = struct.pack("<II", 0xADBE0002, 12) + bytes(12)
    cloud = decode_spz(legacy_file(v3_body() + extension, 2, flags=0x2))
    assert len(cloud) == 2


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.spz"
    path.write_bytes(b"definitely not a splat")
    with pytest.raises(FormatError) as info:
        read_spz(path)
    assert str(info.value).startswith("broken.spz: not an SPZ file")
    with pytest.raises(FormatError, match="broken.spz"):
        read_spz_header(path)
