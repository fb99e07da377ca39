"""Synthetic photo-set generator with ground-truth camera poses.

``splatstudio sample DIR`` uses :func:`generate_sample` to give a new user a
photo set for trying the whole pipeline, and the tests use it as ground truth
for structure-from-motion and training.

The scene is a small "toy": a box, two spheres and a cylinder standing on a
round textured mat, inside a far-away textured dome (sky, distant hills and a
meadow) so that no pixel is empty.  Every surface carries a deterministic,
non-repetitive, multi-scale colour texture (fractal noise, sharp-edged blobs,
jittered stripes and veins), which gives SIFT plenty of distinctive features.
Shading is Lambertian with one directional light, hard shadows and ambient
light, so a surface point has the same colour in every view.

Conventions
-----------
* World frame: right-handed, **+z is up**, the mat lies in the plane z = 0.
* Cameras follow COLMAP: ``x_cam = R @ x_world + t``; the camera looks along
  its +z axis, x points right and y points down in the image.
* Pixel (col, row) covers ``[col, col+1) x [row, row+1)``; its centre is at
  ``(col + 0.5, row + 0.5)`` and the principal point is the image centre.

Rendering is vectorised numpy ray casting with analytic intersections and 2x2
supersampling.  Image rows are split into chunks rendered by a thread pool
(numpy releases the GIL in its inner loops).  The textures are baked by
`sample_textures`.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from splatstudio.model import sample_textures
from splatstudio.model.geometry import Intrinsics
from splatstudio.model.sample_textures import Grid

__all__ = [
    "GROUND_TRUTH_NAME",
    "Box",
    "Cylinder",
    "Intrinsics",
    "SampleCamera",
    "SampleScene",
    "SampleSet",
    "Sphere",
    "build_scene",
    "generate_sample",
    "load_ground_truth",
    "look_at_camera",
    "orbit_cameras",
    "render_depth",
    "render_view",
]

GROUND_TRUTH_NAME = "ground_truth.json"
GROUND_TRUTH_FORMAT = "splatstudio-sample-ground-truth"
CONVENTION = (
    "COLMAP: x_cam = R @ x_world + t; the camera looks along +z, x right, y down; "
    "camera centre C = -R^T t; world up is +z; pixel (col, row) has its centre at "
    "(col + 0.5, row + 0.5); pinhole model without distortion."
)
JPEG_QUALITY = 92
HORIZONTAL_FOV_DEG = 55.0
LOOK_AT = np.array([0.0, 0.0, 0.55])
ORBIT_DISTANCE = 4.4
RING_ELEVATIONS_DEG = (22.0, 38.0)
LIGHT_DIR = np.array([0.45, -0.35, 0.82]) / np.linalg.norm([0.45, -0.35, 0.82])
AMBIENT = 0.38
GROUND_RADIUS = 3.0
DOME_RADIUS = 40.0
SUPERSAMPLE = 2
CHUNK_ROWS = 32
_EPS = 1e-6

ProgressCallback = Callable[[float, str], None]


# --------------------------------------------------------------------------- #
# Cameras and result containers
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class SampleCamera:
    """One view: world-to-camera rotation ``R`` (3x3) and translation ``t``."""

    name: str
    rotation: np.ndarray
    translation: np.ndarray

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates, ``-R^T t``."""
        return -self.rotation.T @ self.translation

    def project(self, points: np.ndarray, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
        """Project world points (N, 3) to pixels (N, 2); also returns depths (N,)."""
        cam = np.atleast_2d(points) @ self.rotation.T + self.translation
        depth = cam[:, 2]
        pixels = np.stack(
            [intrinsics.fx * cam[:, 0] / depth + intrinsics.cx, intrinsics.fy * cam[:, 1] / depth + intrinsics.cy],
            axis=1,
        )
        return pixels, depth


@dataclass(frozen=True)
class SampleSet:
    """A generated photo set and its ground truth."""

    directory: Path
    seed: int
    intrinsics: Intrinsics
    cameras: tuple[SampleCamera, ...]
    look_at: np.ndarray

    @property
    def image_paths(self) -> list[Path]:
        """Paths of the JPEG images, in view order."""
        return [self.directory / cam.name for cam in self.cameras]

    def poses(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{image name: (R_w2c, t)}``, the input format of ``poses.pose_errors``."""
        return {cam.name: (cam.rotation, cam.translation) for cam in self.cameras}


def look_at_camera(
    name: str, center: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])
) -> SampleCamera:
    """Camera at ``center`` looking at ``target`` with world ``up`` pointing up in the image."""
    forward = target - center
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    return SampleCamera(name, rotation, -rotation @ center)


def orbit_cameras(count: int, seed: int = 0) -> list[SampleCamera]:
    """``count`` cameras on an orbit around the toy, alternating between two heights.

    Views are evenly spaced in azimuth (starting angle derived from ``seed``) and
    alternate between the elevations in :data:`RING_ELEVATIONS_DEG`, all at
    :data:`ORBIT_DISTANCE` from :data:`LOOK_AT`.  Names are ``IMG_0001.jpg`` ...
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    start = np.random.default_rng([seed, 7]).uniform(0.0, 2.0 * math.pi)
    cameras = []
    for i in range(count):
        azimuth = start + 2.0 * math.pi * i / count
        elevation = math.radians(RING_ELEVATIONS_DEG[i % len(RING_ELEVATIONS_DEG)])
        offset = ORBIT_DISTANCE * np.array(
            [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)]
        )
        cameras.append(look_at_camera(f"IMG_{i + 1:04d}.jpg", LOOK_AT + offset, LOOK_AT))
    return cameras


# --------------------------------------------------------------------------- #
# Geometry
# --------------------------------------------------------------------------- #


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot product of (N, 3) arrays, or of (N, 3) with (3,)."""
    if b.ndim == 1:
        return a @ b
    return np.einsum("ij,ij->i", a, b)


@dataclass(frozen=True)
class Sphere:
    """Sphere given by its centre and radius."""

    center: np.ndarray
    radius: float

    def intersect(self, origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """Nearest positive ray parameter (``inf`` on a miss); directions are unit."""
        oc = origin - self.center
        b = _dot(direction, oc)
        c = _dot(oc, oc) if oc.ndim == 2 else float(oc @ oc)
        disc = b * b - (c - self.radius**2)
        root = np.sqrt(np.maximum(disc, 0.0))
        t = np.where(-b - root > _EPS, -b - root, -b + root)
        return np.where((disc >= 0.0) & (t > _EPS), t, np.inf)

    def normal(self, points: np.ndarray) -> np.ndarray:
        """Outward unit normals at surface points (N, 3)."""
        return (points - self.center) / self.radius

    def distance(self, points: np.ndarray) -> np.ndarray:
        """Signed distance to the surface."""
        return np.linalg.norm(points - self.center, axis=-1) - self.radius


@dataclass(frozen=True)
class Box:
    """Box rotated by ``yaw`` radians about the vertical axis."""

    center: np.ndarray
    half_size: np.ndarray
    yaw: float

    @property
    def axes(self) -> np.ndarray:
        """Rows are the box axes in world coordinates."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])

    def intersect(self, origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
        local_o = self.axes @ (origin - self.center).T
        local_d = self.axes @ direction.T
        local_d[np.abs(local_d) < 1e-12] = 1e-12
        inv = 1.0 / local_d
        t_near = np.full(len(direction), -np.inf)
        t_far = np.full(len(direction), np.inf)
        for axis in range(3):
            t1 = (-self.half_size[axis] - local_o[axis]) * inv[axis]
            t2 = (self.half_size[axis] - local_o[axis]) * inv[axis]
            np.maximum(t_near, np.minimum(t1, t2), out=t_near)
            np.minimum(t_far, np.maximum(t1, t2), out=t_far)
        t = np.where(t_near > _EPS, t_near, t_far)
        return np.where((t_near <= t_far) & (t > _EPS), t, np.inf)

    def normal(self, points: np.ndarray) -> np.ndarray:
        local = (points - self.center) @ self.axes.T / self.half_size
        face = np.argmax(np.abs(local), axis=1)
        normal_local = np.zeros_like(local)
        rows = np.arange(len(local))
        normal_local[rows, face] = np.sign(local[rows, face])
        return normal_local @ self.axes

    def distance(self, points: np.ndarray) -> np.ndarray:
        q = np.abs((points - self.center) @ self.axes.T) - self.half_size
        return np.linalg.norm(np.maximum(q, 0.0), axis=-1) + np.minimum(q.max(axis=-1), 0.0)


@dataclass(frozen=True)
class Cylinder:
    """Vertical cylinder standing on the ground (z from 0 to ``height``), top cap only."""

    center_xy: np.ndarray
    radius: float
    height: float

    def intersect(self, origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
        o = origin - np.array([*self.center_xy, 0.0])
        ox, oy, oz = (o[..., 0], o[..., 1], o[..., 2])
        dx, dy, dz = direction[:, 0], direction[:, 1], direction[:, 2]
        a = dx * dx + dy * dy
        b = ox * dx + oy * dy
        c = ox * ox + oy * oy - self.radius**2
        disc = b * b - a * c
        with np.errstate(divide="ignore", invalid="ignore"):
            root = np.sqrt(np.maximum(disc, 0.0))
            t_side = np.where(-b - root > _EPS * a, (-b - root) / a, (-b + root) / a)
            z = oz + t_side * dz
            side_ok = (disc >= 0.0) & (a > 0.0) & (t_side > _EPS) & (z >= 0.0) & (z <= self.height)
            t_cap = (self.height - oz) / dz
        rx, ry = ox + t_cap * dx, oy + t_cap * dy
        cap_ok = (t_cap > _EPS) & (rx * rx + ry * ry <= self.radius**2)
        return np.minimum(np.where(side_ok, t_side, np.inf), np.where(cap_ok, t_cap, np.inf))

    def normal(self, points: np.ndarray) -> np.ndarray:
        radial = points[:, :2] - self.center_xy
        on_cap = points[:, 2] >= self.height - 1e-6 * max(1.0, self.height)
        normal = np.column_stack([radial / self.radius, np.zeros(len(points))])
        normal[on_cap] = (0.0, 0.0, 1.0)
        return normal

    def distance(self, points: np.ndarray) -> np.ndarray:
        radial = np.linalg.norm(points[..., :2] - self.center_xy, axis=-1) - self.radius
        vertical = np.abs(points[..., 2] - self.height / 2) - self.height / 2
        outside = np.hypot(np.maximum(radial, 0.0), np.maximum(vertical, 0.0))
        return outside + np.minimum(np.maximum(radial, vertical), 0.0)


def _intersect_ground(origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Ray parameter on the mat (disc of :data:`GROUND_RADIUS` in z = 0), seen from above."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -origin[..., 2] / direction[:, 2]
    x = origin[..., 0] + t * direction[:, 0]
    y = origin[..., 1] + t * direction[:, 1]
    hit = (direction[:, 2] < 0.0) & (t > _EPS) & (x * x + y * y <= GROUND_RADIUS**2)
    return np.where(hit, t, np.inf)


def _intersect_dome(origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Exit parameter of rays from inside the dome sphere (always hits)."""
    b = _dot(direction, origin)
    c = float(origin @ origin) if origin.ndim == 1 else _dot(origin, origin)
    return -b + np.sqrt(b * b - c + DOME_RADIUS**2)


# --------------------------------------------------------------------------- #
# Scene
# --------------------------------------------------------------------------- #

OBJECT_BOUNDS = Sphere(np.array([0.0, 0.0, 0.6]), 1.5)
"""Bounding sphere of all objects, used to skip intersection tests."""


@dataclass(frozen=True)
class SampleScene:
    """The toy scene: analytic primitives plus their baked colour textures."""

    seed: int
    objects: tuple[Sphere | Box | Cylinder, ...]
    object_texture: Grid
    ground_texture: Grid
    dome_texture: Grid

    @property
    def ground_id(self) -> int:
        return len(self.objects)

    @property
    def dome_id(self) -> int:
        return len(self.objects) + 1

    def intersect(self, origin: np.ndarray, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest hit of unit rays: ``(t, surface id)``; ids index :attr:`objects`,
        then the ground (:attr:`ground_id`) and the dome (:attr:`dome_id`).

        ``origin`` is one point (3,) shared by all rays or one per ray (N, 3).
        """
        best = _intersect_ground(origin, direction)
        ids = np.where(np.isfinite(best), self.ground_id, self.dome_id)
        near = np.flatnonzero(np.isfinite(OBJECT_BOUNDS.intersect(origin, direction)))
        near_origin = origin if origin.ndim == 1 else origin[near]
        near_best, near_ids = best[near], ids[near]
        for index, shape in enumerate(self.objects):
            t = shape.intersect(near_origin, direction[near])
            closer = t < near_best
            near_best[closer] = t[closer]
            near_ids[closer] = index
        best[near], ids[near] = near_best, near_ids
        sky = ids == self.dome_id
        best[sky] = _intersect_dome(origin if origin.ndim == 1 else origin[sky], direction[sky])
        return best, ids

    def occluded(self, origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """Whether rays (N origins, N directions) hit any object."""
        blocked = np.zeros(len(direction), dtype=bool)
        near = np.flatnonzero(np.isfinite(OBJECT_BOUNDS.intersect(origin, direction)))
        for shape in self.objects:
            blocked[near] |= np.isfinite(shape.intersect(origin[near], direction[near]))
        return blocked


def _toy_objects() -> tuple[Sphere | Box | Cylinder, ...]:
    return (
        Box(np.array([0.0, 0.05, 0.30]), np.array([0.50, 0.38, 0.30]), math.radians(20.0)),
        Sphere(np.array([0.0, 0.05, 0.97]), 0.42),
        Cylinder(np.array([0.82, -0.62]), 0.22, 0.85),
        Sphere(np.array([-0.78, 0.68, 0.27]), 0.27),
    )


def build_scene(seed: int = 0) -> SampleScene:
    """Build the toy scene; textures are fully determined by ``seed``.

    The three textures are baked concurrently, each from its own child seed.
    """
    objects = _toy_objects()
    object_rng, ground_rng, dome_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    with ThreadPoolExecutor(max_workers=3) as pool:
        object_texture = pool.submit(sample_textures.object_texture, object_rng, objects)
        ground_texture = pool.submit(sample_textures.ground_texture, ground_rng, GROUND_RADIUS)
        dome_texture = pool.submit(sample_textures.dome_texture, dome_rng)
        return SampleScene(seed, objects, object_texture.result(), ground_texture.result(), dome_texture.result())


# --------------------------------------------------------------------------- #
# Rendering
# --------------------------------------------------------------------------- #


def _camera_rays(camera: SampleCamera, intrinsics: Intrinsics, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Unit world-space directions (N, 3) through pixel positions (``rows`` x ``cols``)."""
    x = (cols - intrinsics.cx) / intrinsics.fx
    y = (rows - intrinsics.cy) / intrinsics.fy
    cam = np.empty((len(rows), len(cols), 3))
    cam[..., 0] = x[None, :]
    cam[..., 1] = y[:, None]
    cam[..., 2] = 1.0
    cam /= np.linalg.norm(cam, axis=-1, keepdims=True)
    return cam.reshape(-1, 3) @ camera.rotation


def _surface_color(scene: SampleScene, ids: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Unshaded texture colour of hit points."""
    color = np.empty((len(ids), 3), dtype=np.float32)
    on_object = ids < scene.ground_id
    color[on_object] = scene.object_texture.lookup(points[on_object])
    ground = ids == scene.ground_id
    color[ground] = scene.ground_texture.lookup(points[ground, :2])
    sky = ids == scene.dome_id
    direction = points[sky] / DOME_RADIUS
    angles = np.column_stack(
        [np.arctan2(direction[:, 1], direction[:, 0]), np.arcsin(np.clip(direction[:, 2], -1.0, 1.0))]
    )
    color[sky] = scene.dome_texture.lookup(angles)
    return color


def _irradiance(scene: SampleScene, ids: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Lambertian light factor (ambient + shadowed direct light); 1 on the dome."""
    light = np.ones(len(ids), dtype=np.float32)
    normals = np.zeros((len(ids), 3))
    for index, shape in enumerate(scene.objects):
        mine = ids == index
        normals[mine] = shape.normal(points[mine])
    normals[ids == scene.ground_id] = (0.0, 0.0, 1.0)
    lit = ids != scene.dome_id
    cosine = np.maximum(normals[lit] @ LIGHT_DIR, 0.0)
    facing = cosine > 0.0
    lit_points = points[lit][facing] + 1e-4 * normals[lit][facing]
    shadow = scene.occluded(lit_points, np.broadcast_to(LIGHT_DIR, lit_points.shape))
    cosine[np.flatnonzero(facing)[shadow]] = 0.0
    light[lit] = AMBIENT + (1.0 - AMBIENT) * cosine
    return light


def _shade_rays(scene: SampleScene, origin: np.ndarray, directions: np.ndarray) -> np.ndarray:
    t, ids = scene.intersect(origin, directions)
    points = origin + directions * t[:, None]
    return _surface_color(scene, ids, points) * _irradiance(scene, ids, points)[:, None]


def _render_rows(
    scene: SampleScene, camera: SampleCamera, intrinsics: Intrinsics, row_range: tuple[int, int]
) -> np.ndarray:
    """Linear RGB (rows, width, 3) of image rows ``[row_start, row_stop)``, supersampled."""
    row_start, row_stop = row_range
    offsets = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    rows = (np.arange(row_start, row_stop)[:, None] + offsets).ravel()
    cols = (np.arange(intrinsics.width)[:, None] + offsets).ravel()
    rgb = _shade_rays(scene, camera.center, _camera_rays(camera, intrinsics, rows, cols))
    rgb = rgb.reshape(row_stop - row_start, SUPERSAMPLE, intrinsics.width, SUPERSAMPLE, 3)
    return rgb.mean(axis=(1, 3))


def _row_chunks(height: int) -> list[tuple[int, int]]:
    return [(start, min(start + CHUNK_ROWS, height)) for start in range(0, height, CHUNK_ROWS)]


def render_view(
    scene: SampleScene, camera: SampleCamera, intrinsics: Intrinsics, executor: ThreadPoolExecutor | None = None
) -> np.ndarray:
    """Render one view as an 8-bit RGB array of shape (height, width, 3)."""
    chunks = _row_chunks(intrinsics.height)
    work = functools.partial(_render_rows, scene, camera, intrinsics)
    if executor is None:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            parts = list(pool.map(work, chunks))
    else:
        parts = list(executor.map(work, chunks))
    rgb = np.concatenate(parts, axis=0)
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def render_depth(scene: SampleScene, camera: SampleCamera, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Depth along the optical axis and surface id at each pixel centre, (height, width) each."""
    rows = np.arange(intrinsics.height) + 0.5
    cols = np.arange(intrinsics.width) + 0.5
    directions = _camera_rays(camera, intrinsics, rows, cols)
    t, ids = scene.intersect(camera.center, directions)
    depth = t * (directions @ camera.rotation[2])
    shape = (intrinsics.height, intrinsics.width)
    return depth.reshape(shape), ids.reshape(shape)


# --------------------------------------------------------------------------- #
# Photo set I/O
# --------------------------------------------------------------------------- #


def _save_jpeg(image: np.ndarray, path: Path) -> None:
    """Write atomically: a temporary file in the same directory, then ``os.replace``."""
    temporary = path.with_name(f".{path.name}.tmp")
    Image.fromarray(image).save(temporary, format="JPEG", quality=JPEG_QUALITY)
    os.replace(temporary, path)


def _write_ground_truth(sample: SampleSet) -> None:
    document = {
        "format": GROUND_TRUTH_FORMAT,
        "version": 1,
        "convention": CONVENTION,
        "world_up": [0.0, 0.0, 1.0],
        "seed": sample.seed,
        "look_at": sample.look_at.tolist(),
        "intrinsics": sample.intrinsics.to_dict(),
        "images": [
            {"name": cam.name, "R": cam.rotation.tolist(), "t": cam.translation.tolist(), "center": cam.center.tolist()}
            for cam in sample.cameras
        ],
    }
    path = sample.directory / GROUND_TRUTH_NAME
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2))
    os.replace(temporary, path)


def generate_sample(
    out_dir: str | os.PathLike,
    count: int = 24,
    width: int = 640,
    height: int = 480,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> SampleSet:
    """Render ``count`` views of the toy scene into ``out_dir``.

    Writes ``IMG_0001.jpg`` ... (JPEG quality :data:`JPEG_QUALITY`) and
    :data:`GROUND_TRUTH_NAME`; returns the same data.  ``progress(fraction,
    message)`` is called after the scene is built and after each image.
    """
    if width < 16 or height < 16:
        raise ValueError("width and height must be at least 16 pixels")
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda fraction, message: None)
    report(0.0, "Building the sample scene")
    scene = build_scene(seed)
    intrinsics = Intrinsics.from_fov_x(width, height, HORIZONTAL_FOV_DEG)
    cameras = tuple(orbit_cameras(count, seed))
    report(1.0 / (count + 1), "Rendering images")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for index, camera in enumerate(cameras):
            _save_jpeg(render_view(scene, camera, intrinsics, pool), directory / camera.name)
            report((index + 2) / (count + 1), f"Rendered {camera.name} ({index + 1}/{count})")
    sample = SampleSet(directory, seed, intrinsics, cameras, LOOK_AT.copy())
    _write_ground_truth(sample)
    return sample


def load_ground_truth(path: str | os.PathLike) -> SampleSet:
    """Read a ``ground_truth.json`` (or the directory holding one) written by :func:`generate_sample`."""
    path = Path(path)
    if path.is_dir():
        path = path / GROUND_TRUTH_NAME
    document = json.loads(path.read_text())
    if document.get("format") != GROUND_TRUTH_FORMAT:
        raise ValueError(f"{path} is not a SplatStudio sample ground-truth file")
    k = document["intrinsics"]
    intrinsics = Intrinsics(
        int(k["width"]), int(k["height"]), float(k["fx"]), float(k["fy"]), float(k["cx"]), float(k["cy"])
    )
    cameras = tuple(
        SampleCamera(item["name"], np.asarray(item["R"], dtype=float), np.asarray(item["t"], dtype=float))
        for item in document["images"]
    )
    return SampleSet(
        path.parent, int(document["seed"]), intrinsics, cameras, np.asarray(document["look_at"], dtype=float)
    )
