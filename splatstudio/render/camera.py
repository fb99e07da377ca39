"""Camera math for the splat viewer (pure numpy, no Qt, no vispy).

Conventions (those of COLMAP and the reference 3DGS trainer):

* camera space is OpenCV-like: x right, y down, z forward (depth);
* a `Pose` stores the world-to-camera rotation ``R`` and translation ``t``
  (``x_cam = R @ x_world + t``), so the camera centre is ``-Rᵀ t``;
* `Intrinsics` (`model.geometry`, shared with the sample scenes) are pinhole pixels with the
  origin at the top-left corner of the image, pixel ``(i, j)`` covering ``[i, i + 1] x [j, j + 1]``.

`OrbitCamera` is the interactive controller (turntable orbit around a target with
a fixed world up, pan, zoom, and fly moves); training cameras come from a
reference ``cameras.json`` or a COLMAP model (`load_training_cameras`).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from splatstudio.model.cleanup import Views
from splatstudio.model.geometry import Intrinsics, quaternion_to_matrix

PathLike = str | os.PathLike[str]

DEFAULT_FOV_Y_DEG = 50.0
_ONE_FOCAL_MODELS = {"SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE"}


class CameraSpecError(ValueError):
    """A camera specification (``FILE:INDEX``) or a cameras file is invalid."""


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    n = np.linalg.norm(v)
    if n < 1e-12:
        raise ValueError("cannot normalise a zero vector")
    return v / n


# ------------------------------------------------------------------------------------- intrinsics


def projection_matrix(intr: Intrinsics, near: float, far: float) -> np.ndarray:
    """4x4 OpenGL clip matrix for OpenCV camera coordinates.

    Maps ``(x, y, z)`` with ``u = fx x/z + cx`` (pixels from the left) and ``v = fy y/z + cy``
    (from the top) to NDC ``x = 2u/W - 1``, ``y = 1 - 2v/H``, depth -1 at `near`, +1 at `far`.
    """
    w, h = intr.width, intr.height
    p = np.zeros((4, 4), dtype=np.float64)
    p[0, 0] = 2.0 * intr.fx / w
    p[0, 2] = 2.0 * intr.cx / w - 1.0
    p[1, 1] = -2.0 * intr.fy / h
    p[1, 2] = 1.0 - 2.0 * intr.cy / h
    p[2, 2] = (far + near) / (far - near)
    p[2, 3] = -2.0 * far * near / (far - near)
    p[3, 2] = 1.0
    return p


# ------------------------------------------------------------------------------------------ poses


@dataclass(frozen=True)
class Pose:
    """World-to-camera rigid transform: ``x_cam = R @ x_world + t`` (OpenCV axes)."""

    R: np.ndarray
    t: np.ndarray

    @classmethod
    def from_c2w(cls, rotation_c2w: np.ndarray, center: np.ndarray) -> Pose:
        """From a camera-to-world rotation (columns: right, down, forward) and the centre."""
        r = np.asarray(rotation_c2w, dtype=np.float64).T
        return cls(r, -r @ np.asarray(center, dtype=np.float64))

    @classmethod
    def look_at(cls, eye: np.ndarray, target: np.ndarray, up: np.ndarray = (0.0, 0.0, 1.0)) -> Pose:
        """Camera at `eye` looking at `target` with `up` pointing up in the image."""
        forward = _unit(np.asarray(target, dtype=np.float64) - np.asarray(eye, dtype=np.float64))
        right = np.cross(forward, _unit(up))
        if np.linalg.norm(right) < 1e-9:  # looking along up: pick any right vector
            right = np.cross(forward, _any_perpendicular(forward))
        right = _unit(right)
        down = np.cross(forward, right)
        return cls.from_c2w(np.stack([right, down, forward], axis=1), eye)

    @property
    def center(self) -> np.ndarray:
        return -self.R.T @ self.t

    @property
    def forward(self) -> np.ndarray:
        return self.R[2].copy()

    @property
    def up(self) -> np.ndarray:
        """World direction that points up in the image (−y axis of the camera)."""
        return -self.R[1]

    @property
    def right(self) -> np.ndarray:
        return self.R[0].copy()

    def view_matrix(self) -> np.ndarray:
        """4x4 world-to-camera matrix."""
        v = np.eye(4, dtype=np.float64)
        v[:3, :3] = self.R
        v[:3, 3] = self.t
        return v


def _any_perpendicular(v: np.ndarray) -> np.ndarray:
    axis = np.eye(3)[int(np.argmin(np.abs(v)))]
    return _unit(np.cross(v, axis))


# --------------------------------------------------------------------------------- orbit control


@dataclass
class OrbitCamera:
    """Turntable orbit + fly controller around `target` with a fixed world `up`.

    `yaw` turns around `up`, `pitch` (radians, positive looks down) tilts; the eye is
    `distance` away from the target, opposite the view direction.
    """

    target: np.ndarray = field(default_factory=lambda: np.zeros(3))
    distance: float = 5.0
    yaw: float = 0.0
    pitch: float = 0.3
    up: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]))
    fov_y_deg: float = DEFAULT_FOV_Y_DEG

    def __post_init__(self) -> None:
        self.target = np.asarray(self.target, dtype=np.float64)
        self.up = _unit(self.up)

    def _basis(self) -> tuple[np.ndarray, np.ndarray]:
        """Two unit vectors spanning the plane perpendicular to `up`, yaw 0 along the first."""
        e1 = _any_perpendicular(self.up)
        return e1, np.cross(self.up, e1)

    @property
    def forward(self) -> np.ndarray:
        e1, e2 = self._basis()
        horizontal = math.cos(self.yaw) * e1 + math.sin(self.yaw) * e2
        return math.cos(self.pitch) * horizontal - math.sin(self.pitch) * self.up

    @property
    def eye(self) -> np.ndarray:
        return self.target - self.distance * self.forward

    def pose(self) -> Pose:
        return Pose.look_at(self.eye, self.target, self.up)

    def orbit(self, d_yaw: float, d_pitch: float) -> None:
        """Turn around the target (radians); pitch stays short of the poles."""
        self.yaw = (self.yaw + d_yaw) % (2 * math.pi)
        self.pitch = float(np.clip(self.pitch + d_pitch, -1.55, 1.55))

    def look(self, d_yaw: float, d_pitch: float) -> None:
        """Fly-style look: turn around the eye, moving the target."""
        eye = self.eye
        self.orbit(d_yaw, d_pitch)
        self.target = eye + self.distance * self.forward

    def pan(self, dx: float, dy: float) -> None:
        """Move target and eye in the image plane by `dx` right, `dy` down (world units)."""
        pose = self.pose()
        self.target = self.target + dx * pose.right - dy * pose.up

    def zoom(self, factor: float, min_distance: float = 1e-4) -> None:
        """Scale the distance to the target (factor < 1 moves closer)."""
        self.distance = max(self.distance * float(factor), min_distance)

    def fly(self, forward: float = 0.0, right: float = 0.0, up: float = 0.0) -> None:
        """Translate eye and target together along the view axes and the world up."""
        pose = self.pose()
        self.target = self.target + forward * pose.forward + right * pose.right + up * self.up

    def set_from_pose(self, pose: Pose, distance: float | None = None) -> None:
        """Match `pose`'s eye and view direction (its roll is dropped: up stays `up`)."""
        if distance is not None:
            self.distance = float(distance)
        f = pose.forward
        e1, e2 = self._basis()
        self.pitch = float(np.clip(-math.asin(float(np.clip(np.dot(f, self.up), -1, 1))), -1.55, 1.55))
        self.yaw = math.atan2(float(np.dot(f, e2)), float(np.dot(f, e1)))
        self.target = pose.center + self.distance * self.forward

    def frame(self, center: np.ndarray, radius: float) -> None:
        """Aim at `center` from far enough to see a sphere of `radius`."""
        self.target = np.asarray(center, dtype=np.float64)
        half = math.radians(self.fov_y_deg) / 2.0
        self.distance = max(float(radius) / math.sin(half), 1e-3)


def scene_frame(positions: np.ndarray, opacities: np.ndarray | None = None,
                log_scales: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Robust (centre, radius) of a splat scene: the centre and half diagonal of :func:`scene_box`."""
    return box_frame(*scene_box(positions, opacities, log_scales))


def box_frame(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, float]:
    """(centre, half diagonal) of the box from ``lo`` to ``hi``."""
    return (lo + hi) / 2.0, max(float(np.linalg.norm(hi - lo) / 2.0), 1e-3)


def scene_box(positions: np.ndarray, opacities: np.ndarray | None = None,
              log_scales: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Robust (low, high) corners of a splat scene. With opacities and log scales: the 5..95 percentile box
    of its *detail* (opaque splats smaller than the median), where a capture's subject is; the large, soft
    splats of a far background would otherwise widen the frame until the subject is a small blur. Else (or
    with under 100 such splats) the 2..98 percentile box of every position."""
    positions = np.asarray(positions, dtype=np.float64)
    if len(positions) == 0:
        return np.full(3, -0.5), np.full(3, 0.5)
    low, high = 2, 98
    if opacities is not None and log_scales is not None:
        detail = detail_mask(opacities, log_scales)
        if int(detail.sum()) >= _MIN_DETAIL:
            positions, low, high = positions[detail], 5, 95
    sample = positions if len(positions) <= 200_000 else positions[:: len(positions) // 200_000]
    return np.percentile(sample, low, axis=0), np.percentile(sample, high, axis=0)


_MIN_DETAIL = 100


def detail_mask(opacities: np.ndarray, log_scales: np.ndarray) -> np.ndarray:
    """A scene's detail: the opaque splats (alpha above 0.5: opacity logit above 0) smaller than the median."""
    largest = np.asarray(log_scales).max(axis=1)
    return (np.asarray(opacities) > 0.0) & (largest < np.median(largest))


# ------------------------------------------------------------------------------ training cameras


@dataclass(frozen=True)
class TrainingCamera:
    """A camera of the training set: its photo name, pose and intrinsics."""

    name: str
    pose: Pose
    intrinsics: Intrinsics


def camera_from_json_entry(entry: dict) -> TrainingCamera:
    """A reference 3DGS ``cameras.json`` entry (position, camera-to-world rotation, fx, fy)."""
    try:
        width, height = int(entry["width"]), int(entry["height"])
        rotation = np.asarray(entry["rotation"], dtype=np.float64).reshape(3, 3)
        center = np.asarray(entry["position"], dtype=np.float64).reshape(3)
        fx, fy = float(entry["fx"]), float(entry["fy"])
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise CameraSpecError(f"cameras.json entry is malformed ({exc})") from None
    if not (np.isfinite(rotation).all() and np.isfinite(center).all() and np.isfinite([fx, fy]).all()):
        raise CameraSpecError(f"cameras.json entry {entry.get('id', '?')} has a value that is not a number "
                              "(NaN or infinite)")
    if width <= 0 or height <= 0 or fx <= 0 or fy <= 0:
        raise CameraSpecError(f"cameras.json entry {entry.get('id', '?')} has a size or focal length that is not "
                              "positive")
    intr = Intrinsics(width, height, fx, fy, width / 2.0, height / 2.0)
    return TrainingCamera(str(entry.get("img_name", entry.get("id", ""))), Pose.from_c2w(rotation, center), intr)


def camera_from_colmap(image, camera) -> TrainingCamera:
    """A COLMAP `Image` (world-to-camera qvec, tvec) seen through its `Camera` (pinhole part only)."""
    params = np.asarray(camera.params, dtype=np.float64)
    if camera.model in _ONE_FOCAL_MODELS:
        fx = fy = params[0]
        cx, cy = params[1], params[2]
    else:
        fx, fy, cx, cy = params[:4]
    intr = Intrinsics(int(camera.width), int(camera.height), float(fx), float(fy), float(cx), float(cy))
    return TrainingCamera(image.name, Pose(quaternion_to_matrix(image.qvec), np.asarray(image.tvec, float)), intr)


def cleanup_views(cameras: Sequence[TrainingCamera]) -> Views:
    """The photos' cameras as the clean-up's detectors take them (``model.cleanup.Views``)."""
    return Views(np.array([c.pose.center for c in cameras], dtype=np.float64).reshape(-1, 3),
                 np.array([c.pose.R.T for c in cameras], dtype=np.float64).reshape(-1, 3, 3),
                 np.array([c.intrinsics.fx for c in cameras], dtype=np.float64),
                 np.array([c.intrinsics.fy for c in cameras], dtype=np.float64),
                 np.array([c.intrinsics.width for c in cameras], dtype=np.float64),
                 np.array([c.intrinsics.height for c in cameras], dtype=np.float64))


def cleanup_views_from(path: Path | None) -> tuple[Views | None, str]:
    """The clean-up's views of a ``cameras.json`` and "" — or None and why not (no file, or one that cannot be
    read: the clean-up then uses only the detectors that need no cameras)."""
    if path is None or not Path(path).is_file():
        return None, f"no cameras at {path}" if path is not None else "no cameras"
    try:
        return cleanup_views(load_training_cameras(path)), ""
    except (CameraSpecError, OSError, ValueError) as exc:
        return None, f"the photos' cameras ({path}) cannot be read ({exc})"


def load_training_cameras(path: PathLike) -> list[TrainingCamera]:
    """Cameras of a ``cameras.json`` file (file order) or a COLMAP model folder (by image name)."""
    path = Path(path)
    if path.is_dir():
        from splatstudio.io.colmap import read_model

        try:
            model = read_model(path)
        except FileNotFoundError as exc:
            raise CameraSpecError(str(exc)) from None
        images = sorted(model.images.values(), key=lambda im: im.name)
        return [camera_from_colmap(im, model.cameras[im.camera_id]) for im in images]
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CameraSpecError(f"{path.name}: cannot read cameras ({exc})") from None
    if not isinstance(entries, list):
        raise CameraSpecError(f"{path.name}: expected a JSON list of cameras")
    return [camera_from_json_entry(e) for e in entries]


def parse_camera_spec(spec: str) -> tuple[Path, int | None]:
    """Split ``'cameras.json:3'`` or ``'sparse/0:3'`` into (path, index); no index gives None."""
    match = re.fullmatch(r"(.+?):(-?\d+)", spec)
    if match and not os.path.exists(spec):
        return Path(match.group(1)), int(match.group(2))
    return Path(spec), None


def camera_from_spec(spec: str) -> TrainingCamera:
    """The training camera named by ``FILE:INDEX`` (index 0 when omitted)."""
    path, index = parse_camera_spec(spec)
    if not path.exists():
        raise CameraSpecError(f"camera file {path} does not exist")
    cameras = load_training_cameras(path)
    index = 0 if index is None else index
    if not cameras:
        raise CameraSpecError(f"{path.name}: holds no cameras")
    if not -len(cameras) <= index < len(cameras):
        raise CameraSpecError(f"{path.name}: camera index {index} out of range (0..{len(cameras) - 1})")
    return cameras[index]


def average_up(poses: Sequence[Pose]) -> np.ndarray:
    """Auto-orient: the normalised mean of the cameras' image-up directions in world space."""
    if not poses:
        return np.array([0.0, 0.0, 1.0])
    mean = np.mean([p.up for p in poses], axis=0)
    if np.linalg.norm(mean) < 1e-9:
        return np.array([0.0, 0.0, 1.0])
    return _unit(mean)


# The world up of a scene without cameras: our readers give every format in the 3DGS/COLMAP frame (x right,
# y down, z forward of the first photo), in which the photographer's up is about -y.
COLMAP_UP = np.array([0.0, -1.0, 0.0])
_MIN_ASPECT = 4.0 / 3.0


def look_at_point(poses: Sequence[Pose]) -> np.ndarray | None:
    """The point nearest to every camera's optical axis (least squares): what a capture circling a subject
    looks at. None when the axes are about parallel (a forward-facing capture): no point stands out."""
    if len(poses) < 2:
        return None
    system, rhs = np.zeros((3, 3)), np.zeros(3)
    for pose in poses:
        d = _unit(pose.forward)
        projector = np.eye(3) - np.outer(d, d)  # removes the component along the axis
        system += projector
        rhs += projector @ pose.center
    eigen = np.linalg.eigvalsh(system)
    if eigen[0] < 0.05 * len(poses):  # the axes leave one direction unconstrained
        return None
    point = np.linalg.solve(system, rhs)
    spread = max(float(np.max([np.linalg.norm(p.center - point) for p in poses])), 1e-9)
    return point if np.all(np.isfinite(point)) and spread < 1e6 else None


def home_view(cameras: Sequence[TrainingCamera], center: np.ndarray, radius: float,
              fov_y_deg: float = DEFAULT_FOV_Y_DEG, half_extent: np.ndarray | None = None) -> OrbitCamera:
    """The view a scene opens on. With its training cameras: the first photo's viewpoint, orbiting the point
    the cameras look at (so the subject is framed as the photos framed it). Without: the splats' robust
    box (``half_extent`` its half size, else the sphere of ``radius``) seen along +z with -y up, the way the
    first photo of a COLMAP scene looked."""
    if cameras:
        up = average_up([c.pose for c in cameras])
        first = cameras[0].pose
        target = look_at_point([c.pose for c in cameras])
        if target is None or float(np.dot(target - first.center, first.forward)) <= 0:
            target = np.asarray(center, dtype=np.float64)
        home = OrbitCamera(up=up, fov_y_deg=fov_y_deg)
        home.set_from_pose(first, distance=float(np.linalg.norm(target - first.center)))
        home.target = target
        if half_extent is not None:  # a photo from far away (a tourist's): as close as the subject fits
            home.distance = min(home.distance, _fit_distance(half_extent, fov_y_deg))
        return home
    home = OrbitCamera(up=COLMAP_UP, fov_y_deg=fov_y_deg)
    home.set_from_pose(Pose.look_at(np.asarray(center) - np.array([0.0, 0.0, 1.0]), center, COLMAP_UP))
    home.pitch = 0.0
    home.frame(center, radius)
    if half_extent is not None:
        home.distance = _fit_distance(half_extent, fov_y_deg)
    return home


def _fit_distance(half_extent: np.ndarray, fov_y_deg: float) -> float:
    """How far from a box's centre its near face fills the view, rather than the sphere around the box (in a
    window at least 4:3 wide, as the viewer's and screenshots' are). The box's axes are taken as the view's:
    exact for the view along z, a fair estimate from elsewhere."""
    half_x, half_y, half_z = (float(v) for v in np.abs(half_extent))
    tangent = math.tan(math.radians(fov_y_deg) / 2.0)
    return max(max(half_y, half_x / _MIN_ASPECT) / tangent + half_z, 1e-3)


def with_intrinsics(camera: TrainingCamera, intrinsics: Intrinsics) -> TrainingCamera:
    """A copy of `camera` with other intrinsics."""
    return replace(camera, intrinsics=intrinsics)
