"""COLMAP sparse models: ``cameras``, ``images`` and ``points3D`` in binary or text form.

The binary layouts are those of COLMAP's ``read_write_model.py`` (little endian):

* ``cameras.bin``: ``u64 n``; per camera ``i32 id, i32 model_id, u64 width,
  u64 height, f64 params[model's count]``;
* ``images.bin``: ``u64 n``; per image ``i32 id, f64 qw qx qy qz, f64 tx ty tz,
  i32 camera_id, name\\0, u64 m``, then m x ``f64 x, f64 y, i64 point3D_id``;
* ``points3D.bin``: ``u64 n``; per point ``u64 id, f64 x y z, u8 r g b,
  f64 error, u64 track_length``, then track_length x ``i32 image_id, i32 point2D_idx``.

Every count is checked against the bytes left in the file before anything is
allocated, so a truncated or corrupt file raises `FormatError` naming it.
Points are kept as arrays (`Points3D`) rather than one object per point, so
models with millions of points load quickly.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from splatstudio.io.errors import FormatError
from splatstudio.io.ply import PathLike, write_points_ply
from splatstudio.model.atomic import atomic_open
from splatstudio.model.geometry import quaternion_to_matrix


@dataclass(frozen=True)
class CameraModel:
    """A COLMAP camera model: numeric id, name and number of parameters."""

    model_id: int
    name: str
    num_params: int


CAMERA_MODELS: tuple[CameraModel, ...] = (
    CameraModel(0, "SIMPLE_PINHOLE", 3),
    CameraModel(1, "PINHOLE", 4),
    CameraModel(2, "SIMPLE_RADIAL", 4),
    CameraModel(3, "RADIAL", 5),
    CameraModel(4, "OPENCV", 8),
    CameraModel(5, "OPENCV_FISHEYE", 8),
    CameraModel(6, "FULL_OPENCV", 12),
    CameraModel(7, "FOV", 5),
    CameraModel(8, "SIMPLE_RADIAL_FISHEYE", 4),
    CameraModel(9, "RADIAL_FISHEYE", 5),
    CameraModel(10, "THIN_PRISM_FISHEYE", 12),
    CameraModel(11, "RAD_TAN_THIN_PRISM_FISHEYE", 16),
)
MODELS_BY_ID = {m.model_id: m for m in CAMERA_MODELS}
MODELS_BY_NAME = {m.name: m for m in CAMERA_MODELS}


@dataclass
class Camera:
    """Intrinsics of one camera; `params` are in the model's COLMAP order."""

    id: int
    model: str
    width: int
    height: int
    params: np.ndarray


@dataclass
class Image:
    """One registered image: world-to-camera rotation `qvec` (w, x, y, z) and translation `tvec`."""

    id: int
    qvec: np.ndarray
    tvec: np.ndarray
    camera_id: int
    name: str
    xys: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    point3d_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def num_points2d(self) -> int:
        return len(self.point3d_ids)

    def rotation_matrix(self) -> np.ndarray:
        """World-to-camera rotation (`ValueError` for a zero `qvec`)."""
        return quaternion_to_matrix(self.qvec)

    def camera_center(self) -> np.ndarray:
        """Camera centre in world coordinates, ``-Rᵀ t``."""
        return -self.rotation_matrix().T @ self.tvec


@dataclass
class Points3D:
    """Sparse points as arrays; the tracks of all points are concatenated in point order."""

    ids: np.ndarray  # (N,) int64
    xyz: np.ndarray  # (N, 3) float64
    rgb: np.ndarray  # (N, 3) uint8
    errors: np.ndarray  # (N,) float64
    track_lengths: np.ndarray  # (N,) int64
    track_image_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    track_point2d_idxs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))

    def __len__(self) -> int:
        return len(self.ids)

    def check_consistent(self) -> None:
        """Raise `ValueError` unless all arrays agree on N and the tracks on their total length."""
        n = len(self)
        for name in ("xyz", "rgb", "errors", "track_lengths"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Points3D.{name} has {len(getattr(self, name))} rows, expected {n}")
        total = int(np.sum(self.track_lengths))
        if len(self.track_image_ids) != total or len(self.track_point2d_idxs) != total:
            raise ValueError(f"Points3D tracks must hold {total} entries (the sum of track_lengths)")

    @classmethod
    def without_tracks(cls, ids: np.ndarray, xyz: np.ndarray, rgb: np.ndarray, errors: np.ndarray) -> Points3D:
        """Points with empty tracks, e.g. a synthetic or imported point cloud."""
        return cls(
            ids=np.asarray(ids, dtype=np.int64),
            xyz=np.asarray(xyz, dtype=np.float64).reshape(-1, 3),
            rgb=np.asarray(rgb, dtype=np.uint8).reshape(-1, 3),
            errors=np.asarray(errors, dtype=np.float64),
            track_lengths=np.zeros(len(ids), dtype=np.int64),
        )


@dataclass
class ColmapModel:
    """A whole sparse reconstruction, cameras and images keyed by id."""

    cameras: dict[int, Camera]
    images: dict[int, Image]
    points: Points3D


# --------------------------------------------------------------------------- geometry


def camera_centers(images: dict[int, Image]) -> np.ndarray:
    """(M, 3) world-space camera centres of `images`, in ascending image-id order."""
    return np.array([images[i].camera_center() for i in sorted(images)]).reshape(-1, 3)


# --------------------------------------------------------------------------- binary reading


class _Buffer:
    """Bounds-checked little-endian reader over the bytes of one file."""

    def __init__(self, path: PathLike) -> None:
        self.path = path
        self.data = Path(path).read_bytes()
        self.offset = 0

    def remaining(self) -> int:
        return len(self.data) - self.offset

    def fail(self, message: str) -> FormatError:
        return FormatError(self.path, message)

    def unpack(self, fmt: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if size > self.remaining():
            raise self.fail(f"truncated at byte {self.offset} (needed {size} more bytes)")
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += size
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        if size > self.remaining():
            raise self.fail(f"truncated at byte {self.offset} (needed {size} more bytes)")
        values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.offset)
        self.offset += size
        return values

    def cstring(self) -> str:
        end = self.data.find(b"\0", self.offset)
        if end < 0:
            raise self.fail(f"unterminated name at byte {self.offset}")
        raw = self.data[self.offset : end]
        self.offset = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"image name at byte {self.offset} is not UTF-8") from None

    def count(self, min_record: int, what: str) -> int:
        (n,) = self.unpack("Q")
        if n * min_record > self.remaining():
            raise self.fail(f"header claims {n} {what} but the file holds {len(self.data)} bytes")
        return int(n)

    def finish(self) -> None:
        if self.remaining():
            raise self.fail(f"{self.remaining()} unexpected trailing bytes")


def _check_finite(path: PathLike, what: str, values: np.ndarray) -> None:
    if not np.isfinite(values).all():
        raise FormatError(path, f"{what} holds non-finite values")


def read_cameras_binary(path: PathLike) -> dict[int, Camera]:
    """Read ``cameras.bin`` into cameras keyed by id."""
    buf = _Buffer(path)
    cameras: dict[int, Camera] = {}
    for _ in range(buf.count(24 + 3 * 8, "cameras")):
        camera_id, model_id, width, height = buf.unpack("iiQQ")
        if model_id not in MODELS_BY_ID:
            raise buf.fail(f"camera {camera_id} has unknown model id {model_id}")
        model = MODELS_BY_ID[model_id]
        params = buf.array("<f8", model.num_params).astype(np.float64)
        _check_finite(path, f"camera {camera_id} parameters", params)
        cameras[camera_id] = Camera(camera_id, model.name, int(width), int(height), params)
    buf.finish()
    return cameras


def read_images_binary(path: PathLike) -> dict[int, Image]:
    """Read ``images.bin`` into images keyed by id, with their 2D points."""
    buf = _Buffer(path)
    images: dict[int, Image] = {}
    for _ in range(buf.count(64 + 1 + 8, "images")):
        image_id, *pose, camera_id = buf.unpack("i7di")
        name = buf.cstring()
        (num_points,) = buf.unpack("Q")
        if num_points * 24 > buf.remaining():
            raise buf.fail(f"image {image_id} claims {num_points} 2D points past the end of the file")
        points = buf.array("<f8", 3 * num_points).reshape(-1, 3)
        point_ids = points.view("<i8")[:, 2].astype(np.int64)
        qvec, tvec = np.array(pose[:4]), np.array(pose[4:])
        _check_finite(path, f"image {image_id} pose", np.array(pose))
        images[image_id] = Image(image_id, qvec, tvec, camera_id, name, points[:, :2].copy(), point_ids)
    buf.finish()
    return images


_POINT_HEAD = np.dtype(
    [("id", "<u8"), ("xyz", "<f8", (3,)), ("rgb", "u1", (3,)), ("error", "<f8"), ("track_length", "<u8")]
)


def read_points3d_binary(path: PathLike) -> Points3D:
    """Read ``points3D.bin``; record offsets are found first, then all fields in bulk."""
    buf = _Buffer(path)
    n = buf.count(_POINT_HEAD.itemsize, "points")
    starts = _point_record_starts(buf, n)
    buf.finish()
    raw = np.frombuffer(buf.data, dtype=np.uint8)
    in_head = _head_mask(len(raw), starts)
    heads = raw[in_head].view(_POINT_HEAD)
    in_track = ~in_head
    in_track[:8] = False
    tracks = raw[in_track].view("<i4").reshape(-1, 2).astype(np.int32)
    lengths = heads["track_length"].astype(np.int64)
    xyz = heads["xyz"].astype(np.float64)
    errors = heads["error"].astype(np.float64)
    _check_finite(path, "point positions", xyz)
    return Points3D(
        ids=heads["id"].astype(np.int64),
        xyz=xyz,
        rgb=heads["rgb"].astype(np.uint8),
        errors=errors,
        track_lengths=lengths,
        track_image_ids=tracks[:, 0].copy(),
        track_point2d_idxs=tracks[:, 1].copy(),
    )


def _point_record_starts(buf: _Buffer, n: int) -> np.ndarray:
    """Byte offsets of the n point records; walks the track lengths, checking bounds."""
    starts = np.empty(n, dtype=np.int64)
    data, size, head = buf.data, len(buf.data), _POINT_HEAD.itemsize
    length_at = head - 8
    offset = buf.offset
    for i in range(n):
        if offset + head > size:
            raise buf.fail(f"truncated in point {i} of {n}")
        track = int.from_bytes(data[offset + length_at : offset + head], "little")
        starts[i] = offset
        offset += head + 8 * track
        if offset > size:
            raise buf.fail(f"point {i} claims a track of {track} entries past the end of the file")
    buf.offset = offset
    return starts


def _head_mask(total: int, starts: np.ndarray) -> np.ndarray:
    """Boolean mask over a points3D.bin image marking the fixed-size head of every record."""
    edges = np.zeros(total + 1, dtype=np.int8)
    edges[starts] = 1
    edges[starts + _POINT_HEAD.itemsize] -= 1
    return np.cumsum(edges[:-1], dtype=np.int8).astype(bool)


# --------------------------------------------------------------------------- text reading


def _data_lines(path: PathLike) -> list[tuple[int, str]]:
    """(line number, text) of every line, comments dropped, blank lines kept."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FormatError(path, "not a UTF-8 text file") from None
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), start=1) if not line.startswith("#")]


def _numbers(path: PathLike, number: int, words: list[str], kind: type) -> list:
    try:
        return [kind(w) for w in words]
    except ValueError:
        raise FormatError(path, f"line {number}: expected numbers, got '{' '.join(words)[:80]}'") from None


def read_cameras_text(path: PathLike) -> dict[int, Camera]:
    """Read ``cameras.txt``: one ``ID MODEL WIDTH HEIGHT PARAMS...`` line per camera."""
    cameras: dict[int, Camera] = {}
    for number, line in _data_lines(path):
        words = line.split()
        if not words:
            continue
        if len(words) < 4:
            raise FormatError(path, f"line {number}: expected 'ID MODEL WIDTH HEIGHT PARAMS...'")
        if words[1] not in MODELS_BY_NAME:
            raise FormatError(path, f"line {number}: expected 'ID MODEL WIDTH HEIGHT PARAMS...' but camera model "
                                    f"{words[1]!r} is not one COLMAP knows ({', '.join(MODELS_BY_NAME)})")
        model = MODELS_BY_NAME[words[1]]
        if len(words) != 4 + model.num_params:
            raise FormatError(path, f"line {number}: {model.name} needs {model.num_params} parameters")
        camera_id, width, height = _numbers(path, number, [words[0], words[2], words[3]], int)
        params = np.array(_numbers(path, number, words[4:], float))
        _check_finite(path, f"camera {camera_id} parameters", params)
        cameras[camera_id] = Camera(camera_id, model.name, width, height, params)
    return cameras


def read_images_text(path: PathLike) -> dict[int, Image]:
    """Read ``images.txt``: a pose line then a (possibly empty) 2D-points line per image."""
    lines = _data_lines(path)
    images: dict[int, Image] = {}
    i = 0
    while i < len(lines):
        number, line = lines[i]
        i += 1
        if not line:
            continue
        words = line.split()
        if len(words) < 10:
            raise FormatError(path, f"line {number}: expected 'ID QW QX QY QZ TX TY TZ CAMERA_ID NAME'")
        image_id, camera_id = _numbers(path, number, [words[0], words[8]], int)
        pose = np.array(_numbers(path, number, words[1:8], float))
        _check_finite(path, f"image {image_id} pose", pose)
        points_line = lines[i][1] if i < len(lines) else ""
        i += 1
        xys, ids = _parse_points2d(path, number + 1, points_line)
        name = line.split(maxsplit=9)[9]
        images[image_id] = Image(image_id, pose[:4], pose[4:], camera_id, name, xys, ids)
    return images


def _parse_points2d(path: PathLike, number: int, line: str) -> tuple[np.ndarray, np.ndarray]:
    words = line.split()
    if len(words) % 3:
        raise FormatError(path, f"line {number}: 2D points must come in (X, Y, POINT3D_ID) triples")
    xs = _numbers(path, number, words[0::3], float)
    ys = _numbers(path, number, words[1::3], float)
    ids = _int_array(path, _numbers(path, number, words[2::3], int), np.int64)
    return np.array([xs, ys], dtype=np.float64).T.copy(), ids


def _int_array(path: PathLike, values: list[int], dtype: type) -> np.ndarray:
    try:
        return np.array(values, dtype=dtype)
    except OverflowError:
        raise FormatError(path, f"an integer does not fit in {np.dtype(dtype)}") from None


def read_points3d_text(path: PathLike) -> Points3D:
    """Read ``points3D.txt``: ``ID X Y Z R G B ERROR`` then the track pairs, one point a line."""
    ids, xyz, rgb, errors, lengths, tracks = [], [], [], [], [], []
    for number, line in _data_lines(path):
        words = line.split()
        if not words:
            continue
        if len(words) < 8 or (len(words) - 8) % 2:
            raise FormatError(path, f"line {number}: expected 'ID X Y Z R G B ERROR (IMAGE_ID POINT2D_IDX)...'")
        ids.append(_numbers(path, number, words[:1], int)[0])
        xyz.append(_numbers(path, number, words[1:4], float))
        colour = _numbers(path, number, words[4:7], int)
        if not all(0 <= c <= 255 for c in colour):
            raise FormatError(path, f"line {number}: colour values must be 0..255")
        rgb.append(colour)
        errors.append(_numbers(path, number, words[7:8], float)[0])
        lengths.append((len(words) - 8) // 2)
        tracks.extend(_numbers(path, number, words[8:], int))
    track = _int_array(path, tracks, np.int32).reshape(-1, 2)
    points = Points3D(
        ids=_int_array(path, ids, np.int64),
        xyz=np.array(xyz, dtype=np.float64).reshape(-1, 3),
        rgb=np.array(rgb, dtype=np.uint8).reshape(-1, 3),
        errors=np.array(errors, dtype=np.float64),
        track_lengths=np.array(lengths, dtype=np.int64),
        track_image_ids=track[:, 0].copy(),
        track_point2d_idxs=track[:, 1].copy(),
    )
    _check_finite(path, "point positions", points.xyz)
    return points


# --------------------------------------------------------------------------- writing


def write_cameras_binary(path: PathLike, cameras: dict[int, Camera]) -> None:
    """Write ``cameras.bin`` (atomically)."""
    chunks = [struct.pack("<Q", len(cameras))]
    for camera in cameras.values():
        model = _model(camera)
        chunks.append(struct.pack("<iiQQ", camera.id, model.model_id, camera.width, camera.height))
        chunks.append(np.asarray(camera.params, dtype="<f8").tobytes())
    _write_bytes(path, chunks)


def write_images_binary(path: PathLike, images: dict[int, Image]) -> None:
    """Write ``images.bin`` (atomically)."""
    chunks = [struct.pack("<Q", len(images))]
    for image in images.values():
        chunks.append(struct.pack("<i7di", image.id, *image.qvec, *image.tvec, image.camera_id))
        chunks.append(image.name.encode("utf-8") + b"\0")
        chunks.append(struct.pack("<Q", image.num_points2d))
        points = np.zeros(image.num_points2d, dtype=[("xy", "<f8", (2,)), ("id", "<i8")])
        points["xy"], points["id"] = image.xys, image.point3d_ids
        chunks.append(points.tobytes())
    _write_bytes(path, chunks)


def write_points3d_binary(path: PathLike, points: Points3D) -> None:
    """Write ``points3D.bin`` (atomically), laying out all records with array operations."""
    points.check_consistent()
    n = len(points)
    heads = np.zeros(n, dtype=_POINT_HEAD)
    heads["id"], heads["xyz"], heads["rgb"] = points.ids, points.xyz, points.rgb
    heads["error"], heads["track_length"] = points.errors, points.track_lengths
    tracks = np.stack([points.track_image_ids, points.track_point2d_idxs], axis=1).astype("<i4")
    sizes = _POINT_HEAD.itemsize + 8 * points.track_lengths.astype(np.int64)
    starts = 8 + np.cumsum(sizes) - sizes
    out = np.zeros(8 + int(sizes.sum()), dtype=np.uint8)
    out[:8] = np.frombuffer(struct.pack("<Q", n), dtype=np.uint8)
    in_head = _head_mask(len(out), starts)
    out[in_head] = heads.view(np.uint8)
    in_track = ~in_head
    in_track[:8] = False
    out[in_track] = tracks.view(np.uint8).reshape(-1)
    _write_bytes(path, [out.tobytes()])


def write_cameras_text(path: PathLike, cameras: dict[int, Camera]) -> None:
    """Write ``cameras.txt`` in COLMAP's layout, floats with full precision."""
    lines = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
    lines.append(f"# Number of cameras: {len(cameras)}")
    for camera in cameras.values():
        params = " ".join(_fmt(p) for p in camera.params)
        lines.append(f"{camera.id} {_model(camera).name} {camera.width} {camera.height} {params}")
    _write_bytes(path, ["\n".join(lines).encode("utf-8") + b"\n"])


def write_images_text(path: PathLike, images: dict[int, Image]) -> None:
    """Write ``images.txt`` in COLMAP's layout, floats with full precision."""
    lines = [
        "# Image list with two lines of data per image:",
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
        "#   POINTS2D[] as (X, Y, POINT3D_ID)",
        f"# Number of images: {len(images)}",
    ]
    for image in images.values():
        pose = " ".join(_fmt(v) for v in [*image.qvec, *image.tvec])
        lines.append(f"{image.id} {pose} {image.camera_id} {image.name}")
        lines.append(
            " ".join(f"{_fmt(x)} {_fmt(y)} {int(i)}" for (x, y), i in zip(image.xys, image.point3d_ids, strict=True))
        )
    _write_bytes(path, ["\n".join(lines).encode("utf-8") + b"\n"])


def write_points3d_text(path: PathLike, points: Points3D) -> None:
    """Write ``points3D.txt`` in COLMAP's layout, floats with full precision."""
    points.check_consistent()
    lines = [
        "# 3D point list with one line of data per point:",
        "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
        f"# Number of points: {len(points)}",
    ]
    ends = np.cumsum(points.track_lengths)
    for i in range(len(points)):
        xyz = " ".join(_fmt(v) for v in points.xyz[i])
        rgb = " ".join(str(int(c)) for c in points.rgb[i])
        span = slice(int(ends[i] - points.track_lengths[i]), int(ends[i]))
        track = zip(points.track_image_ids[span], points.track_point2d_idxs[span], strict=True)
        words = [str(int(points.ids[i])), xyz, rgb, _fmt(points.errors[i])]
        words += [f"{int(a)} {int(b)}" for a, b in track]
        lines.append(" ".join(words))
    _write_bytes(path, ["\n".join(lines).encode("utf-8") + b"\n"])


def _fmt(value: float) -> str:
    return repr(float(value))


def _model(camera: Camera) -> CameraModel:
    model = MODELS_BY_NAME.get(camera.model)
    if model is None:
        raise ValueError(f"camera {camera.id}: unknown camera model {camera.model!r}")
    if len(camera.params) != model.num_params:
        raise ValueError(f"camera {camera.id}: {model.name} needs {model.num_params} parameters")
    return model


def _write_bytes(path: PathLike, chunks: list[bytes]) -> None:
    with atomic_open(path) as handle:
        for chunk in chunks:
            handle.write(chunk)


# --------------------------------------------------------------------------- whole models

_READERS = {
    ".bin": (read_cameras_binary, read_images_binary, read_points3d_binary),
    ".txt": (read_cameras_text, read_images_text, read_points3d_text),
}
_WRITERS = {
    ".bin": (write_cameras_binary, write_images_binary, write_points3d_binary),
    ".txt": (write_cameras_text, write_images_text, write_points3d_text),
}
_FILES = ("cameras", "images", "points3D")


def model_extension(folder: PathLike) -> str:
    """``.bin`` if the folder holds a complete binary model, else ``.txt`` if a complete text one."""
    for ext in (".bin", ".txt"):
        if all((Path(folder) / f"{name}{ext}").is_file() for name in _FILES):
            return ext
    raise FileNotFoundError(f"{folder}: no COLMAP model (cameras, images, points3D as .bin or .txt)")


def read_model(folder: PathLike) -> ColmapModel:
    """Read the sparse model in `folder`, preferring the binary files over the text ones."""
    ext = model_extension(folder)
    read_cameras, read_images, read_points = _READERS[ext]
    folder = Path(folder)
    return ColmapModel(
        cameras=read_cameras(folder / f"cameras{ext}"),
        images=read_images(folder / f"images{ext}"),
        points=read_points(folder / f"points3D{ext}"),
    )


def write_model(model: ColmapModel, folder: PathLike, binary: bool = True) -> None:
    """Write `model` into `folder` (created if needed) as ``.bin`` or ``.txt`` files."""
    ext = ".bin" if binary else ".txt"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_cameras, write_images, write_points = _WRITERS[ext]
    write_cameras(folder / f"cameras{ext}", model.cameras)
    write_images(folder / f"images{ext}", model.images)
    write_points(folder / f"points3D{ext}", model.points)


def read_points3d(folder: PathLike) -> Points3D:
    """Read only the sparse points of the model in `folder`."""
    ext = model_extension(folder)
    return _READERS[ext][2](Path(folder) / f"points3D{ext}")


def points3d_to_ply(model_folder: PathLike, out_ply: PathLike) -> int:
    """Write the model's sparse points with their colours as a point PLY; return the count."""
    points = read_points3d(model_folder)
    write_points_ply(out_ply, points.xyz.astype(np.float32), points.rgb)
    return len(points)
