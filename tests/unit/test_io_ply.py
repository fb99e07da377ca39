"""Tests for `splatstudio.io.ply`: 3DGS scene PLYs and plain point-cloud PLYs.

Files in unusual layouts are produced with the independent `plyfile` package.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from _clouds import clouds, random_cloud
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plyfile import PlyData, PlyElement

from splatstudio.io import ply as ply_module
from splatstudio.io.errors import FormatError
from splatstudio.io.ply import (
    read_points_ply,
    read_splat_ply,
    splat_ply_property_names,
    write_points_ply,
    write_splat_ply,
)
from splatstudio.model.splatcloud import SH_C0, SplatCloud

TMP_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def cloud_columns(cloud: SplatCloud) -> dict[str, np.ndarray]:
    """The reference 3DGS columns of `cloud`, by property name."""
    n, k = len(cloud), cloud.sh_rest.shape[1]
    columns = {name: cloud.positions[:, i] for i, name in enumerate("xyz")}
    columns |= {f"f_dc_{c}": cloud.sh_dc[:, c] for c in range(3)}
    columns |= {f"f_rest_{c * k + j}": cloud.sh_rest[:, j, c] for c in range(3) for j in range(k)}
    columns["opacity"] = cloud.opacities
    columns |= {f"scale_{i}": cloud.scales[:, i] for i in range(3)}
    columns |= {f"rot_{i}": cloud.rotations[:, i] for i in range(4)}
    assert len(columns) == 14 + 3 * k and n == len(cloud)
    return columns


def write_with_plyfile(path: Path, columns: dict[str, np.ndarray], text: bool = False, byte_order: str = "<") -> None:
    """Write `columns` (in dict order, each with its own dtype) as a vertex element."""
    n = len(next(iter(columns.values())))
    data = np.empty(n, dtype=[(name, byte_order + values.dtype.str[1:]) for name, values in columns.items()])
    for name, values in columns.items():
        data[name] = values
    PlyData([PlyElement.describe(data, "vertex")], text=text, byte_order=byte_order).write(str(path))


def assert_clouds_equal(a: SplatCloud, b: SplatCloud) -> None:
    for name in ("positions", "scales", "rotations", "opacities", "sh_dc", "sh_rest"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


# --------------------------------------------------------------------------- writing


def test_header_is_the_reference_layout(tmp_path: Path) -> None:
    path = tmp_path / "scene.ply"
    write_splat_ply(path, random_cloud(2, sh_degree=1))
    data = path.read_bytes()
    rest = "".join(f"property float f_rest_{j}\n" for j in range(9))
    expected = (
        "ply\n"
        "format binary_little_endian 1.0\n"
        "element vertex 2\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property float nx\nproperty float ny\nproperty float nz\n"
        "property float f_dc_0\nproperty float f_dc_1\nproperty float f_dc_2\n"
        f"{rest}"
        "property float opacity\n"
        "property float scale_0\nproperty float scale_1\nproperty float scale_2\n"
        "property float rot_0\nproperty float rot_1\nproperty float rot_2\nproperty float rot_3\n"
        "end_header\n"
    ).encode("ascii")
    assert data[: len(expected)] == expected
    assert len(data) == len(expected) + 2 * 4 * (3 + 3 + 3 + 9 + 1 + 3 + 4)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_property_names_per_degree(degree: int) -> None:
    names = splat_ply_property_names(degree)
    assert len(names) == 17 + 3 * [0, 3, 8, 15][degree]
    assert names[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert names[-8:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]


def test_f_rest_is_channel_major(tmp_path: Path) -> None:
    """File column f_rest_{c*K+k} holds sh_rest[:, k, c] (all of R, then G, then B)."""
    cloud = random_cloud(3, sh_degree=3)
    k = 15
    coefficient, channel = np.meshgrid(np.arange(k), np.arange(3), indexing="ij")
    cloud.sh_rest[:] = (100 * channel + coefficient).astype(np.float32)
    path = tmp_path / "rest.ply"
    write_splat_ply(path, cloud)
    vertex = PlyData.read(str(path))["vertex"]
    for c in range(3):
        for j in range(k):
            assert (vertex[f"f_rest_{c * k + j}"] == 100 * c + j).all()
    np.testing.assert_array_equal(read_splat_ply(path).sh_rest, cloud.sh_rest)


def test_plyfile_reads_what_we_write(tmp_path: Path) -> None:
    cloud = random_cloud(50, sh_degree=2, normals=True)
    path = tmp_path / "scene.ply"
    write_splat_ply(path, cloud)
    vertex = PlyData.read(str(path))["vertex"]
    assert [p.name for p in vertex.properties] == splat_ply_property_names(2)
    for name, values in cloud_columns(cloud).items():
        np.testing.assert_array_equal(vertex[name], values, err_msg=name)
    np.testing.assert_array_equal(vertex["nx"], cloud.normals[:, 0])


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_is_exact(tmp_path: Path, degree: int) -> None:
    cloud = random_cloud(100, sh_degree=degree, seed=degree)
    path = tmp_path / "scene.ply"
    write_splat_ply(path, cloud)
    back = read_splat_ply(path)
    assert back.sh_degree == degree
    assert_clouds_equal(cloud, back)
    np.testing.assert_array_equal(back.normals, np.zeros((100, 3)))


@pytest.mark.parametrize("layout", ["float32", "mixed"])
def test_blockwise_read_matches_across_block_edges(tmp_path: Path, monkeypatch, layout: str) -> None:
    # large files are read in blocks straight into the cloud; blocks of 7 rows exercise every edge
    monkeypatch.setattr(ply_module, "BLOCK_ROWS", 7)
    cloud = random_cloud(50, sh_degree=3, seed=9)
    path = tmp_path / "blocks.ply"
    if layout == "float32":
        write_splat_ply(path, cloud)
    else:
        columns = cloud_columns(cloud)
        columns["x"] = columns["x"].astype(np.float64)
        write_with_plyfile(path, columns)
    assert_clouds_equal(cloud, read_splat_ply(path))


def test_non_finite_value_is_reported_at_its_vertex_in_a_later_block(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ply_module, "BLOCK_ROWS", 7)
    cloud = random_cloud(50, sh_degree=1, seed=10)
    columns = cloud_columns(cloud)
    columns["opacity"][45] = np.inf
    path = tmp_path / "inf.ply"
    write_with_plyfile(path, columns)
    with pytest.raises(FormatError, match="'opacity' holds a non-finite value .* at vertex 45"):
        read_splat_ply(path)


@TMP_SETTINGS
@given(cloud=clouds())
def test_round_trip_random_clouds(tmp_path: Path, cloud: SplatCloud) -> None:
    path = tmp_path / "random.ply"
    write_splat_ply(path, cloud)
    assert_clouds_equal(cloud, read_splat_ply(path))


def test_empty_cloud_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "empty.ply"
    write_splat_ply(path, SplatCloud.empty(sh_degree=1))
    back = read_splat_ply(path)
    assert len(back) == 0 and back.sh_degree == 1


def test_sh_degree_reduction_on_write(tmp_path: Path) -> None:
    cloud = random_cloud(10, sh_degree=3)
    path = tmp_path / "low.ply"
    write_splat_ply(path, cloud, sh_degree=1)
    back = read_splat_ply(path)
    assert back.sh_degree == 1
    np.testing.assert_array_equal(back.sh_rest, cloud.sh_rest[:, :3])
    with pytest.raises(ValueError, match="cannot raise"):
        write_splat_ply(path, random_cloud(2, sh_degree=0), sh_degree=2)


def test_write_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "scene.ply"
    write_splat_ply(path, random_cloud(5))
    before = path.read_bytes()
    bad = random_cloud(5)
    bad.positions[0, 0] = np.nan
    with pytest.raises(ValueError):
        write_splat_ply(path, bad)
    assert path.read_bytes() == before
    write_splat_ply(path, random_cloud(7, seed=3))
    assert len(read_splat_ply(path)) == 7
    assert os.listdir(tmp_path) == ["scene.ply"]


# --------------------------------------------------------------------------- reading by name


def test_reads_by_name_shuffled_with_extras_and_no_normals(tmp_path: Path) -> None:
    cloud = random_cloud(30, sh_degree=1)
    columns = cloud_columns(cloud)
    names = list(columns)
    np.random.default_rng(4).shuffle(names)
    shuffled = {name: columns[name] for name in names}
    shuffled["confidence"] = np.arange(30, dtype=np.float32)
    shuffled = {"label": np.arange(30, dtype=np.int32), **shuffled}
    path = tmp_path / "shuffled.ply"
    write_with_plyfile(path, shuffled)
    back = read_splat_ply(path)
    assert back.normals is None
    assert_clouds_equal(cloud, back)


def test_reads_normals_when_present(tmp_path: Path) -> None:
    cloud = random_cloud(4, sh_degree=0, normals=True)
    columns = {"nx": cloud.normals[:, 0], "ny": cloud.normals[:, 1], "nz": cloud.normals[:, 2]}
    path = tmp_path / "normals.ply"
    write_with_plyfile(path, columns | cloud_columns(cloud))
    np.testing.assert_array_equal(read_splat_ply(path).normals, cloud.normals)


@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_reads_mixed_types_in_both_byte_orders(tmp_path: Path, byte_order: str) -> None:
    cloud = random_cloud(20, sh_degree=2)
    columns = cloud_columns(cloud)
    columns["x"] = columns["x"].astype(np.float64)
    columns["extra"] = np.arange(20, dtype=np.uint16)
    path = tmp_path / "mixed.ply"
    write_with_plyfile(path, columns, byte_order=byte_order)
    assert_clouds_equal(cloud, read_splat_ply(path))


def test_reads_big_endian_float_only(tmp_path: Path) -> None:
    cloud = random_cloud(20, sh_degree=3)
    path = tmp_path / "big.ply"
    write_with_plyfile(path, cloud_columns(cloud), byte_order=">")
    assert b"binary_big_endian" in path.read_bytes()[:60]
    assert_clouds_equal(cloud, read_splat_ply(path))


def test_reads_ascii(tmp_path: Path) -> None:
    cloud = random_cloud(25, sh_degree=1)
    path = tmp_path / "ascii.ply"
    write_with_plyfile(path, cloud_columns(cloud), text=True)
    assert b"format ascii 1.0" in path.read_bytes()[:40]
    back = read_splat_ply(path)
    for name in ("positions", "scales", "rotations", "opacities", "sh_dc", "sh_rest"):
        np.testing.assert_allclose(getattr(back, name), getattr(cloud, name), rtol=1e-6, err_msg=name)


def test_rgb_uchar_instead_of_f_dc(tmp_path: Path) -> None:
    cloud = random_cloud(3, sh_degree=0)
    columns = {k: v for k, v in cloud_columns(cloud).items() if not k.startswith("f_dc")}
    rgb = np.array([[0, 128, 255], [10, 20, 30], [255, 255, 0]], dtype=np.uint8)
    columns |= {"red": rgb[:, 0], "green": rgb[:, 1], "blue": rgb[:, 2]}
    path = tmp_path / "rgb.ply"
    write_with_plyfile(path, columns)
    back = read_splat_ply(path)
    np.testing.assert_allclose(back.sh_dc, (rgb / 255.0 - 0.5) / SH_C0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(back.colors_rgb(), rgb / 255.0, atol=1e-6)


def test_rgb_float_instead_of_f_dc(tmp_path: Path) -> None:
    cloud = random_cloud(2, sh_degree=0)
    columns = {k: v for k, v in cloud_columns(cloud).items() if not k.startswith("f_dc")}
    rgb = np.array([[0.0, 0.25, 1.0], [0.5, 0.5, 0.5]], dtype=np.float32)
    columns |= {"red": rgb[:, 0], "green": rgb[:, 1], "blue": rgb[:, 2]}
    path = tmp_path / "rgbf.ply"
    write_with_plyfile(path, columns)
    np.testing.assert_allclose(read_splat_ply(path).colors_rgb(), rgb, atol=1e-6)


def test_elements_after_vertex_are_ignored(tmp_path: Path) -> None:
    cloud = random_cloud(6, sh_degree=0)
    data = np.empty(6, dtype=[(name, "<f4") for name in cloud_columns(cloud)])
    for name, values in cloud_columns(cloud).items():
        data[name] = values
    faces = np.array([([0, 1, 2],)], dtype=[("vertex_indices", "i4", (3,))])
    PlyData([PlyElement.describe(data, "vertex"), PlyElement.describe(faces, "face")]).write(
        str(tmp_path / "faces.ply")
    )
    assert_clouds_equal(cloud, read_splat_ply(tmp_path / "faces.ply"))


# --------------------------------------------------------------------------- bad files


def test_missing_required_property(tmp_path: Path) -> None:
    columns = cloud_columns(random_cloud(3, sh_degree=0))
    del columns["opacity"]
    path = tmp_path / "no_opacity.ply"
    write_with_plyfile(path, columns)
    with pytest.raises(FormatError, match="no_opacity.ply: not a Gaussian-splat PLY: missing property opacity"):
        read_splat_ply(path)


def test_point_cloud_is_not_a_splat_ply(tmp_path: Path) -> None:
    path = tmp_path / "points.ply"
    write_points_ply(path, np.zeros((3, 3)), np.zeros((3, 3), dtype=np.uint8))
    with pytest.raises(FormatError, match="not a Gaussian-splat PLY"):
        read_splat_ply(path)


@pytest.mark.parametrize("drop", [1, 9])
def test_bad_f_rest_count(tmp_path: Path, drop: int) -> None:
    columns = cloud_columns(random_cloud(3, sh_degree=1))
    for j in range(9 - drop, 9):
        del columns[f"f_rest_{j}"]
    path = tmp_path / "rest.ply"
    write_with_plyfile(path, columns)
    if drop == 9:
        assert read_splat_ply(path).sh_degree == 0
    else:
        with pytest.raises(FormatError, match="8 f_rest_\\* properties"):
            read_splat_ply(path)


def test_f_rest_numbering_gap(tmp_path: Path) -> None:
    columns = cloud_columns(random_cloud(3, sh_degree=1))
    columns["f_rest_20"] = columns.pop("f_rest_4")
    path = tmp_path / "gap.ply"
    write_with_plyfile(path, columns)
    with pytest.raises(FormatError, match="not numbered"):
        read_splat_ply(path)


def test_header_claiming_a_billion_vertices(tmp_path: Path) -> None:
    path = tmp_path / "scene.ply"
    write_splat_ply(path, random_cloud(10, sh_degree=0))
    data = path.read_bytes().replace(b"element vertex 10\n", b"element vertex 1000000000\n")
    assert len(data) > 1024
    path.write_bytes(data[:1024])
    with pytest.raises(FormatError) as info:
        read_splat_ply(path)
    assert str(info.value).startswith("scene.ply: header claims 1000000000 vertices but the file holds 1024 bytes")
    assert info.value.path == str(path)


def test_truncated_body(tmp_path: Path) -> None:
    path = tmp_path / "cut.ply"
    write_splat_ply(path, random_cloud(10))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(FormatError, match="cut.ply: header claims 10 vertices"):
        read_splat_ply(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("text", [False, True])
def test_non_finite_values(tmp_path: Path, bad: float, text: bool) -> None:
    cloud = random_cloud(5, sh_degree=1)
    columns = cloud_columns(cloud)
    columns["scale_1"][2] = bad
    path = tmp_path / "nan.ply"
    write_with_plyfile(path, columns, text=text)
    with pytest.raises(FormatError, match="nan.ply: property 'scale_1' holds a non-finite value .* at vertex 2"):
        read_splat_ply(path)


def test_double_beyond_float32_range(tmp_path: Path) -> None:
    columns = cloud_columns(random_cloud(3, sh_degree=0))
    columns["opacity"] = np.array([0.0, 1e300, 0.0])
    path = tmp_path / "huge.ply"
    write_with_plyfile(path, columns)
    with pytest.raises(FormatError, match="property 'opacity' holds a non-finite value .* at vertex 1"):
        read_splat_ply(path)


def test_ascii_garbage_value(tmp_path: Path) -> None:
    path = tmp_path / "ascii.ply"
    write_with_plyfile(path, cloud_columns(random_cloud(3, sh_degree=0)), text=True)
    lines = path.read_bytes().split(b"\n")
    tokens = lines[-2].split()
    tokens[2] = b"oops"
    lines[-2] = b" ".join(tokens)
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(FormatError, match="not a number"):
        read_splat_ply(path)


def test_ascii_missing_lines(tmp_path: Path) -> None:
    path = tmp_path / "ascii.ply"
    write_with_plyfile(path, cloud_columns(random_cloud(50, sh_degree=0)), text=True)
    path.write_bytes(path.read_bytes().rsplit(b"\n", 4)[0])
    with pytest.raises(FormatError, match="ascii.ply"):
        read_splat_ply(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "missing 'ply' magic"),
        (b"\x00\x01garbage" * 100, "missing 'ply' magic"),
        (b"ply\nformat binary_little_endian 1.0\nelement vertex 1\n", "no end_header"),
        (b"ply\nformat binary_little_endian 2.0\nelement vertex 0\nend_header\n", "unsupported PLY format"),
        (b"ply\nformat ascii 1.0\nelement vertex -1\nend_header\n", "malformed element"),
        (b"ply\nformat ascii 1.0\nelement vertex 1e9\nend_header\n", "malformed element"),
        (b"ply\nformat ascii 1.0\nproperty float x\nend_header\n", "property before any element"),
        (b"ply\nformat ascii 1.0\nelement vertex 0\nproperty half x\nend_header\n", "malformed property"),
        (b"ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nproperty float x\nend_header\n", "twice"),
        (b"ply\nelement vertex 0\nproperty float x\nend_header\n", "no format line"),
        (b"ply\nformat ascii 1.0\nelement face 0\nend_header\n", "no 'vertex' element"),
        (b"ply\nformat ascii 1.0\nelement vertex 0\nbanana\nend_header\n", "unknown keyword"),
        (b"ply\nformat ascii 1.0\n\xff\xfe\nend_header\n", "not ASCII"),
        (
            b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty list uchar int x\nend_header\n",
            "list properties",
        ),
    ],
)
def test_malformed_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.ply"
    path.write_bytes(content)
    with pytest.raises(FormatError, match=message):
        read_splat_ply(path)


@pytest.fixture(scope="module")
def good_ply(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("good") / "good.ply"
    write_splat_ply(path, random_cloud(8, sh_degree=1))
    return path.read_bytes()


@TMP_SETTINGS
@given(position=st.integers(0, 700), value=st.integers(0, 255))
def test_byte_flips_in_header_raise_only_format_error(
    tmp_path: Path, good_ply: bytes, position: int, value: int
) -> None:
    header_end = good_ply.index(b"end_header\n") + len(b"end_header\n")
    data = bytearray(good_ply)
    data[position % header_end] = value
    path = tmp_path / "flipped.ply"
    path.write_bytes(bytes(data))
    try:
        cloud = read_splat_ply(path)
    except FormatError as error:
        assert str(error).startswith("flipped.ply: ")
    else:
        cloud.validate()


@TMP_SETTINGS
@given(cut=st.integers(0, 10_000))
def test_any_truncation_raises_format_error(tmp_path: Path, good_ply: bytes, cut: int) -> None:
    path = tmp_path / "cut.ply"
    path.write_bytes(good_ply[: cut % len(good_ply)])
    with pytest.raises(FormatError):
        read_splat_ply(path)


@TMP_SETTINGS
@given(body=st.binary(min_size=0, max_size=300))
def test_garbage_after_header_raises_only_format_error(tmp_path: Path, good_ply: bytes, body: bytes) -> None:
    header_end = good_ply.index(b"end_header\n") + len(b"end_header\n")
    path = tmp_path / "garbage.ply"
    path.write_bytes(good_ply[:header_end] + body)
    with pytest.raises(FormatError):  # 8 vertices need 8 * 116 bytes; 300 never suffice
        read_splat_ply(path)


# --------------------------------------------------------------------------- point clouds


def test_points_header_and_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    xyz = rng.normal(size=(20, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, (20, 3)).astype(np.uint8)
    normals = rng.normal(size=(20, 3)).astype(np.float32)
    path = tmp_path / "input.ply"
    write_points_ply(path, xyz, rgb, normals)
    header = (
        b"ply\nformat binary_little_endian 1.0\nelement vertex 20\n"
        b"property float x\nproperty float y\nproperty float z\n"
        b"property float nx\nproperty float ny\nproperty float nz\n"
        b"property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    data = path.read_bytes()
    assert data.startswith(header) and len(data) == len(header) + 20 * 27
    back = read_points_ply(path)
    np.testing.assert_array_equal(back.xyz, xyz)
    np.testing.assert_array_equal(back.rgb, rgb)
    np.testing.assert_array_equal(back.normals, normals)
    vertex = PlyData.read(str(path))["vertex"]
    np.testing.assert_array_equal(vertex["red"], rgb[:, 0])


def test_points_without_normals_are_written_as_zero(tmp_path: Path) -> None:
    path = tmp_path / "p.ply"
    write_points_ply(path, np.ones((2, 3)), np.full((2, 3), 7, dtype=np.uint8))
    back = read_points_ply(path)
    np.testing.assert_array_equal(back.normals, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="rgb_uint8"):
        write_points_ply(path, np.ones((2, 3)), np.zeros((3, 3), dtype=np.uint8))


def test_read_points_optional_colour_and_float_colour(tmp_path: Path) -> None:
    path = tmp_path / "xyz.ply"
    write_with_plyfile(path, {"x": np.zeros(2, np.float32), "y": np.ones(2, np.float32), "z": np.ones(2, np.float32)})
    back = read_points_ply(path)
    assert back.rgb is None and back.normals is None
    write_with_plyfile(
        path,
        {
            "x": np.zeros(1, np.float32),
            "y": np.zeros(1, np.float32),
            "z": np.zeros(1, np.float32),
            "red": np.ones(1, np.float32),
            "green": np.zeros(1, np.float32),
            "blue": np.full(1, 0.5, np.float32),
        },
    )
    np.testing.assert_array_equal(read_points_ply(path).rgb, [[255, 0, 128]])
    write_with_plyfile(path, {"y": np.zeros(1, np.float32)})
    with pytest.raises(FormatError, match="missing properties x, z"):
        read_points_ply(path)
