"""Tests for `splatstudio.io.splat`, the 32-byte-per-splat ``.splat`` format.

Quantisation stated per field for the cloud -> file -> cloud round trip:

* position: exact (float32 stored as is);
* scale: ``exp`` of the stored log scale is written exactly as float32, so the
  activated scale round-trips to float32 rounding of ``exp(log(s))``;
* colour and alpha: one 8-bit step, 1/255 (truncation, read back as bin centres);
* rotation: after normalising and choosing the sign, each component within
  2/128 (1/128 truncation plus renormalisation);
* SH degree > 0 coefficients and normals are dropped.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from _clouds import clouds, random_cloud
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splatstudio.io.errors import FormatError
from splatstudio.io.splat import RECORD_SIZE, read_splat, splat_sort_order, write_splat
from splatstudio.model.splatcloud import SH_C0, SplatCloud

TMP_SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
LAYOUT = "<3f3f4B4B"


def two_splats() -> SplatCloud:
    """A: volume 0.125 x alpha 0.5; B: volume 6 x alpha 0.88, so B must come first."""
    return SplatCloud(
        positions=[[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]],
        scales=np.log([[0.5, 0.5, 0.5], [1.0, 2.0, 3.0]]),
        rotations=[[1.0, -1.0, 0.5, 0.0], [0.0, 0.0, 0.0, 2.0]],
        opacities=[0.0, 2.0],
        sh_dc=[[0.0, 0.0, 0.0], [0.6 / SH_C0, -0.6 / SH_C0, -0.25 / SH_C0]],
        sh_rest=np.ones((2, 3, 3)),
    )


def test_bytes_follow_the_published_layout(tmp_path: Path) -> None:
    path = tmp_path / "two.splat"
    write_splat(path, two_splats())
    data = path.read_bytes()
    assert struct.calcsize(LAYOUT) == RECORD_SIZE == 32
    assert len(data) == 64
    first, second = struct.unpack(LAYOUT, data[:32]), struct.unpack(LAYOUT, data[32:])
    # B (volume x opacity 6 * 0.881) precedes A (0.125 * 0.5)
    assert first[0:3] == (-1.0, 0.5, 4.0)
    assert first[3:6] == pytest.approx((1.0, 2.0, 3.0), rel=1e-6)
    assert first[6:10] == (255, 0, 63, int(255 / (1 + np.exp(-2.0))))  # (1.1, -0.1, 0.25) clipped; 224
    assert first[10:14] == (128, 128, 128, 255)  # (0, 0, 0, 1) * 128 + 128, clipped
    assert second[0:3] == (1.0, 2.0, 3.0)
    assert second[3:6] == pytest.approx((0.5, 0.5, 0.5), rel=1e-6)
    assert second[6:10] == (127, 127, 127, 127)  # 0.5 * 255 = 127.5, truncated
    assert second[10:14] == (213, 42, 170, 128)  # (2, -2, 1, 0) / 3 * 128 + 128, truncated


def test_sort_order_is_descending_volume_times_opacity() -> None:
    cloud = random_cloud(200, seed=5)
    order = splat_sort_order(cloud)
    key = np.exp(cloud.scales.astype(np.float64).sum(axis=1)) / (1 + np.exp(-cloud.opacities.astype(np.float64)))
    assert (np.diff(key[order]) <= 1e-12 * key.max()).all()
    assert sorted(order) == list(range(200))


def test_file_is_sorted(tmp_path: Path) -> None:
    cloud = random_cloud(100, seed=2)
    path = tmp_path / "sorted.splat"
    write_splat(path, cloud)
    back = read_splat(path)
    np.testing.assert_array_equal(back.positions, cloud.positions[splat_sort_order(cloud)])


def assert_round_trip(cloud: SplatCloud, back: SplatCloud) -> None:
    order = splat_sort_order(cloud)
    sorted_cloud = cloud.subset(order)
    assert back.sh_degree == 0 and back.normals is None and len(back) == len(cloud)
    np.testing.assert_array_equal(back.positions, sorted_cloud.positions)
    np.testing.assert_allclose(back.activated_scales(), np.exp(sorted_cloud.scales), rtol=5e-7)  # float32 log + exp
    np.testing.assert_allclose(back.colors_rgb(), sorted_cloud.colors_rgb(), atol=1 / 255)
    np.testing.assert_allclose(back.alphas(), sorted_cloud.alphas(), atol=1 / 255)
    want = sorted_cloud.normalized_rotations()
    got = back.normalized_rotations()
    sign = np.where((want * got).sum(axis=1, keepdims=True) < 0, -1.0, 1.0)
    np.testing.assert_allclose(got * sign, want, atol=2 / 128)


def test_round_trip_within_quantisation(tmp_path: Path) -> None:
    cloud = random_cloud(500, sh_degree=3, seed=7)
    path = tmp_path / "scene.splat"
    write_splat(path, cloud)
    assert path.stat().st_size == 500 * 32
    assert_round_trip(cloud, read_splat(path))
    stored = np.frombuffer(path.read_bytes(), dtype="<f4").reshape(500, 8)
    ordered = cloud.subset(splat_sort_order(cloud))
    np.testing.assert_array_equal(stored[:, 0:3], ordered.positions)  # exact
    np.testing.assert_array_equal(stored[:, 3:6], np.exp(ordered.scales))  # exact float32 of exp


@TMP_SETTINGS
@given(cloud=clouds(max_size=20))
def test_round_trip_random_clouds(tmp_path: Path, cloud: SplatCloud) -> None:
    cloud.rotations[np.linalg.norm(cloud.rotations, axis=1) < 0.1] = [1, 0, 0, 0]  # ill-defined axis
    path = tmp_path / "random.splat"
    write_splat(path, cloud)
    assert_round_trip(cloud, read_splat(path))


def test_rewriting_a_read_file_reproduces_its_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    records = np.zeros(300, dtype=[("p", "<f4", 3), ("s", "<f4", 3), ("c", "u1", 4), ("r", "u1", 4)])
    records["p"] = rng.normal(size=(300, 3))
    records["s"] = np.exp(rng.normal(-3, 1, size=(300, 3)))
    records["c"] = rng.integers(0, 256, (300, 4))
    records["c"][:3, 3] = [0, 255, 1]  # opacity extremes stay finite
    records["r"] = [255, 128, 128, 128]  # identity rotations survive exactly
    original = tmp_path / "in.splat"
    original.write_bytes(records.tobytes())
    cloud = read_splat(original)
    cloud.validate()
    copy = tmp_path / "out.splat"
    write_splat(copy, cloud)
    back = np.frombuffer(copy.read_bytes(), dtype=records.dtype)
    order = splat_sort_order(cloud)
    for field in ("p", "c", "r"):
        np.testing.assert_array_equal(back[field], records[field][order], err_msg=field)
    np.testing.assert_allclose(back["s"], records["s"][order], rtol=1e-6)


def test_zero_scale_and_alpha_edges_decode_finite(tmp_path: Path) -> None:
    path = tmp_path / "edge.splat"
    path.write_bytes(
        struct.pack(LAYOUT, 0, 0, 0, 0.0, 1e-3, 5.0, 0, 255, 0, 0, 128, 128, 128, 128)
        + struct.pack(LAYOUT, 1, 1, 1, 1.0, 1.0, 1.0, 255, 255, 255, 255, 0, 0, 0, 0)
    )
    cloud = read_splat(path)
    cloud.validate()
    assert cloud.alphas()[0] < 1 / 255 and cloud.alphas()[1] == 1.0


def test_empty_file_is_an_empty_cloud(tmp_path: Path) -> None:
    path = tmp_path / "empty.splat"
    path.write_bytes(b"")
    assert len(read_splat(path)) == 0
    write_splat(path, SplatCloud.empty())
    assert path.read_bytes() == b""


@pytest.mark.parametrize("size", [1, 31, 33, 65])
def test_size_must_be_a_multiple_of_32(tmp_path: Path, size: int) -> None:
    path = tmp_path / "odd.splat"
    path.write_bytes(b"\0" * size)
    with pytest.raises(FormatError, match=f"odd.splat: size {size} bytes is not a multiple of the 32-byte"):
        read_splat(path)


@pytest.mark.parametrize(("offset", "field"), [(4, "position"), (16, "scale")])
def test_non_finite_floats_are_rejected(tmp_path: Path, offset: int, field: str) -> None:
    data = bytearray(struct.pack(LAYOUT, *([1.0] * 6), *([128] * 8)) * 3)
    data[32 + offset : 36 + offset] = struct.pack("<f", float("nan"))
    path = tmp_path / "nan.splat"
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=f"splat 1 has a non-finite {field}"):
        read_splat(path)


@TMP_SETTINGS
@given(data=st.binary(min_size=0, max_size=32 * 8))
def test_random_bytes_give_a_valid_cloud_or_format_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "random.splat"
    path.write_bytes(data)
    try:
        cloud = read_splat(path)
    except FormatError:
        return
    cloud.validate()


def test_write_is_atomic_on_invalid_cloud(tmp_path: Path) -> None:
    path = tmp_path / "scene.splat"
    write_splat(path, random_cloud(3))
    before = path.read_bytes()
    bad = random_cloud(3)
    bad.opacities[1] = np.inf
    with pytest.raises(ValueError):
        write_splat(path, bad)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["scene.splat"]
