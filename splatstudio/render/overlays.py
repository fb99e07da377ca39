"""What the viewer draws over the splats, as line geometry (pure numpy): the training cameras' frustums, a
ground grid, the world axes (`Overlays` says which are on), and the edit tools' overlays (`EditOverlay`,
`SplatCanvas.set_overlay`). `painter.SplatPainter` draws them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from splatstudio.render.camera import TrainingCamera

OVERLAY_MODES = ("lines", "line_strip", "line_loop", "points")
GRID_COLOR = (0.6, 0.6, 0.6, 0.35)
FRUSTUM_COLOR = (1.0, 0.8, 0.1, 0.9)


def frustum_lines(cameras: Sequence[TrainingCamera], depth: float) -> np.ndarray:
    """(8 * len(cameras), 3) line-segment endpoints: each camera's 4 side edges and image rectangle."""
    segments = []
    for cam in cameras:
        intr, pose = cam.intrinsics, cam.pose
        corners_px = np.array([[0, 0], [intr.width, 0], [intr.width, intr.height], [0, intr.height]], dtype=float)
        rays = np.column_stack(
            [(corners_px[:, 0] - intr.cx) / intr.fx, (corners_px[:, 1] - intr.cy) / intr.fy, np.ones(4)]
        )
        world = (rays * depth) @ pose.R + pose.center  # R^T applied to row vectors
        c = pose.center
        for i in range(4):
            segments += [c, world[i], world[i], world[(i + 1) % 4]]
    return np.asarray(segments, dtype=np.float32).reshape(-1, 3)


def grid_lines(center: np.ndarray, up: np.ndarray, radius: float, count: int = 20) -> np.ndarray:
    """Line endpoints of a square grid of ``count`` cells, perpendicular to `up`, below the scene."""
    up = np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
    e1 = np.cross(up, np.eye(3)[int(np.argmin(np.abs(up)))])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    origin = np.asarray(center, dtype=np.float64) - radius * up
    ticks = np.linspace(-radius, radius, count + 1)
    lines = []
    for s in ticks:
        lines += [origin + s * e1 - radius * e2, origin + s * e1 + radius * e2]
        lines += [origin + s * e2 - radius * e1, origin + s * e2 + radius * e1]
    return np.asarray(lines, dtype=np.float32)


def axes_lines(length: float) -> tuple[np.ndarray, np.ndarray]:
    """World axes at the origin: endpoints and RGBA colours (x red, y green, z blue)."""
    pts = np.zeros((6, 3), dtype=np.float32)
    cols = np.zeros((6, 4), dtype=np.float32)
    for axis in range(3):
        pts[2 * axis + 1, axis] = length
        cols[2 * axis : 2 * axis + 2, axis] = 1.0
        cols[2 * axis : 2 * axis + 2, 3] = 1.0
    return pts, cols


@dataclass
class Overlays:
    """Which overlays to draw."""

    frustums: bool = False
    points: bool = False
    axes: bool = False
    grid: bool = False



def overlay_geometry(name: str, center: np.ndarray, radius: float, up: np.ndarray,
                     cameras: Sequence[TrainingCamera],
                     sparse: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Endpoints (or points) and RGBA colours of the overlay `name` ("grid", "axes", "frustums", "points") for a
    scene framed by `center` and `radius`; None when there is nothing to draw (no cameras, no sparse points)."""
    if name == "grid":
        pts = grid_lines(center, up, radius)
        return pts, np.tile(np.array(GRID_COLOR, np.float32), (len(pts), 1))
    if name == "axes":
        return axes_lines(0.25 * radius)
    if name == "frustums" and cameras:
        pts = frustum_lines(cameras, 0.05 * radius)
        return pts, np.tile(np.array(FRUSTUM_COLOR, np.float32), (len(pts), 1))
    if name == "points" and sparse is not None:
        return sparse
    return None


def sparse_points(xyz: np.ndarray, rgb: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """SfM points as the `points` overlay draws them: (N, 3) float32 positions and (N, 4) RGBA in 0..1 (`rgb`
    uint8 or float in 0..1; default light grey)."""
    xyz = np.asarray(xyz, dtype=np.float32).reshape(-1, 3)
    if rgb is None:
        rgb = np.full((len(xyz), 3), 0.8, dtype=np.float32)
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.max(initial=0) > 1.0:
        rgb = rgb / 255.0
    return xyz, np.column_stack([rgb, np.ones(len(xyz), dtype=np.float32)])


@dataclass
class EditOverlay:
    """An overlay of the edit tools (`SplatCanvas.set_overlay`) and, once drawn, its GPU buffers."""

    positions: np.ndarray
    colors: Any
    mode: str
    screen: bool
    size: float
    indices: np.ndarray | None = None
    vbo: Any = None  # gloo.VertexBuffer of the positions
    ibo: Any = None  # gloo.IndexBuffer of the indices


def screen_to_ndc(xy: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 3) normalised device coordinates of (N, 2) logical pixels (top-left origin) of a `width` x `height`
    view."""
    xy = np.asarray(xy, dtype=np.float32).reshape(-1, 2)
    ndc = np.zeros((len(xy), 3), dtype=np.float32)
    ndc[:, 0] = 2.0 * xy[:, 0] / max(width, 1) - 1.0
    ndc[:, 1] = 1.0 - 2.0 * xy[:, 1] / max(height, 1)
    return ndc


FRAME_AXIS_COLORS = ((1.0, 0.2, 0.2, 1.0), (0.2, 1.0, 0.2, 1.0), (0.3, 0.5, 1.0, 1.0))
FRAME_GRID_COLOR = (0.6, 0.6, 0.6, 0.45)


def frame_lines(radius: float) -> tuple[np.ndarray, np.ndarray]:
    """An edited frame's axes at its origin (x red, -y (up) green, z blue, a quarter of `radius` long) and a
    10 x 10 grid on its ground (y = 0) `radius` wide: segment endpoints in that frame and RGBA colours."""
    length = 0.25 * radius
    axes = np.array([[0, 0, 0], [length, 0, 0], [0, 0, 0], [0, -length, 0], [0, 0, 0], [0, 0, length]], float)
    grid = []
    for v in np.linspace(-radius, radius, 11):
        grid += [[v, 0.0, -radius], [v, 0.0, radius], [-radius, 0.0, v], [radius, 0.0, v]]
    colors = np.vstack([np.repeat(np.array(FRAME_AXIS_COLORS), 2, axis=0),
                        np.tile(FRAME_GRID_COLOR, (len(grid), 1))]).astype(np.float32)
    return np.vstack([axes, np.asarray(grid)]), colors


def region_lines(shape: str, centre: np.ndarray, size: Any, axes: Any = None) -> np.ndarray:
    """Segment endpoints of a selection region: a "sphere" of radius `size` (three great circles) or a "box"
    of half sizes `size` along the columns of `axes` (its 12 edges), around `centre`."""
    if shape == "sphere":
        angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        ring = np.column_stack([np.cos(angles), np.sin(angles), np.zeros_like(angles)])
        loops = [ring, ring[:, [2, 0, 1]], ring[:, [1, 2, 0]]]
        segments = [np.stack([loop, np.roll(loop, -1, axis=0)], axis=1).reshape(-1, 3) for loop in loops]
        return centre + size * np.vstack(segments)
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    edges = [(a, b) for a in range(8) for b in range(a + 1, 8) if np.sum(corners[a] != corners[b]) == 1]
    local = np.array([corners[i] for edge in edges for i in edge]) * size
    return centre + local @ np.asarray(axes).T
