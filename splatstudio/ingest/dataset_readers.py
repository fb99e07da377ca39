"""Reading a dataset folder (`datasets` imports it as a project): what kind it is (`detect_dataset`), its
cameras, photos and points as a COLMAP model (`read_colmap`, `read_nerfstudio`, `read_trainer_source`), a
reference trainer's model (`read_trained`), random starting points for a scene without points
(`random_points`), and the checks that every photo is readable and the size its camera says
(`check_images`). Nothing here writes. Pure: no Qt, no pycolmap.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from splatstudio.io import colmap
from splatstudio.io.errors import FormatError, load_json_text
from splatstudio.model.project import (
    ProjectError,
    trained_iterations,
)

COLMAP, TRAINER_OUTPUT, NERFSTUDIO = "colmap", "trainer-output", "nerfstudio"
KIND_TITLES = {COLMAP: "COLMAP dataset", TRAINER_OUTPUT: "reference-trainer output", NERFSTUDIO: "nerfstudio dataset"}
PINHOLE_MODELS = ("PINHOLE", "SIMPLE_PINHOLE")
RANDOM_POINTS = 100_000  # the reference 3DGS's count for scenes without points (its synthetic scenes)
EXIF_ORIENTATION = 0x0112

ProgressFn = Callable[[float, str], None]


class DatasetError(ProjectError):
    """A dataset cannot be opened; the message names the file and the problem."""


@dataclass(frozen=True)
class DatasetKind:
    """What :func:`detect_dataset` found: the kind (:data:`COLMAP`, :data:`TRAINER_OUTPUT`,
    :data:`NERFSTUDIO`), the folder (or ``transforms.json``) to import, and a line for people."""

    kind: str
    path: Path
    description: str

    @property
    def title(self) -> str:
        return KIND_TITLES[self.kind]


# ------------------------------------------------------------------------------------------ detection

def colmap_model_folder(folder: Path) -> Path | None:
    """``sparse/0`` (or ``sparse``) of a COLMAP folder when it holds a complete model."""
    for candidate in (folder / "sparse" / "0", folder / "sparse"):
        try:
            colmap.model_extension(candidate)
        except FileNotFoundError:
            continue
        return candidate
    return None


def detect_dataset(path: str | os.PathLike[str]) -> DatasetKind | None:
    """The kind of dataset at ``path`` (cheap: nothing is validated), or ``None`` if it is none of them."""
    path = Path(path).expanduser()
    if path.is_file():
        if path.suffix.lower() == ".json":
            return DatasetKind(NERFSTUDIO, path, nerfstudio_description(path))
        return None
    if not path.is_dir():
        return None
    iterations = trained_iterations(path)
    if iterations:
        source = trainer_source(path)
        where = f"source dataset {source}" if source else "no source dataset found"
        return DatasetKind(TRAINER_OUTPUT, path, f"reference-trainer output: iteration {iterations[-1][0]}, {where}")
    model = colmap_model_folder(path)
    if model is not None and (path / "images").is_dir():
        count = sum(1 for item in (path / "images").rglob("*") if item.is_file())
        kind = "binary" if colmap.model_extension(model) == ".bin" else "text"
        return DatasetKind(COLMAP, path, f"COLMAP dataset: {count} image files, {kind} model in "
                                         f"{model.relative_to(path).as_posix()}")
    if (path / "transforms.json").is_file():
        return DatasetKind(NERFSTUDIO, path, nerfstudio_description(path / "transforms.json"))
    return None


def nerfstudio_description(transforms: Path) -> str:
    try:
        meta = load_json_text(transforms, transforms.read_text(encoding="utf-8"))
        frames = len(meta["frames"])
    except (OSError, ValueError, KeyError, TypeError):  # FormatError is a ValueError
        return f"nerfstudio dataset ({transforms.name})"
    points = "with sparse points" if isinstance(meta, dict) and meta.get("ply_file_path") else "no sparse points"
    return f"nerfstudio dataset: {frames} frames, {points}"


# ------------------------------------------------------------------------------------------ reading

@dataclass
class Sparse:
    """A posed image set ready to store: a COLMAP model, each image's file, and its project name."""

    origin: str  # e.g. "COLMAP dataset /data/x"
    source: Path
    model: colmap.ColmapModel
    files: dict[int, Path]  # image id -> source file
    names: dict[int, str] = field(default_factory=dict)  # image id -> flat project name
    sizes: dict[int, tuple[int, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    image_notes: dict[int, list[str]] = field(default_factory=dict)
    rejected: list[dict[str, str]] = field(default_factory=list)
    random_points: bool = False
    model_file: str = "the model"  # where the cameras are described, for messages

    @property
    def undistorted(self) -> bool:
        return all(camera.model in PINHOLE_MODELS for camera in self.model.cameras.values())


@dataclass
class Trained:
    folder: Path
    iteration: int
    ply: Path
    gaussians: int
    sh_degree: int
    cameras_json: Path | None
    cfg_args: Path | None
    cfg: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def format_error(exc: FormatError) -> DatasetError:
    return DatasetError(f"{exc.path}: {exc.message}")


def read_colmap(folder: Path) -> Sparse:
    model_dir = colmap_model_folder(folder)
    images_dir = folder / "images"
    if model_dir is None:
        raise DatasetError(f"{folder}: no COLMAP model in sparse/0 (cameras, images, points3D as .bin or .txt)")
    if not images_dir.is_dir():
        raise DatasetError(f"{folder}: no images/ folder beside the COLMAP model")
    try:
        model = colmap.read_model(model_dir)
    except FormatError as exc:
        raise format_error(exc) from None
    except OSError as exc:
        raise DatasetError(f"{exc.filename or model_dir}: cannot be read ({exc.strerror or exc})") from None
    ext = colmap.model_extension(model_dir)
    images_file = model_dir / f"images{ext}"
    if not model.images:
        raise DatasetError(f"{images_file}: the model has no images")
    files: dict[int, Path] = {}
    for image_id, image in model.images.items():
        if image.camera_id not in model.cameras:
            raise DatasetError(f"{images_file}: image {image.name!r} refers to camera {image.camera_id}, which "
                               f"{model_dir / ('cameras' + ext)} does not have")
        name = PurePosixPath(image.name.replace("\\", "/"))
        if name.is_absolute() or ".." in name.parts or PureWindowsPath(image.name).drive:
            raise DatasetError(f"{images_file}: the image name {image.name!r} points outside {images_dir} (COLMAP "
                               "names images relative to the images folder); this model is not imported")
        file = images_dir / image.name
        if not file.is_file():
            raise DatasetError(f"{file}: missing — the image {image.name!r} is in the model ({images_file}) but "
                               f"not in {images_dir}")
        files[image_id] = file
    sparse = Sparse(f"{KIND_TITLES[COLMAP]} {folder}", folder, model, files,
                     model_file=str(model_dir / f"cameras{ext}"))
    for camera_id, camera in model.cameras.items():
        pinhole = without_null_distortion(camera)
        if pinhole is not camera:
            model.cameras[camera_id] = pinhole
            sparse.notes.append(f"camera {camera_id}: {camera.model} with no distortion stored as {pinhole.model} "
                                "(the same projection; nothing to undistort)")
    in_model = {path.resolve() for path in files.values()}
    for item in sorted(images_dir.rglob("*")):
        if item.is_file() and item.resolve() not in in_model:
            sparse.rejected.append({"source": str(item), "reason": "not in the COLMAP model (not registered)"})
    if sparse.rejected:
        sparse.notes.append(f"{len(sparse.rejected)} file(s) in {images_dir} are not in the model and were left out")
    if len(model.points) == 0:
        add_random_points(sparse)
    return sparse


# models whose projection is a pinhole's when their distortion parameters are all zero:
# name -> (focal lengths, index of the first distortion parameter)
_NULLABLE_DISTORTION = {"SIMPLE_RADIAL": (1, 3), "RADIAL": (1, 3), "OPENCV": (2, 4), "FULL_OPENCV": (2, 4),
                        "FOV": (2, 4)}


def without_null_distortion(camera: colmap.Camera) -> colmap.Camera:
    """``camera`` as PINHOLE/SIMPLE_PINHOLE when its distortion parameters are all zero, else itself.

    COLMAP's undistorter copies such a camera unchanged (an OPENCV camera stays OPENCV), which the
    trainer refuses; as a pinhole it needs no undistortion at all.
    """
    shape = _NULLABLE_DISTORTION.get(camera.model)
    if shape is None or np.any(np.asarray(camera.params)[shape[1]:] != 0):
        return camera
    focals, first = shape
    model = "SIMPLE_PINHOLE" if focals == 1 else "PINHOLE"
    return colmap.Camera(camera.id, model, camera.width, camera.height, np.asarray(camera.params)[:first].copy())


def read_nerfstudio(path: Path) -> Sparse:
    from splatstudio.io.nerfstudio import read_transforms

    try:
        scene = read_transforms(path)
    except FormatError as exc:
        raise format_error(exc) from None
    images: dict[int, colmap.Image] = {}
    files: dict[int, Path] = {}
    for image_id, frame in enumerate(sorted(scene.frames, key=lambda f: f.file_path), start=1):
        images[image_id] = colmap.Image(image_id, frame.qvec, frame.tvec, frame.camera_id, frame.file_path)
        files[image_id] = frame.path
    empty = colmap.Points3D.without_tracks(np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))
    model = colmap.ColmapModel(scene.cameras, images, empty)
    folder = scene.transforms.parent
    sparse = Sparse(f"{KIND_TITLES[NERFSTUDIO]} {folder}", folder, model, files, notes=list(scene.notes),
                     model_file=str(scene.transforms))
    if scene.applied_transform is not None:
        sparse.notes.append("applied_transform undone: poses and points are back in the original (COLMAP) world")
    if scene.points_xyz is not None and scene.points_rgb is not None:
        n = len(scene.points_xyz)
        model.points = colmap.Points3D.without_tracks(np.arange(1, n + 1), scene.points_xyz, scene.points_rgb,
                                                      np.full(n, -1.0))
        sparse.notes.append(f"{n} sparse points from {scene.ply_path}")
    else:
        add_random_points(sparse)
    return sparse


def random_points(centers: np.ndarray, forward: np.ndarray, count: int = RANDOM_POINTS,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Initial points for a scene without any, grey like the reference's random start (colour SH
    ``rand/255``, about 0.5); float64 positions and uint8 colours.

    Where: when the cameras look at a common point (their optical axes meet, in the least-squares sense,
    in front of most of them: an object-centric set), uniform in a cube centred there, as wide as the
    median distance of the cameras to it — the reference's synthetic scenes have a cube of side 2.6
    with cameras about 4 away. Otherwise (forward-facing sets) uniform in the box spanned by the camera
    centres and the points one scene radius in front of each camera.
    """
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 3)
    forward = np.asarray(forward, dtype=np.float64).reshape(-1, 3)
    projectors = np.eye(3)[None] - forward[:, :, None] * forward[:, None, :]  # onto each axis' normal plane
    a, b = projectors.sum(axis=0), np.einsum("nij,nj->i", projectors, centers)
    eigenvalues = np.linalg.eigvalsh(a)
    box = None
    if eigenvalues[0] > 0.05 * eigenvalues[-1]:  # the axes are not (nearly) parallel
        focus = np.linalg.solve(a, b)
        if np.mean(np.einsum("ij,ij->i", focus - centers, forward) > 0) >= 0.5:
            half = 0.5 * float(np.median(np.linalg.norm(centers - focus, axis=1))) or 1.0
            box = focus - half, focus + half
    if box is None:
        radius = float(np.linalg.norm(centers - centers.mean(axis=0), axis=1).max()) * 1.1 or 1.0
        corners = np.vstack([centers, centers + radius * forward])
        low, high = corners.min(axis=0), corners.max(axis=0)
        pad = np.maximum(0.0, 0.05 * float((high - low).max()) - (high - low) / 2)  # flat boxes get some depth
        box = low - pad, high + pad
    low, high = box
    rng = np.random.default_rng(seed)
    xyz = low + rng.random((count, 3)) * (high - low)
    c0 = 0.28209479177387814  # SH degree-0 basis constant
    rgb = np.clip(np.round((0.5 + c0 * rng.random((count, 3)) / 255.0) * 255.0), 0, 255).astype(np.uint8)
    return xyz, rgb


def add_random_points(sparse: Sparse) -> None:
    images = [sparse.model.images[i] for i in sorted(sparse.model.images)]
    centers = np.array([image.camera_center() for image in images])
    forward = np.array([image.rotation_matrix()[2] for image in images])  # optical axes in the world
    xyz, rgb = random_points(centers, forward, RANDOM_POINTS)
    sparse.model.points = colmap.Points3D.without_tracks(np.arange(1, len(xyz) + 1), xyz, rgb,
                                                         np.full(len(xyz), -1.0))
    sparse.random_points = True
    sparse.notes.append(f"the scene has no sparse points: training starts from {len(xyz):,} random points in the "
                        "cameras' bounding volume (as the reference 3DGS does for synthetic scenes)")


def check_images(sparse: Sparse, progress: ProgressFn) -> None:
    """Every image readable and exactly the size its camera says; EXIF rotations noted, never applied."""
    ids = sorted(sparse.model.images)
    for done, image_id in enumerate(ids):
        image, file = sparse.model.images[image_id], sparse.files[image_id]
        camera = sparse.model.cameras[image.camera_id]
        try:
            with PILImage.open(file) as pil:
                size = pil.size
                orientation = pil.getexif().get(EXIF_ORIENTATION, 1)
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError, PILImage.DecompressionBombError) as exc:
            raise DatasetError(f"{file}: not a readable image ({exc})") from None
        if size != (camera.width, camera.height):
            raise DatasetError(f"{file}: the image is {size[0]}x{size[1]} but its camera {camera.id} in "
                               f"{sparse.model_file} is {camera.width}x{camera.height} (the cameras must describe "
                               "the stored pixels)")
        sparse.sizes[image_id] = size
        if orientation not in (1, None):
            sparse.image_notes.setdefault(image_id, []).append(
                f"EXIF orientation {orientation} ignored: the camera describes the stored pixels")
        progress(0.3 * (done + 1) / len(ids), f"checked {done + 1}/{len(ids)} images")
    rotated = sum(1 for notes in sparse.image_notes.values() if notes)
    if rotated:
        sparse.notes.append(f"{rotated} image(s) carry an EXIF rotation, which is ignored (the cameras describe the "
                            "stored pixels)")
    sparse.names = flat_names({i: sparse.model.images[i].name for i in ids})


def flat_names(names: dict[int, str]) -> dict[int, str]:
    """Project file names without folders: the base name, or the path joined with ``_`` on a clash."""
    bases: dict[str, int] = {}
    for name in names.values():
        base = PurePosixPath(name.replace("\\", "/")).name.lower()
        bases[base] = bases.get(base, 0) + 1
    result: dict[int, str] = {}
    taken: set[str] = set()
    for image_id, name in names.items():
        posix = PurePosixPath(name.replace("\\", "/"))
        flat = posix.name if bases[posix.name.lower()] == 1 else "_".join(p for p in posix.parts if p not in ("/", ".."))
        stem, suffix = os.path.splitext(flat)
        n = 2
        while flat.lower() in taken or flat.startswith("."):
            flat = f"{stem.lstrip('.') or 'image'}-{n}{suffix}"
            n += 1
        taken.add(flat.lower())
        result[image_id] = flat
    return result


CFG_ARGS_MAX_BYTES = 1 << 20  # a trainer's cfg_args is a few hundred bytes


def read_cfg_args(path: Path) -> dict[str, Any]:
    """The values of a reference trainer's ``cfg_args`` (``Namespace(sh_degree=3, source_path='...')``),
    parsed without evaluating code; values that are not literals are left out."""
    try:
        size = path.stat().st_size
        if size > CFG_ARGS_MAX_BYTES:
            raise DatasetError(f"{path}: {size:,} bytes is not a trainer cfg_args file (one Namespace(...) line, "
                               f"at most {CFG_ARGS_MAX_BYTES:,} bytes)")
        text = path.read_text(encoding="utf-8").strip()
        tree = ast.parse(text, mode="eval")
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"{path}: not a trainer cfg_args file (expected Namespace(...): {exc})") from None
    except (RecursionError, MemoryError):
        raise DatasetError(f"{path}: not a trainer cfg_args file (nested too deeply)") from None
    call = tree.body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Namespace"):
        raise DatasetError(f"{path}: not a trainer cfg_args file (expected Namespace(...))")
    values: dict[str, Any] = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            continue
        try:
            values[keyword.arg] = ast.literal_eval(keyword.value)
        except (ValueError, TypeError, RecursionError, MemoryError):  # not a literal, or a pathological one
            continue
    return values


def trainer_source(folder: Path) -> Path | None:
    """The dataset ``cfg_args`` names as ``source_path``, if it is there (absolute, or relative to the
    output folder)."""
    cfg = folder / "cfg_args"
    if not cfg.is_file():
        return None
    try:
        source = read_cfg_args(cfg).get("source_path")
    except DatasetError:
        return None
    if not isinstance(source, str) or not source or len(source) > 4096 or "\0" in source:
        return None  # no path is that long (PATH_MAX)
    candidate = Path(source).expanduser()
    for path in ([candidate] if candidate.is_absolute() else [folder / candidate, folder.parent / candidate]):
        try:
            if path.is_dir():
                return path
        except OSError:  # a name too long for the file system
            continue
    return None


_SPLAT_PROPERTIES = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
                     "rot_0", "rot_1", "rot_2", "rot_3")


def read_trained(folder: Path) -> Trained:
    from splatstudio.io.ply import read_ply_header

    iterations = trained_iterations(folder)
    if not iterations:
        raise DatasetError(f"{folder}: no point_cloud/iteration_N/point_cloud.ply")
    iteration, ply = iterations[-1]
    try:
        header = read_ply_header(ply)
        _, vertex = header.element(ply, "vertex")
    except FormatError as exc:
        raise format_error(exc) from None
    except OSError as exc:
        raise DatasetError(f"{ply}: cannot be read ({exc.strerror or exc})") from None
    names = [p.name for p in vertex.properties]
    missing = [name for name in _SPLAT_PROPERTIES if name not in names]
    if missing:
        raise DatasetError(f"{ply}: not a Gaussian-splat PLY (missing {', '.join(missing)})")
    if vertex.count == 0:
        raise DatasetError(f"{ply}: holds no Gaussians")
    if header.format != "ascii":
        expected = header.body_offset + sum(e.count * e.record_dtype("<").itemsize for e in header.elements
                                            if e.is_scalar)
        actual = ply.stat().st_size
        if actual < expected:
            raise DatasetError(f"{ply}: truncated ({actual} bytes; the header promises {vertex.count} Gaussians in "
                               f"{expected} bytes)")
    rest = sum(1 for name in names if name.startswith("f_rest_"))
    sh_degree = {0: 0, 9: 1, 24: 2, 45: 3}.get(rest)
    if sh_degree is None:
        raise DatasetError(f"{ply}: {rest} f_rest properties is not a spherical-harmonics degree 0-3")
    trained = Trained(folder, iteration, ply, vertex.count, sh_degree, None, None, {})
    cameras = folder / "cameras.json"
    if cameras.is_file():
        try:
            entries = load_json_text(cameras, cameras.read_text(encoding="utf-8"))
        except FormatError as exc:
            raise DatasetError(f"{cameras}: {exc.message}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{cameras}: cannot be read ({exc})") from None
        if not isinstance(entries, list) or not all(isinstance(e, dict) and {"position", "rotation"} <= set(e)
                                                      for e in entries):
            raise DatasetError(f"{cameras}: expected a list of cameras with position and rotation")
        trained.cameras_json = cameras
    else:
        trained.notes.append("no cameras.json: the viewer has no training cameras to step through")
    cfg = folder / "cfg_args"
    if cfg.is_file():
        trained.cfg, trained.cfg_args = read_cfg_args(cfg), cfg
    if len(iterations) > 1:
        trained.notes.append(f"iteration {iteration} imported (the latest of {', '.join(str(n) for n, _ in iterations)})")
    return trained


def read_trainer_source(trained: Trained) -> Sparse | None:
    """The photos the model was trained on, when ``cfg_args`` points to a dataset that can be used."""
    source = trained.cfg.get("source_path")
    if not source:
        trained.notes.append("cfg_args names no source dataset: the project has the trained model but no photos")
        return None
    found = trainer_source(trained.folder)
    found_kind = detect_dataset(found) if found else None
    if found_kind is None or found_kind.kind not in (COLMAP, NERFSTUDIO):
        shown = str(source) if len(str(source)) <= 200 else f"{str(source)[:200]}… ({len(str(source)):,} characters)"
        trained.notes.append(f"the source dataset {shown} is not reachable (or not a COLMAP/nerfstudio dataset): "
                             "the project has the trained model but no photos")
        return None
    try:
        sparse = read_colmap(found_kind.path) if found_kind.kind == COLMAP else read_nerfstudio(found_kind.path)
    except DatasetError as exc:
        trained.notes.append(f"the source dataset could not be used ({exc}): the project has the trained model "
                             "but no photos")
        return None
    if not sparse.undistorted:
        trained.notes.append(f"the source dataset {found_kind.path} has distorted cameras, so it is not what the "
                             "model was trained on: the project has the trained model but no photos")
        return None
    return sparse
