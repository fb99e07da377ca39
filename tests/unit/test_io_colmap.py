"""Tests for `splatstudio.io.colmap`: COLMAP sparse models in binary and text form."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splatstudio.io import colmap
from splatstudio.io.colmap import (
    CAMERA_MODELS,
    Camera,
    ColmapModel,
    Image,
    Points3D,
    camera_centers,
    points3d_to_ply,
    read_model,
    write_model,
)
from splatstudio.io.errors import FormatError
from splatstudio.io.ply import read_points_ply
from splatstudio.model.geometry import quaternion_to_matrix

TMP_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

EXPECTED_MODELS = [
    ("SIMPLE_PINHOLE", 3), ("PINHOLE", 4), ("SIMPLE_RADIAL", 4), ("RADIAL", 5), ("OPENCV", 8),
    ("OPENCV_FISHEYE", 8), ("FULL_OPENCV", 12), ("FOV", 5), ("SIMPLE_RADIAL_FISHEYE", 4),
    ("RADIAL_FISHEYE", 5), ("THIN_PRISM_FISHEYE", 12),
]  # fmt: skip


def make_model(seed: int = 0, n_points: int = 40) -> ColmapModel:
    """A consistent model: one camera of each type, one image per camera, tracked points."""
    rng = np.random.default_rng(seed)
    cameras = {
        i + 1: Camera(i + 1, m.name, 640 + i, 480 + i, rng.uniform(0.1, 500, m.num_params))
        for i, m in enumerate(CAMERA_MODELS)
    }
    images: dict[int, Image] = {}
    for i, camera_id in enumerate(cameras):
        q = rng.normal(size=4)
        images[10 + i] = Image(
            10 + i,
            q / np.linalg.norm(q),
            rng.normal(size=3),
            camera_id,
            f"frame {i:03d}.jpg",
            xys=rng.uniform(0, 640, (0, 2)),
            point3d_ids=np.zeros(0, dtype=np.int64),
        )
    xys = {i: [] for i in images}
    ids = {i: [] for i in images}
    track_images, track_idxs, lengths = [], [], []
    for p in range(n_points):
        seen = rng.choice(list(images), size=int(rng.integers(0, 4)), replace=False)
        for image_id in seen:
            track_images.append(image_id)
            track_idxs.append(len(xys[image_id]))
            xys[image_id].append(rng.uniform(0, 640, 2))
            ids[image_id].append(100 + p)
        lengths.append(len(seen))
    for image_id, image in images.items():
        image.xys = np.array(xys[image_id]).reshape(-1, 2)
        image.point3d_ids = np.array(ids[image_id], dtype=np.int64)
    images[10].xys = np.vstack([images[10].xys, [[1.5, 2.5]]])  # an unmatched keypoint
    images[10].point3d_ids = np.append(images[10].point3d_ids, -1)
    points = Points3D(
        ids=np.arange(100, 100 + n_points),
        xyz=rng.normal(size=(n_points, 3)),
        rgb=rng.integers(0, 256, (n_points, 3)).astype(np.uint8),
        errors=rng.uniform(0, 2, n_points),
        track_lengths=np.array(lengths, dtype=np.int64),
        track_image_ids=np.array(track_images, dtype=np.int32),
        track_point2d_idxs=np.array(track_idxs, dtype=np.int32),
    )
    return ColmapModel(cameras, images, points)


def assert_models_equal(a: ColmapModel, b: ColmapModel) -> None:
    assert a.cameras.keys() == b.cameras.keys()
    for i, cam in a.cameras.items():
        other = b.cameras[i]
        assert (cam.id, cam.model, cam.width, cam.height) == (other.id, other.model, other.width, other.height)
        np.testing.assert_array_equal(cam.params, other.params)
    assert a.images.keys() == b.images.keys()
    for i, image in a.images.items():
        other = b.images[i]
        assert (image.id, image.camera_id, image.name) == (other.id, other.camera_id, other.name)
        np.testing.assert_array_equal(image.qvec, other.qvec)
        np.testing.assert_array_equal(image.tvec, other.tvec)
        np.testing.assert_array_equal(image.xys, other.xys)
        np.testing.assert_array_equal(image.point3d_ids, other.point3d_ids)
    for field in ("ids", "xyz", "rgb", "errors", "track_lengths", "track_image_ids", "track_point2d_idxs"):
        np.testing.assert_array_equal(getattr(a.points, field), getattr(b.points, field), err_msg=field)


def test_camera_models_in_colmap_order() -> None:
    assert [(m.name, m.num_params) for m in CAMERA_MODELS[:11]] == EXPECTED_MODELS
    assert [m.model_id for m in CAMERA_MODELS] == list(range(len(CAMERA_MODELS)))


@pytest.mark.parametrize("binary", [True, False])
def test_round_trip(tmp_path: Path, binary: bool) -> None:
    model = make_model()
    write_model(model, tmp_path / "sparse", binary=binary)
    ext = ".bin" if binary else ".txt"
    assert sorted(p.name for p in (tmp_path / "sparse").iterdir()) == [
        f"cameras{ext}",
        f"images{ext}",
        f"points3D{ext}",
    ]
    assert_models_equal(model, read_model(tmp_path / "sparse"))


def test_binary_and_text_agree_and_binary_is_preferred(tmp_path: Path) -> None:
    model = make_model(seed=1)
    write_model(model, tmp_path, binary=True)
    write_model(make_model(seed=2), tmp_path, binary=False)
    assert_models_equal(model, read_model(tmp_path))
    for name in ("cameras", "images", "points3D"):
        (tmp_path / f"{name}.bin").unlink()
    assert_models_equal(make_model(seed=2), read_model(tmp_path))


def test_missing_model(tmp_path: Path) -> None:
    (tmp_path / "cameras.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no COLMAP model"):
        read_model(tmp_path)


def test_binary_layout_of_one_camera(tmp_path: Path) -> None:
    path = tmp_path / "cameras.bin"
    colmap.write_cameras_binary(path, {7: Camera(7, "PINHOLE", 1920, 1080, np.array([1000.0, 1001.0, 960.0, 540.0]))})
    data = path.read_bytes()
    assert struct.unpack("<QiiQQ4d", data) == (1, 7, 1, 1920, 1080, 1000.0, 1001.0, 960.0, 540.0)


def test_text_files_as_colmap_writes_them(tmp_path: Path) -> None:
    (tmp_path / "cameras.txt").write_text(
        "# Camera list with one line of data per camera:\n"
        "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n"
        "# Number of cameras: 1\n"
        "1 SIMPLE_RADIAL 3072 2304 2559.81 1536 1152 -0.0204\n"
    )
    (tmp_path / "images.txt").write_text(
        "# Image list with two lines of data per image:\n"
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
        "#   POINTS2D[] as (X, Y, POINT3D_ID)\n"
        "1 0.851773 0.0165051 0.503764 -0.142941 -0.737434 1.02973 3.74354 1 P1180141.JPG\n"
        "2362.39 248.498 -1 1373.6 264.5 7\n"
        "2 0.851 0.0 0.5 -0.14 -0.7 1.0 3.7 1 with space.JPG\n"
        "\n"
    )
    (tmp_path / "points3D.txt").write_text(
        "# 3D point list with one line of data per point:\n7 1.2 -0.5 3.25 255 128 0 0.75 1 1 2 0\n8 0 0 0 1 2 3 0.1\n"
    )
    model = read_model(tmp_path)
    assert model.cameras[1].model == "SIMPLE_RADIAL" and model.cameras[1].width == 3072
    np.testing.assert_allclose(model.cameras[1].params, [2559.81, 1536, 1152, -0.0204])
    assert model.images[1].name == "P1180141.JPG" and model.images[1].num_points2d == 2
    np.testing.assert_array_equal(model.images[1].point3d_ids, [-1, 7])
    assert model.images[2].name == "with space.JPG" and model.images[2].num_points2d == 0
    np.testing.assert_array_equal(model.points.track_lengths, [2, 0])
    np.testing.assert_array_equal(model.points.track_image_ids, [1, 2])
    np.testing.assert_array_equal(model.points.rgb, [[255, 128, 0], [1, 2, 3]])


def test_camera_centres() -> None:
    rng = np.random.default_rng(3)
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    rotation = quaternion_to_matrix(q)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    centre = np.array([1.0, -2.0, 0.5])
    image = Image(1, q, -rotation @ centre, 1, "a.jpg")
    np.testing.assert_allclose(image.camera_center(), centre, atol=1e-12)
    other = Image(2, np.array([1.0, 0, 0, 0]), np.array([0.0, 0.0, 4.0]), 1, "b.jpg")
    np.testing.assert_allclose(camera_centers({2: other, 1: image}), [centre, [0, 0, -4]], atol=1e-12)
    assert camera_centers({}).shape == (0, 3)


@pytest.mark.parametrize("binary", [True, False])
def test_points3d_to_ply(tmp_path: Path, binary: bool) -> None:
    model = make_model(n_points=25)
    write_model(model, tmp_path / "sparse", binary=binary)
    assert points3d_to_ply(tmp_path / "sparse", tmp_path / "points.ply") == 25
    points = read_points_ply(tmp_path / "points.ply")
    np.testing.assert_array_equal(points.xyz, model.points.xyz.astype(np.float32))
    np.testing.assert_array_equal(points.rgb, model.points.rgb)


def test_points_without_tracks_and_empty_models(tmp_path: Path) -> None:
    points = Points3D.without_tracks([1, 2], np.ones((2, 3)), [[1, 2, 3], [4, 5, 6]], [0.5, 0.25])
    empty = Points3D.without_tracks(np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))
    for i, pts in enumerate((points, empty)):
        for binary in (True, False):
            folder = tmp_path / f"{i}{binary}"
            write_model(ColmapModel({}, {}, pts), folder, binary=binary)
            back = read_model(folder)
            assert back.cameras == {} and back.images == {}
            np.testing.assert_array_equal(back.points.xyz, pts.xyz)
            np.testing.assert_array_equal(back.points.track_lengths, pts.track_lengths)


def test_pycolmap_reads_our_binary_model(tmp_path: Path) -> None:
    import pycolmap
    model = make_model(seed=4)
    write_model(model, tmp_path, binary=True)
    reconstruction = pycolmap.Reconstruction(str(tmp_path))
    assert reconstruction.num_cameras() == len(model.cameras)
    assert reconstruction.num_points3D() == len(model.points)
    for camera_id, camera in model.cameras.items():
        theirs = reconstruction.cameras[camera_id]
        assert theirs.model.name == camera.model
        np.testing.assert_array_equal(theirs.params, camera.params)
    point = reconstruction.points3D[100]
    np.testing.assert_array_equal(point.xyz, model.points.xyz[0])


# --------------------------------------------------------------------------- corrupt files


@pytest.fixture(scope="module")
def binary_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("model")
    write_model(make_model(n_points=30), folder, binary=True)
    return {name: (folder / f"{name}.bin").read_bytes() for name in ("cameras", "images", "points3D")}


READERS = {
    "cameras": colmap.read_cameras_binary,
    "images": colmap.read_images_binary,
    "points3D": colmap.read_points3d_binary,
}


@TMP_SETTINGS
@given(name=st.sampled_from(list(READERS)), cut=st.integers(1, 100_000))
def test_truncated_binary_files_raise_format_error(
    tmp_path: Path, binary_files: dict[str, bytes], name: str, cut: int
) -> None:
    data = binary_files[name]
    path = tmp_path / f"{name}.bin"
    path.write_bytes(data[: len(data) - 1 - cut % len(data)])
    with pytest.raises(FormatError, match=f"{name}.bin: "):
        READERS[name](path)


@TMP_SETTINGS
@given(name=st.sampled_from(list(READERS)), position=st.integers(0, 100_000), value=st.integers(0, 255))
def test_corrupt_bytes_raise_only_format_error(
    tmp_path: Path, binary_files: dict[str, bytes], name: str, position: int, value: int
) -> None:
    data = bytearray(binary_files[name])
    data[position % len(data)] = value
    path = tmp_path / f"{name}.bin"
    path.write_bytes(bytes(data))
    try:
        READERS[name](path)
    except FormatError as error:
        assert str(error).startswith(f"{name}.bin: ")


@pytest.mark.parametrize("name", list(READERS))
def test_huge_counts_are_rejected_before_allocating(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.bin"
    path.write_bytes(struct.pack("<Q", 10**12) + b"\0" * 1000)
    with pytest.raises(FormatError, match=f"{name}.bin: header claims 1000000000000 "):
        READERS[name](path)


def test_huge_track_and_point_counts(tmp_path: Path) -> None:
    path = tmp_path / "points3D.bin"
    path.write_bytes(struct.pack("<QQ3d3BdQ", 1, 1, 0, 0, 0, 1, 2, 3, 0.5, 2**62))
    with pytest.raises(FormatError, match="track of 4611686018427387904 entries"):
        colmap.read_points3d_binary(path)
    path = tmp_path / "images.bin"
    path.write_bytes(struct.pack("<Qi7di", 1, 1, 1, 0, 0, 0, 0, 0, 0, 1) + b"a.jpg\0" + struct.pack("<Q", 2**40))
    with pytest.raises(FormatError, match="claims 1099511627776 2D points"):
        colmap.read_images_binary(path)


def test_unknown_camera_model_and_trailing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "cameras.bin"
    path.write_bytes(struct.pack("<QiiQQ3d", 1, 1, 42, 10, 10, 1, 2, 3))
    with pytest.raises(FormatError, match="unknown model id 42"):
        colmap.read_cameras_binary(path)
    path.write_bytes(struct.pack("<QiiQQ3d", 1, 1, 0, 10, 10, 1, 2, 3) + b"xx")
    with pytest.raises(FormatError, match="2 unexpected trailing bytes"):
        colmap.read_cameras_binary(path)


def test_non_finite_values_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "cameras.bin"
    path.write_bytes(struct.pack("<QiiQQ3d", 1, 1, 0, 10, 10, 1, float("nan"), 3))
    with pytest.raises(FormatError, match="camera 1 parameters holds non-finite"):
        colmap.read_cameras_binary(path)
    text = tmp_path / "points3D.txt"
    text.write_text("1 inf 0 0 1 2 3 0.5\n")
    with pytest.raises(FormatError, match="point positions"):
        colmap.read_points3d_text(text)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("cameras", "1 PINHOLE 10 10 1 2 3\n", "PINHOLE needs 4 parameters"),
        ("cameras", "1 FISHEYE 10 10 1 2 3\n", "line 1: expected 'ID MODEL"),
        ("cameras", "# c\nx PINHOLE 10 10 1 2 3 4\n", "line 2: expected numbers"),
        ("images", "1 1 0 0 0 0 0 0 1\n\n", "line 1: expected 'ID QW"),
        ("images", "1 1 0 0 0 0 0 0 1 a.jpg\n1 2\n", "line 2: 2D points must come in"),
        ("images", "1 1 0 0 0 0 0 zero 1 a.jpg\n\n", "expected numbers"),
        ("points3D", "1 0 0 0 1 2 3\n", "line 1: expected 'ID X Y Z"),
        ("points3D", "1 0 0 0 1 2 3 0.5 4\n", "line 1: expected 'ID X Y Z"),
        ("points3D", "1 0 0 0 1 2 300 0.5\n", "colour values must be 0..255"),
        ("points3D", "1 0 0 0 1 2 3 0.5 99999999999 0\n", "an integer does not fit in int32"),
        ("points3D", f"{2**64} 0 0 0 1 2 3 0.5\n", "an integer does not fit in int64"),
        ("images", f"1 1 0 0 0 0 0 0 1 a.jpg\n1 2 {2**64}\n", "an integer does not fit in int64"),
    ],
)
def test_malformed_text_files(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / f"{name}.txt"
    path.write_text(content)
    reader = {
        "cameras": colmap.read_cameras_text,
        "images": colmap.read_images_text,
        "points3D": colmap.read_points3d_text,
    }[name]
    with pytest.raises(FormatError, match=f"{name}.txt: (line \\d+: )?{message}"):
        reader(path)


def test_non_utf8_text(tmp_path: Path) -> None:
    path = tmp_path / "cameras.txt"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(FormatError, match="not a UTF-8 text file"):
        colmap.read_cameras_text(path)


def test_inconsistent_points_are_not_written(tmp_path: Path) -> None:
    points = make_model().points
    points.track_image_ids = points.track_image_ids[:-1]
    with pytest.raises(ValueError, match="tracks must hold"):
        colmap.write_points3d_binary(tmp_path / "points3D.bin", points)
    points = Points3D.without_tracks([1, 2], np.ones((3, 3)), np.ones((2, 3)), [0.0, 0.0])
    with pytest.raises(ValueError, match="xyz has 3 rows, expected 2"):
        colmap.write_points3d_text(tmp_path / "points3D.txt", points)
    assert list(tmp_path.iterdir()) == []
