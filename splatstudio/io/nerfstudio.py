"""nerfstudio datasets: ``transforms.json`` → COLMAP cameras, world-to-camera poses and sparse points.

What is read (the layout ``ns-process-data`` writes, see nerfstudio's ``process_data/colmap_utils.py``
``colmap_to_json`` and ``data/dataparsers/nerfstudio_dataparser.py``):

* intrinsics ``fl_x fl_y cx cy w h``, distortion ``k1 k2 k3 k4 p1 p2`` and ``camera_model`` at the top
  level, each of which a frame may override with its own value;
* per frame ``file_path`` (relative to the folder of ``transforms.json``) and a 4x4 (or 3x4)
  ``transform_matrix``: camera-to-world, camera axes in the OpenGL/nerfstudio convention (x right,
  y up, z back — the camera looks along -z);
* optional ``applied_transform`` (3x4): the world transform ``ns-process-data`` applied to COLMAP's
  world before writing (``c2w = A @ c2w_colmap``, and the same ``A`` applied to the points);
* optional ``ply_file_path``: sparse points, in the same world as the frames.

Conversion to COLMAP (``x_cam = R @ x_world + t``, camera axes OpenCV: x right, y down, z forward),
the inverse of ``colmap_to_json``: undo ``applied_transform`` (``c2w = A⁻¹ @ M``, points ``A⁻¹ p``),
flip the camera's y and z axes (``c2w[:3, 1:3] *= -1``), then invert (``R = R_c2wᵀ``, ``t = -R C``).

Camera models: a perspective camera (``OPENCV``, ``PINHOLE``, ``SIMPLE_PINHOLE``... or none given)
without distortion becomes COLMAP ``PINHOLE``; with ``k1 k2 p1 p2`` ``OPENCV``; with ``k3`` too
``FULL_OPENCV``; ``OPENCV_FISHEYE`` stays ``OPENCV_FISHEYE`` (``k1..k4``). Others (equirectangular,
omnidirectional stereo, a perspective ``k4``) are refused. Frames with the same intrinsics share one
COLMAP camera. Older instant-ngp style files giving ``camera_angle_x`` instead of ``fl_x`` are read too,
and a missing ``w``/``h`` is taken from the image file.

Every problem with the content (bad JSON, missing keys, non-finite numbers, a matrix that is not a
rigid motion, an image or PLY that is not there) raises `FormatError` naming ``transforms.json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from splatstudio.io.colmap import Camera
from splatstudio.io.errors import FormatError, load_json_text
from splatstudio.io.ply import read_points_ply
from splatstudio.model.geometry import matrix_to_quaternion

TRANSFORMS = "transforms.json"

# nerfstudio's camera_model values that are ordinary perspective cameras (CAMERA_MODEL_TO_TYPE)
PERSPECTIVE_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "PERSPECTIVE")
FISHEYE_MODELS = ("OPENCV_FISHEYE", "FISHEYE")
_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
_INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y", "camera_model",
                   *_DISTORTION_KEYS)
ORTHONORMAL_TOLERANCE = 1e-3

# OpenGL camera axes (x right, y up, z back) <-> OpenCV ones (x right, y down, z forward)
_FLIP_YZ = np.diag([1.0, -1.0, -1.0])


@dataclass
class NerfstudioFrame:
    """One frame: its image and its COLMAP pose (world-to-camera ``qvec``/``tvec``)."""

    file_path: str  # as written in transforms.json
    path: Path  # the image file
    camera_id: int
    qvec: np.ndarray
    tvec: np.ndarray


@dataclass
class NerfstudioScene:
    """A ``transforms.json`` in COLMAP terms."""

    transforms: Path
    cameras: dict[int, Camera]
    frames: list[NerfstudioFrame]
    points_xyz: np.ndarray | None = None  # (N, 3) float64, COLMAP world
    points_rgb: np.ndarray | None = None  # (N, 3) uint8
    ply_path: Path | None = None
    applied_transform: np.ndarray | None = None  # 4x4, as found (undone in poses and points)
    notes: list[str] = field(default_factory=list)


def transforms_path(path: str | Path) -> Path:
    """``transforms.json`` of a dataset folder, or the file itself."""
    path = Path(path)
    return path / TRANSFORMS if path.is_dir() else path


def colmap_pose_from_transform(matrix: np.ndarray, applied_transform: np.ndarray | None = None
                               ) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera ``(R, t)`` (COLMAP/OpenCV) of a nerfstudio camera-to-world ``transform_matrix``.

    Raises `ValueError` if the matrix (after undoing ``applied_transform``) is not a rigid motion.
    """
    c2w = _as_4x4(matrix)
    if applied_transform is not None:
        c2w = np.linalg.inv(_as_4x4(applied_transform)) @ c2w
    rotation = c2w[:3, :3] @ _FLIP_YZ
    error = float(np.abs(rotation.T @ rotation - np.eye(3)).max())
    if error > ORTHONORMAL_TOLERANCE or np.linalg.det(rotation) <= 0:
        raise ValueError("its rotation part is not a rotation (scaled, sheared or mirrored)")
    u, _, vt = np.linalg.svd(rotation)  # re-orthonormalise what JSON rounding left
    rotation = u @ vt
    world_to_camera = rotation.T
    return world_to_camera, -world_to_camera @ c2w[:3, 3]


def transform_from_colmap_pose(rotation: np.ndarray, translation: np.ndarray,
                               applied_transform: np.ndarray | None = None) -> np.ndarray:
    """The nerfstudio ``transform_matrix`` of a COLMAP pose (what ``colmap_to_json`` writes)."""
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = rotation, translation
    c2w = np.linalg.inv(w2c)
    c2w[:3, 1:3] *= -1
    if applied_transform is not None:
        c2w = _as_4x4(applied_transform) @ c2w
    return c2w


def read_transforms(path: str | Path) -> NerfstudioScene:
    """Read a nerfstudio dataset (its folder or its ``transforms.json``); see the module docstring."""
    transforms = transforms_path(path)
    meta = _load_meta(transforms)

    def fail(message: str) -> FormatError:
        return FormatError(transforms, message)

    applied = None
    if meta.get("applied_transform") is not None:
        applied = _matrix(meta["applied_transform"], fail, "applied_transform")
        if abs(np.linalg.det(applied[:3, :3])) < 1e-12:
            raise fail("applied_transform is not invertible")
    notes: list[str] = []
    if meta.get("applied_scale") not in (None, 1, 1.0):
        notes.append(f"applied_scale {meta['applied_scale']} in transforms.json is not used: poses and points are "
                     "taken as they are")
    cameras, frames = _read_frames(meta, transforms.parent, applied, fail)
    scene = NerfstudioScene(transforms, cameras, frames, applied_transform=applied, notes=notes)
    if meta.get("ply_file_path") is not None:
        _read_points(scene, meta["ply_file_path"], fail)
    return scene


def _load_meta(transforms: Path) -> dict[str, Any]:
    """The JSON object of ``transforms.json``, with a non-empty 'frames' list."""
    try:
        text = transforms.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FormatError(transforms, "not found") from None
    except UnicodeDecodeError:
        raise FormatError(transforms, "not a UTF-8 text file") from None
    except OSError as exc:
        raise FormatError(transforms, f"cannot be read ({exc.strerror or exc})") from None
    meta = load_json_text(transforms, text)
    if not isinstance(meta, dict):
        raise FormatError(transforms, "expected a JSON object with a 'frames' list")
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise FormatError(transforms, "has no 'frames' (a non-empty list of {file_path, transform_matrix})")
    return meta


def _read_frames(meta: dict[str, Any], folder: Path, applied: np.ndarray | None, fail: Any
                 ) -> tuple[dict[int, Camera], list[NerfstudioFrame]]:
    """The COLMAP cameras (frames with the same intrinsics share one) and the frames with their poses."""
    global_values = {key: meta[key] for key in _INTRINSIC_KEYS if key in meta}
    cameras: dict[int, Camera] = {}
    camera_ids: dict[tuple[Any, ...], int] = {}
    frames: list[NerfstudioFrame] = []
    seen: dict[Path, int] = {}
    for index, frame in enumerate(meta["frames"]):
        where = f"frame {index}"
        if not isinstance(frame, dict):
            raise fail(f"{where} is not an object")
        file_path = frame.get("file_path")
        if not isinstance(file_path, str) or not file_path.strip():
            raise fail(f"{where} has no 'file_path'")
        where = f"frame {index} ({file_path})"
        image = _resolve_image(folder, file_path)
        if image is None:
            raise fail(f"{where}: the image {folder / file_path} does not exist")
        if image in seen:
            raise fail(f"{where}: the same image as frame {seen[image]}")
        seen[image] = index
        rotation, translation = _frame_pose(frame, applied, fail, where)
        values = {**global_values, **{key: frame[key] for key in _INTRINSIC_KEYS if key in frame}}
        model, width, height, params = _camera(values, image, lambda m, w=where: fail(f"{w}: {m}"))
        key = (model, width, height, tuple(params))
        if key not in camera_ids:
            camera_ids[key] = len(camera_ids) + 1
            cameras[camera_ids[key]] = Camera(camera_ids[key], model, width, height, np.array(params, dtype=float))
        frames.append(NerfstudioFrame(file_path, image, camera_ids[key], matrix_to_quaternion(rotation), translation))
    return cameras, frames


def _frame_pose(frame: dict[str, Any], applied: np.ndarray | None, fail: Any, where: str
                ) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera ``(R, t)`` of one frame's ``transform_matrix``."""
    if "transform_matrix" not in frame:
        raise fail(f"{where} has no 'transform_matrix'")
    matrix = _matrix(frame["transform_matrix"], fail, f"{where}: transform_matrix")
    try:
        return colmap_pose_from_transform(matrix, applied)
    except ValueError as exc:
        raise fail(f"{where}: transform_matrix {exc}") from None


def _read_points(scene: NerfstudioScene, ply: Any, fail: Any) -> None:
    """The sparse points of ``ply_file_path`` into `scene`, in COLMAP's world (``applied_transform`` undone)."""
    if not isinstance(ply, str) or not ply.strip():
        raise fail("ply_file_path must be a file name")
    scene.ply_path = scene.transforms.parent / ply
    if not scene.ply_path.is_file():
        raise fail(f"ply_file_path names {scene.ply_path}, which does not exist")
    points = read_points_ply(scene.ply_path)  # FormatError names the PLY
    xyz = points.xyz.astype(np.float64)
    applied = scene.applied_transform
    if applied is not None and len(xyz):
        inverse = np.linalg.inv(applied)
        xyz = xyz @ inverse[:3, :3].T + inverse[:3, 3]
    rgb = points.rgb if points.rgb is not None else np.full((len(xyz), 3), 128, dtype=np.uint8)
    if len(xyz):
        scene.points_xyz, scene.points_rgb = xyz, rgb
    else:
        scene.notes.append(f"{scene.ply_path.name} holds no points")


# ------------------------------------------------------------------------------------------ helpers

def _as_4x4(matrix: Any) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape == (3, 4):
        m = np.vstack([m, [0.0, 0.0, 0.0, 1.0]])
    return m


def _matrix(value: Any, fail: Any, what: str) -> np.ndarray:
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise fail(f"{what} is not a matrix of numbers") from None
    if m.shape not in ((4, 4), (3, 4)):
        raise fail(f"{what} must be 4x4 (or 3x4), got shape {m.shape}")
    if not np.isfinite(m).all():
        raise fail(f"{what} holds non-finite values")
    m = _as_4x4(m)
    if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0], atol=1e-6):
        raise fail(f"{what}: the last row must be 0 0 0 1")
    return m


def _resolve_image(folder: Path, file_path: str) -> Path | None:
    relative = PurePosixPath(file_path.replace("\\", "/"))
    candidate = folder / Path(*relative.parts) if not relative.is_absolute() else Path(relative)
    if candidate.is_file():
        return candidate
    if not candidate.suffix:  # Blender/instant-ngp style names without an extension
        for suffix in (".png", ".jpg", ".jpeg", ".PNG", ".JPG"):
            if candidate.with_suffix(suffix).is_file():
                return candidate.with_suffix(suffix)
    return None


def _number(values: dict[str, Any], key: str, fail: Any) -> float | None:
    if key not in values or values[key] is None:
        return None
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise fail(f"{key} must be a finite number, got {value!r}")
    return float(value)


def _camera(values: dict[str, Any], image: Path, fail: Any) -> tuple[str, int, int, list[float]]:
    """COLMAP (model, width, height, params) of the intrinsics that apply to one frame."""
    width, height = _number(values, "w", fail), _number(values, "h", fail)
    if width is None or height is None:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(image) as pil:
                size = pil.size
        except (OSError, UnidentifiedImageError) as exc:
            raise fail(f"w/h not given and the image {image.name} cannot be read ({exc})") from None
        width = size[0] if width is None else width
        height = size[1] if height is None else height
    if width != int(width) or height != int(height) or width < 1 or height < 1:
        raise fail(f"w and h must be positive whole numbers, got {width:g} x {height:g}")
    fx, fy = _number(values, "fl_x", fail), _number(values, "fl_y", fail)
    if fx is None and _number(values, "camera_angle_x", fail) is not None:
        fx = 0.5 * width / math.tan(0.5 * float(values["camera_angle_x"]))
    if fy is None and _number(values, "camera_angle_y", fail) is not None:
        fy = 0.5 * height / math.tan(0.5 * float(values["camera_angle_y"]))
    if fx is None and fy is None:
        raise fail("no focal length (fl_x, fl_y or camera_angle_x)")
    fx = fy if fx is None else fx
    fy = fx if fy is None else fy
    if fx <= 0 or fy <= 0:
        raise fail(f"focal lengths must be positive, got fl_x={fx:g} fl_y={fy:g}")
    cx = _number(values, "cx", fail)
    cy = _number(values, "cy", fail)
    cx = width / 2.0 if cx is None else cx
    cy = height / 2.0 if cy is None else cy
    k1, k2, k3, k4, p1, p2 = (_number(values, key, fail) or 0.0 for key in _DISTORTION_KEYS)
    name = values.get("camera_model", "OPENCV")
    if not isinstance(name, str):
        raise fail(f"camera_model must be a name, got {name!r}")
    name = name.upper()
    if name in PERSPECTIVE_MODELS:
        if k4:
            raise fail("unsupported distortion: a perspective camera with k4 (COLMAP has no such model)")
        if not any((k1, k2, k3, p1, p2)):
            return "PINHOLE", int(width), int(height), [fx, fy, cx, cy]
        if not k3:
            return "OPENCV", int(width), int(height), [fx, fy, cx, cy, k1, k2, p1, p2]
        return "FULL_OPENCV", int(width), int(height), [fx, fy, cx, cy, k1, k2, p1, p2, k3, 0.0, 0.0, 0.0]
    if name in FISHEYE_MODELS:
        if p1 or p2:
            raise fail("unsupported distortion: a fisheye camera with p1/p2")
        return "OPENCV_FISHEYE", int(width), int(height), [fx, fy, cx, cy, k1, k2, k3, k4]
    raise fail(f"unsupported camera model {name!r} (supported: OPENCV, PINHOLE, OPENCV_FISHEYE)")
