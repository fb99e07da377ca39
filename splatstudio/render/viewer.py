"""The OpenGL Gaussian-splat viewer: a vispy gloo canvas (`SplatCanvas`) the UI embeds via ``.native``
(in a native child window: `splatstudio.ui.embed`).

Rendering (see ``shaders/splat.*.glsl``): the splats' centres and 3D covariances (computed
once on load from scale and rotation) are uploaded once per scene, their colours when the SH
colours are re-evaluated, and each depth sort uploads only an index buffer (4 bytes a splat)
that draws them as GL points, back to front. The vertex shader projects the 3D covariance to
a 2D covariance with the EWA Jacobian and the 0.3 px low-pass of 3DGS; the geometry shader
covers what the fragment shader can keep (the 3-sigma ellipse, less for faint splats whose
alpha falls below 1/255 sooner) with one square point, or, for large or elongated splats, rows
of pixel-aligned square tiles following the ellipse; the fragment shader evaluates
``alpha = min(0.99, opacity * exp(-1/2 dᵀΣ⁻¹d))`` at the pixel centre, zero beyond 3 sigma or
below 1/255, and writes premultiplied colour, blended back to front with
``(ONE, ONE_MINUS_SRC_ALPHA)``. On llvmpipe a point is one primitive whose rasteriser visits no
blocks outside its square: at 1M splats about 30 % less CPU than an instanced quad and 15 % less
than a triangle, and the sort no longer gathers 52 bytes a splat.

On software OpenGL (llvmpipe) full-quality frames are composited on the CPU where that helps
(`composite`, numba, ``compositor="auto"``), in the sort thread, and the GUI thread only shows
the image (a texture): every still frame of a scene larger than the budget or of a viewport
larger than `SYNC_GL_PIXELS` (at 1M splats about 40 % of the GL time; llvmpipe spends 80 % of a
frame rasterising a million small primitives, and even 10k splats at 1280x720 took 80 ms of the
GUI thread), and live previews reloaded in place, during which the previous frame stays on
screen. Only moving frames are drawn with OpenGL there.

CPU side: splats are depth-sorted with a 16-bit radix sort (`sorting`) and their
view-dependent colours evaluated from the SH coefficients (`sh`), recomputed only when the
view direction changed enough. Scenes up to `DEFAULT_BUDGET` splats are sorted synchronously;
larger ones are sorted (and recoloured) in a background thread once the camera settles, the
result reaching the GUI thread through a queued Qt signal. While the camera moves only a
budget of the most important splats (opacity x area of the two largest axes) is drawn,
sorted synchronously; the budget adapts to the measured frame time. A depth order is kept
while the view changes by less than `RESORT_ANGLE_DEG` / `RESORT_SHIFT`.

Needs OpenGL 3.2 (geometry shaders; Mesa llvmpipe has 4.5), the vispy ``pyside6`` app backend
and the ``gl+`` (PyOpenGL) gloo backend. Never imports ``QtWidgets`` directly.
"""

from __future__ import annotations

import importlib.resources
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6 import QtCore
from shiboken6 import isValid as shiboken_is_valid
from vispy import app, gloo

from splatstudio.model.splatcloud import SplatCloud
from splatstudio.render import composite
from splatstudio.render.camera import (
    DEFAULT_FOV_Y_DEG,
    Intrinsics,
    OrbitCamera,
    Pose,
    TrainingCamera,
    average_up,
    box_frame,
    home_view,
    projection_matrix,
    scene_box,
)
from splatstudio.render.glinfo import is_software
from splatstudio.render.sh import sh_to_rgb
from splatstudio.render.sorting import sort_back_to_front

logger = logging.getLogger(__name__)

ORBIT_RADIANS_PER_PIXEL = math.radians(0.2)
"""How far a left-drag turns the view (a drag across a 640-pixel view: 128 degrees). See NOTES."""

DEFAULT_BUDGET = 150_000
"""Splats drawn while the camera moves (the most important ones); all of them once it stops."""

SETTLE_MS = 180
"""The camera counts as stopped this long after the last change."""

STATIC_DTYPE = np.dtype([("a_position", "<f4", 3), ("a_cov_a", "<f4", 3), ("a_cov_b", "<f4", 3)])
"""Per-splat static vertex data: centre and the 6 unique entries of the 3D covariance."""

_CORNERS = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]], dtype=np.float32)

MAX_TILES = 64
"""Points the geometry shader emits at most for one splat (``max_vertices`` in splat.geom.glsl)."""

MAX_POINT_SIZE = 1024
"""Largest point size used even where the OpenGL limit is higher (llvmpipe's is 255)."""

SYNC_GL_PIXELS = 320 * 240
"""On a software renderer a still frame of a larger viewport is never rasterised on the GUI thread:
llvmpipe needs ~80 ms for 10k splats at 1280x720 (GL path, quiet 2-core machine), an event-loop
stall; the sort thread composites it instead. Smaller viewports draw synchronously."""

SINGLE_POINT_BELOW = 16.0
"""Splats whose bounding square is at most this many pixels wide are always one point; larger
ones become rows of tiles following the ellipse where that rasterises fewer pixels (see
splat.geom.glsl)."""


def load_shader(name: str) -> str:
    """GLSL source of ``splatstudio/render/shaders/<name>`` (package data)."""
    return (
        importlib.resources.files("splatstudio.render").joinpath("shaders").joinpath(name).read_text(encoding="utf-8")
    )


def use_gl_backend() -> None:
    """Select the PySide6 app backend and the instancing-capable ``gl+`` gloo backend."""
    try:
        app.use_app("pyside6")
    except RuntimeError:
        pass  # another backend already in use: creating the canvas will say so
    gloo.gl.use_gl("gl+")


# ----------------------------------------------------------------------------- scene preparation


def quaternions_to_matrices(quats: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotation matrices of (N, 4) w-first quaternions (normalised; zero -> identity)."""
    q = np.asarray(quats, dtype=np.float64)
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.where(norm > 0, q / np.where(norm > 0, norm, 1.0), np.array([1.0, 0, 0, 0]))
    w, x, y, z = q.T
    r = np.empty((len(q), 3, 3), dtype=np.float64)
    r[:, 0, 0] = 1 - 2 * (y * y + z * z)
    r[:, 0, 1] = 2 * (x * y - w * z)
    r[:, 0, 2] = 2 * (x * z + w * y)
    r[:, 1, 0] = 2 * (x * y + w * z)
    r[:, 1, 1] = 1 - 2 * (x * x + z * z)
    r[:, 1, 2] = 2 * (y * z - w * x)
    r[:, 2, 0] = 2 * (x * z - w * y)
    r[:, 2, 1] = 2 * (y * z + w * x)
    r[:, 2, 2] = 1 - 2 * (x * x + y * y)
    return r


def covariances_3d(log_scales: np.ndarray, quats: np.ndarray, chunk: int = 262_144) -> np.ndarray:
    """Unique entries (xx, xy, xz, yy, yz, zz) of ``Σ = R S Sᵀ Rᵀ``: (N, 6) float32."""
    n = len(log_scales)
    out = np.empty((n, 6), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        m = quaternions_to_matrices(quats[start:stop]) * np.exp(log_scales[start:stop].astype(np.float64))[:, None, :]
        cov = m @ m.transpose(0, 2, 1)
        out[start:stop] = cov[:, [0, 0, 0, 1, 1, 2], [0, 1, 2, 1, 2, 2]]
    return out


def importance(alphas: np.ndarray, log_scales: np.ndarray) -> np.ndarray:
    """View-independent importance for the moving budget: opacity x area of the two largest axes."""
    s = np.sort(log_scales.astype(np.float32), axis=1)
    return alphas * np.exp(s[:, 1] + s[:, 2])


@dataclass
class PreparedScene:
    """A `SplatCloud` turned into what the viewer draws (computed once, off the GUI thread if wished)."""

    cloud: SplatCloud
    static: np.ndarray  # (N,) STATIC_DTYPE
    alphas: np.ndarray  # (N,) float32
    budget_order: np.ndarray  # indices, most important first
    box: tuple[np.ndarray, np.ndarray]  # the robust (low, high) corners of its subject (`camera.scene_box`)
    marked: np.ndarray | None = None  # (N,) bool: splats an edit would remove, shown tinted or hidden
    hide_marked: bool = False
    hidden: np.ndarray | None = None  # (N,) bool: splats the hand edits deleted or hid (not drawn, not picked)
    selected: np.ndarray | None = None  # (N,) bool: the hand edits' selection, tinted (`SELECT_TINT`)

    def __len__(self) -> int:
        return len(self.static)

    @property
    def center(self) -> np.ndarray:
        return box_frame(*self.box)[0]

    @property
    def radius(self) -> float:
        return box_frame(*self.box)[1]

    @property
    def half_extent(self) -> np.ndarray:
        return (self.box[1] - self.box[0]) / 2.0

    @property
    def positions(self) -> np.ndarray:
        return self.cloud.positions


def prepare_scene(cloud: SplatCloud) -> PreparedScene:
    """Covariances, opacities, importance ranking and framing of `cloud` (pure numpy)."""
    static = np.empty(len(cloud), dtype=STATIC_DTYPE)
    static["a_position"] = cloud.positions
    cov = covariances_3d(cloud.scales, cloud.rotations)
    static["a_cov_a"] = cov[:, :3]
    static["a_cov_b"] = cov[:, 3:]
    alphas = cloud.alphas().astype(np.float32)
    order = np.argsort(-importance(alphas, cloud.scales), kind="stable")
    return PreparedScene(cloud, static, alphas, order, scene_box(cloud.positions, cloud.opacities, cloud.scales))


def splat_colors(scene: PreparedScene, eye: np.ndarray, degree: int, fast: bool = False) -> np.ndarray:
    """(N, 4) float32 RGBA: SH colours seen from `eye` (clamped to [0, 1]) and opacities.

    `fast`: with the CPU compositor's kernels when they are compiled (off the GUI thread: they
    share the compositor's lock).
    """
    cloud = scene.cloud
    if fast and composite.ready():
        colors = composite.sh_colors(cloud.positions, cloud.sh_dc, cloud.sh_rest, eye, degree, scene.alphas)
    else:
        colors = np.empty((len(cloud), 4), dtype=np.float32)
        colors[:, :3] = sh_to_rgb(cloud.sh_dc, cloud.sh_rest, cloud.positions, eye, degree=degree)
        colors[:, 3] = scene.alphas
    if scene.marked is not None:
        _mark(colors, scene.marked, scene.hide_marked)
    if scene.selected is not None:
        colors[scene.selected, :3] = 0.35 * colors[scene.selected, :3] + 0.65 * SELECT_TINT
        colors[scene.selected, 3] = np.maximum(colors[scene.selected, 3], MARK_MIN_ALPHA)
    if scene.hidden is not None:
        colors[scene.hidden, 3] = 0.0
    return colors


MARK_TINT = np.array([1.0, 0.1, 0.75], np.float32)
"""The colour of splats an edit would remove (a magenta no photo of a scene is likely to be)."""
MARK_MIN_ALPHA = np.float32(0.5)
SELECT_TINT = np.array([1.0, 0.78, 0.0], np.float32)
"""The colour of selected splats (SuperSplat's yellow; the clean-up's preview is magenta)."""


def _mark(colors: np.ndarray, marked: np.ndarray, hide: bool) -> None:
    """Splats an edit would remove: hidden (the result) or tinted and made at least half opaque (so the
    faint floaters among them show where they are)."""
    if hide:
        colors[marked, 3] = 0.0
        return
    colors[marked, :3] = 0.25 * colors[marked, :3] + 0.75 * MARK_TINT
    colors[marked, 3] = np.maximum(colors[marked, 3], MARK_MIN_ALPHA)


# ------------------------------------------------------------------------------- frame data


@dataclass
class FrameData:
    """A draw order (back to front) of the scene's splats, the colours to draw them with, and the
    view they were sorted for."""

    colors: np.ndarray  # (N, 4) float32, the whole scene's
    order: np.ndarray  # (M,) uint32 indices into the scene, farthest first
    view_key: bytes
    full: bool
    sort_ms: float
    generation: int = 0
    new_colors: np.ndarray | None = None  # (N, 4) when the colours were refreshed
    colors_eye: np.ndarray | None = None
    colors_degree: int = 0
    image: np.ndarray | None = None  # (H, W, 4) premultiplied RGBA from the CPU compositor
    image_intr: Intrinsics | None = None  # the viewport it was composited for
    composite_ms: float = 0.0


def composite_frame(scene: PreparedScene, frame: FrameData, view: np.ndarray, intr: Intrinsics, near: float) -> None:
    """Composite `frame` (its order and colours) on the CPU for viewport `intr` (sets ``frame.image``)."""
    t0 = time.perf_counter()
    cov6 = np.concatenate([scene.static["a_cov_a"], scene.static["a_cov_b"]], axis=1)
    frame.image = composite.composite(scene.static["a_position"], cov6, frame.colors, frame.order, view, intr, near)
    frame.image_intr = intr
    frame.composite_ms = (time.perf_counter() - t0) * 1000.0


def build_frame(
    scene: PreparedScene,
    colors: np.ndarray,
    view: np.ndarray,
    near: float,
    subset: np.ndarray | None = None,
    full: bool = True,
) -> FrameData:
    """Sort (all or `subset` of) the splats back to front for `view`: the index buffer to draw."""
    t0 = time.perf_counter()
    order = sort_back_to_front(scene.positions, view, near=near, subset=subset).indices.astype(np.uint32)
    sort_ms = (time.perf_counter() - t0) * 1000.0
    return FrameData(colors, order, view_key(view), full, sort_ms)


def view_key(view: np.ndarray) -> bytes:
    """Hashable identity of a view matrix."""
    return np.asarray(view, dtype=np.float64).tobytes()


RESORT_ANGLE_DEG = 0.25
RESORT_SHIFT = 1e-3


def views_close(a: np.ndarray | None, b: np.ndarray, radius: float) -> bool:
    """Whether a depth order sorted for view `a` is still good for view `b`: the cameras differ
    by less than `RESORT_ANGLE_DEG` of rotation and `RESORT_SHIFT` x `radius` of position."""
    if a is None:
        return False
    ra, rb = a[:3, :3], b[:3, :3]
    cos = (float(np.trace(ra @ rb.T)) - 1.0) / 2.0
    if cos < math.cos(math.radians(RESORT_ANGLE_DEG)):
        return False
    centre_a, centre_b = -ra.T @ a[:3, 3], -rb.T @ b[:3, 3]
    return float(np.linalg.norm(centre_a - centre_b)) <= RESORT_SHIFT * radius


# ------------------------------------------------------------------------------------- picking


@dataclass(frozen=True)
class PickResult:
    """The splat seen under a pixel: its index and attributes (activated where it helps)."""

    index: int
    position: np.ndarray
    depth: float
    weight: float  # its share of the pixel colour, alpha x transmittance
    opacity: float
    scale: np.ndarray  # standard deviations, exp(log scale)
    rotation: np.ndarray  # unit quaternion w, x, y, z
    color: np.ndarray  # rgb as seen from the camera


def project_conics(
    positions: np.ndarray, cov6: np.ndarray, view: np.ndarray, intr: Intrinsics, near: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CPU twin of the vertex shader: (pixel centres (N,2), conics (N,3), depths (N,), valid (N,))."""
    r, t = view[:3, :3].astype(np.float64), view[:3, 3].astype(np.float64)
    cam = positions.astype(np.float64) @ r.T + t
    z = cam[:, 2]
    valid = z > near
    zs = np.where(valid, z, 1.0)
    tanx, tany = intr.tan_half_fov
    txtz = np.clip(cam[:, 0] / zs, -1.3 * tanx, 1.3 * tanx)
    tytz = np.clip(cam[:, 1] / zs, -1.3 * tany, 1.3 * tany)
    j = np.zeros((len(cam), 2, 3))
    j[:, 0, 0] = intr.fx / zs
    j[:, 0, 2] = -intr.fx * txtz / zs
    j[:, 1, 1] = intr.fy / zs
    j[:, 1, 2] = -intr.fy * tytz / zs
    sigma = np.empty((len(cam), 3, 3))
    idx = [(0, 0, 0), (1, 0, 1), (2, 0, 2), (3, 1, 1), (4, 1, 2), (5, 2, 2)]
    for k, a, b in idx:
        sigma[:, a, b] = sigma[:, b, a] = cov6[:, k]
    tm = j @ r
    cov2 = tm @ sigma @ tm.transpose(0, 2, 1)
    a = cov2[:, 0, 0] + 0.3
    b = cov2[:, 0, 1]
    c = cov2[:, 1, 1] + 0.3
    det = a * c - b * b
    valid &= det > 0
    det = np.where(valid, det, 1.0)
    conics = np.stack([c / det, -b / det, a / det], axis=1)
    centres = np.stack([intr.fx * cam[:, 0] / zs + intr.cx, intr.fy * cam[:, 1] / zs + intr.cy], axis=1)
    return centres, conics, z, valid


def pick_splat(
    scene: PreparedScene, colors: np.ndarray, view: np.ndarray, intr: Intrinsics, near: float, x: float, y: float
) -> PickResult | None:
    """The splat contributing most to pixel coordinate (`x`, `y`) (top-left origin), or None.

    Splats whose 3-sigma ellipse contains the point are composited front to back exactly
    as the renderer does; the one with the largest ``alpha x transmittance`` wins.
    """
    centres, conics, depths, valid = project_conics(scene.positions, _cov6(scene), view, intr, near)
    d = np.array([x, y]) - centres
    m = conics[:, 0] * d[:, 0] ** 2 + 2 * conics[:, 1] * d[:, 0] * d[:, 1] + conics[:, 2] * d[:, 1] ** 2
    alphas = scene.alphas if scene.hidden is None else np.where(scene.hidden, np.float32(0.0), scene.alphas)
    alpha = np.minimum(0.99, alphas * np.exp(-0.5 * np.maximum(m, 0.0)))
    hit = np.flatnonzero(valid & (m <= 9.0) & (alpha >= 1.0 / 255.0))
    if len(hit) == 0:
        return None
    hit = hit[np.argsort(depths[hit], kind="stable")]
    a = alpha[hit]
    transmittance = np.concatenate([[1.0], np.cumprod(1.0 - a)[:-1]])
    best = int(hit[int(np.argmax(a * transmittance))])
    weight = float((a * transmittance).max())
    cloud = scene.cloud
    return PickResult(
        index=best,
        position=cloud.positions[best].copy(),
        depth=float(depths[best]),
        weight=weight,
        opacity=float(scene.alphas[best]),
        scale=np.exp(cloud.scales[best]),
        rotation=cloud.subset(np.array([best])).normalized_rotations()[0],
        color=colors[best, :3].copy(),
    )


def _cov6(scene: PreparedScene) -> np.ndarray:
    out = np.empty((len(scene), 6), dtype=np.float64)
    out[:, :3] = scene.static["a_cov_a"]
    out[:, 3:] = scene.static["a_cov_b"]
    return out


# ------------------------------------------------------------------------------------ overlays


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


@dataclass
class ViewerStats:
    """Figures for the status line."""

    splats_total: int = 0
    splats_drawn: int = 0
    frame_ms: float = 0.0
    sort_ms: float = 0.0
    full: bool = True
    composite_ms: float = 0.0  # the CPU compositor's time for the frame shown (0: drawn with OpenGL)

    def text(self) -> str:
        mode = "" if self.full else " (moving)"
        composited = f" | composited {self.composite_ms:.0f} ms" if self.composite_ms else ""
        return (
            f"{self.splats_drawn:,}/{self.splats_total:,} splats{mode} | "
            f"frame {self.frame_ms:.0f} ms | sort {self.sort_ms:.0f} ms{composited}"
        )


# --------------------------------------------------------------------------------- sort worker


class ViewerSignals(QtCore.QObject):
    """Qt signals of a `SplatCanvas` (``canvas.signals``); the UI connects to these."""

    sig_stats_changed = QtCore.Signal(object)
    """A frame was drawn; carries the canvas' `ViewerStats`."""

    sig_frame_ready = QtCore.Signal(object)
    """Internal: the sort worker finished a full frame (crosses to the GUI thread, queued)."""

    sig_place_changed = QtCore.Signal(str)
    """Where the view is, in words: "photo 3 of 16: IMG_0003.jpg" at a training camera, "" elsewhere."""


class SortWorker:
    """One background thread running the latest submitted job; older pending jobs are dropped."""

    def __init__(self, deliver: Callable[[object], None]) -> None:
        self._deliver = deliver
        self._cond = threading.Condition()
        self._pending: Callable[[], object] | None = None
        self._stopped = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="splat-sort", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], object]) -> None:
        with self._cond:
            self._pending = job
            self._cond.notify()

    @property
    def idle(self) -> bool:
        with self._cond:
            return self._pending is None and not self._busy

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._pending = None
            self._cond.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        composite.lower_thread_priority()  # the GUI thread comes first when the cores are busy
        while True:
            with self._cond:
                while self._pending is None and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                job, self._pending = self._pending, None
                self._busy = True
            try:
                result = job()
            except Exception as exc:  # reported on the GUI thread, never lost in the thread
                result = exc
            with self._cond:
                self._busy = False
            if not self._stopped:
                self._deliver(result)


# -------------------------------------------------------------------------------------- canvas


@dataclass
class _Upload:
    """What is on the GPU now."""

    count: int = 0  # splats in the index buffer (0 for a composited frame: its image is drawn)
    view_key: bytes = b""
    full: bool = False
    generation: int = -1
    view: np.ndarray | None = None


@dataclass
class _Image:
    """A composited full frame on the GPU (a texture) and what it shows."""

    texture: gloo.Texture2D
    intr: Intrinsics
    generation: int
    view_key: bytes


@dataclass
class _ColorState:
    colors: np.ndarray
    eye: np.ndarray
    degree: int


@dataclass
class _Keys:
    fly: set[str] = field(default_factory=set)


@dataclass
class _Overlay:
    """An overlay of the edit tools (`SplatCanvas.set_overlay`) and its GPU buffers once made."""

    positions: np.ndarray
    colors: Any
    mode: str
    screen: bool
    size: float
    indices: np.ndarray | None = None
    vbo: gloo.VertexBuffer | None = None
    ibo: gloo.IndexBuffer | None = None


class SplatCanvas(app.Canvas):
    """vispy canvas drawing a `SplatCloud`; embed ``canvas.native`` in a Qt layout.

    While the camera moves, the `budget` most important splats are drawn (adapted each frame
    towards `target_moving_ms`), optionally at `moving_scale` resolution (a texture stretched
    over the canvas; on llvmpipe that stretch costs about as much as it saves, hence 1.0).

    `compositor`: "auto" composites full frames on the CPU when OpenGL is a software renderer
    and numba is installed (see `composite`): synchronously for scenes larger than `budget` in
    `render_image`, in the sort thread for those on screen, for the full frame after the camera
    stops and for scenes reloaded in place (`load` with ``reset_camera=False``); "cpu" also for
    every synchronous full frame, wherever numba is installed; "gl" never.

    Mouse: left drag orbits, right / middle / shift+left drag pans, wheel zooms.
    Keys: W A S D Q E fly, R resets the view, arrows and PageUp/PageDown step through the
    training cameras, F12 saves a screenshot, G grid, X axes, C frustums, P sparse points,
    0-3 SH degree.

    Edit mode (``render/edit_tools.py``) hooks in through `interaction` (offered every mouse and key
    event first), `orbit_button`, `show_edits` (deleted/hidden splats not drawn nor picked, the
    selection tinted), `set_overlay` (shapes, picks, the edited frame) and `set_up`.
    """

    def __init__(
        self,
        size: tuple[int, int] = (1280, 720),
        show: bool = False,
        sh_degree: int = 3,
        budget: int = DEFAULT_BUDGET,
        moving_scale: float = 1.0,
        target_moving_ms: float = 60.0,
        background: tuple[float, float, float] = (0.0, 0.0, 0.0),
        near: float = 0.01,
        screenshot_dir: str | os.PathLike[str] | None = None,
        compositor: str = "auto",
        **kwargs,
    ) -> None:
        use_gl_backend()
        super().__init__(size=size, show=False, keys=None, title="SplatStudio viewer", **kwargs)
        self.sh_degree = int(sh_degree)
        self.budget = int(budget)
        self.min_budget = min(1_000, self.budget)
        self._budget_now = self.budget
        self.moving_scale = float(moving_scale)
        self.target_moving_ms = float(target_moving_ms)
        self.background = tuple(float(c) for c in background)
        self.near = float(near)
        if compositor not in ("auto", "cpu", "gl"):
            raise ValueError(f"compositor must be 'auto', 'cpu' or 'gl', got {compositor!r}")
        self.compositor = compositor
        self.overlays = Overlays()
        self.stats = ViewerStats()
        self.signals = ViewerSignals()
        self.screenshot_dir = Path(screenshot_dir) if screenshot_dir else Path.cwd()
        self.orbit = OrbitCamera()
        self._home = OrbitCamera()
        self._pose: Pose = self.orbit.pose()
        self._camera_intrinsics: Intrinsics | None = None
        self._scene: PreparedScene | None = None
        self._colors: _ColorState | None = None
        self._upload = _Upload()
        self._gpu_scene: PreparedScene | None = None  # whose centres and covariances are uploaded
        self._gpu_colors: np.ndarray | None = None  # the colours uploaded
        self._max_point: int | None = None  # point size limit, read from OpenGL on the first draw
        self._single_below = SINGLE_POINT_BELOW
        self._software_gl: bool | None = None  # read from OpenGL on the first draw
        self._image: _Image | None = None  # the composited full frame on the GPU, if any
        self._image_texture: gloo.Texture2D | None = None
        self._generation = 0
        self._moving = False
        self._requested: tuple[int, bytes] | None = None  # (generation, view key) being sorted
        self._training: list[TrainingCamera] = []
        self._training_index = -1
        self._place = ""  # where the view is, in words (sig_place_changed)
        self._sparse: tuple[np.ndarray, np.ndarray] | None = None
        self._keys = _Keys()
        self._last_mouse: tuple[float, float] | None = None
        self.interaction: Any = None
        """The edit tools (``render/edit_tools.py``) while editing: offered every mouse and key event first."""
        self.orbit_button = 1
        """The mouse button whose drag orbits (the others pan); the right one while an edit tool has the left."""
        self._extra: dict[str, _Overlay] = {}
        self._init_programs()
        self.signals.sig_frame_ready.connect(self._on_frame_ready)
        self._worker = SortWorker(self.signals.sig_frame_ready.emit)
        self._settle = app.Timer(SETTLE_MS / 1000.0, connect=self._on_settled, iterations=1, start=False)
        self._fly_timer = app.Timer(1 / 30, connect=self._on_fly_tick, start=False)
        if show:
            self.show()

    # --------------------------------------------------------------------------- GL objects

    def _init_programs(self) -> None:
        self._splat = gloo.Program()
        self._splat.set_shaders(load_shader("splat.vert.glsl"), load_shader("splat.frag.glsl"),
                                load_shader("splat.geom.glsl"))  # fmt: skip
        self._static_vbo = gloo.VertexBuffer(np.zeros(1, dtype=STATIC_DTYPE))
        self._color_vbo = gloo.VertexBuffer(np.zeros((1, 4), dtype=np.float32))
        self._index = gloo.IndexBuffer(np.zeros(1, dtype=np.uint32))
        self._bind_attributes()
        self._lines = gloo.Program(load_shader("lines.vert.glsl"), load_shader("lines.frag.glsl"))
        self._blit = gloo.Program(load_shader("blit.vert.glsl"), load_shader("blit.frag.glsl"))
        self._blit["a_corner"] = gloo.VertexBuffer(_CORNERS)
        self._reduced: tuple[tuple[int, int], gloo.Texture2D, gloo.FrameBuffer] | None = None
        self._overlay_cache: dict[str, tuple[gloo.VertexBuffer, gloo.VertexBuffer]] = {}

    def _bind_attributes(self) -> None:
        for name in STATIC_DTYPE.names:
            self._splat[name] = self._static_vbo[name]
        self._splat["a_color"] = self._color_vbo

    def close(self) -> None:
        """Stop the sort thread, close the window and schedule the widget's destruction.

        Always close a canvas you are done with: a QOpenGLWidget destroyed later by Python's
        garbage collector releases the current OpenGL context at an arbitrary moment, which
        breaks whatever another canvas is drawing then. ``deleteLater`` destroys it during
        event processing instead, between frames.
        """
        if self._closed:
            return
        self._worker.stop()
        self._settle.stop()
        self._fly_timer.stop()
        native = self.native
        super().close()
        native.deleteLater()

    # ------------------------------------------------------------------------------- scene

    @property
    def scene(self) -> PreparedScene | None:
        return self._scene

    def load(self, cloud: SplatCloud | PreparedScene, reset_camera: bool = True) -> None:
        """Show `cloud` (or a scene already prepared in a worker with `prepare_scene`).

        A scene replacing another without moving the camera (a live training preview) is, on
        software OpenGL, composited in the sort thread while the previous frame stays on screen:
        the GUI thread then only shows the finished image, instead of rasterising every splat.
        """
        scene = cloud if isinstance(cloud, PreparedScene) else prepare_scene(cloud)
        self._generation += 1
        self._scene = scene
        self._colors = None
        self._upload = _Upload()
        self.stats = ViewerStats(splats_total=len(scene))
        if reset_camera:
            self._home = home_view(self._training, scene.center, scene.radius, self.orbit.fov_y_deg,
                                   scene.half_extent)
            self.reset_view()
        elif self._composites_previews():
            view = self._view()
            self._request_full(view, view_key(view), cpu=True)
            return  # repainted when the composited frame arrives
        self.update()

    def _composites_previews(self) -> bool:
        """Whether a scene reloaded in place is composited in the background (see `load`); compiles
        the compositor in the background the first time it is wanted."""
        if self.compositor == "gl" or self._moving or not composite.available():
            return False
        if self.compositor == "auto" and not self._software_gl:
            return False
        if not composite.ready():
            composite.warm_up_in_background()
            return False
        return True

    def set_sh_degree(self, degree: int) -> None:
        """Use SH up to `degree` (0..3, clipped to what the scene has) for the colours."""
        self.sh_degree = max(0, min(3, int(degree)))
        self._generation += 1  # drop background results computed with the old degree
        self._colors = None
        self._upload = _Upload()
        self.update()

    def set_sparse_points(self, xyz: np.ndarray | None, rgb: np.ndarray | None = None) -> None:
        """SfM points for the `points` overlay (rgb uint8 or float in 0..1)."""
        if xyz is None:
            self._sparse = None
        else:
            xyz = np.asarray(xyz, dtype=np.float32).reshape(-1, 3)
            if rgb is None:
                rgb = np.full((len(xyz), 3), 0.8, dtype=np.float32)
            rgb = np.asarray(rgb, dtype=np.float32)
            if rgb.max(initial=0) > 1.0:
                rgb = rgb / 255.0
            self._sparse = (xyz, np.column_stack([rgb, np.ones(len(xyz), dtype=np.float32)]))
        self._overlay_cache.pop("points", None)
        self.update()

    # ------------------------------------------------------------------------------ camera

    @property
    def pose(self) -> Pose:
        return self._pose

    def intrinsics(self, width: int | None = None, height: int | None = None) -> Intrinsics:
        """Intrinsics for a viewport (default: the canvas' physical size)."""
        if width is None or height is None:
            width, height = self.physical_size
        if self._camera_intrinsics is not None:
            return self._camera_intrinsics.scaled_to(width, height)
        return Intrinsics.from_fov(width, height, self.orbit.fov_y_deg)

    def set_camera(
        self,
        pose: Pose | None = None,
        intrinsics: Intrinsics | None = None,
        fov_y_deg: float | None = None,
        target: np.ndarray | None = None,
    ) -> None:
        """Place the camera: an explicit `pose` (kept exactly until the user moves), optional
        `intrinsics` (scaled to the viewport) or a vertical field of view, and the orbit `target`."""
        if fov_y_deg is not None:
            self.orbit.fov_y_deg = float(fov_y_deg)
            self._camera_intrinsics = None
        if intrinsics is not None:
            self._camera_intrinsics = intrinsics
            self.orbit.fov_y_deg = intrinsics.fov_y_deg
        if pose is not None:
            distance = self.orbit.distance
            if target is not None:
                distance = float(np.linalg.norm(np.asarray(target) - pose.center)) or distance
            elif self._scene is not None:
                distance = max(float(np.dot(self._scene.center - pose.center, pose.forward)), 1e-3 * self._scene.radius)
            self.orbit.set_from_pose(pose, distance)
            self._pose = pose
        elif target is not None:
            self.orbit.target = np.asarray(target, dtype=np.float64)
            self._pose = self.orbit.pose()
        self._camera_changed(moving=False)

    def reset_view(self) -> None:
        """Back to the framing computed on load (R)."""
        self.orbit = OrbitCamera(self._home.target.copy(), self._home.distance, self._home.yaw,
                                 self._home.pitch, self._home.up.copy(), self._home.fov_y_deg)  # fmt: skip
        self._camera_intrinsics = None
        self._pose = self.orbit.pose()
        self._say_place("")
        self._camera_changed(moving=False)

    def set_training_cameras(self, cameras: Sequence[TrainingCamera], auto_orient: bool = True) -> None:
        """Cameras to step through and draw as frustums; `auto_orient` sets the world up from them."""
        self._training = list(cameras)
        self._training_index = -1
        self._overlay_cache.pop("frustums", None)
        if auto_orient and self._training:
            up = average_up([c.pose for c in self._training])
            self.orbit.up = up
            self._home.up = up
            if self._scene is not None:
                self._home = home_view(self._training, self._scene.center, self._scene.radius,
                                       self._home.fov_y_deg, self._scene.half_extent)
        self.update()

    @property
    def training_cameras(self) -> list[TrainingCamera]:
        return list(self._training)

    def jump_to_camera(self, index: int) -> TrainingCamera:
        """View the scene exactly from training camera `index` (its pose and intrinsics)."""
        if not self._training:
            raise IndexError("no training cameras are set")
        index %= len(self._training)
        cam = self._training[index]
        self._training_index = index
        self.set_camera(pose=cam.pose, intrinsics=cam.intrinsics)
        self._say_place(f"photo {index + 1} of {len(self._training)}: {cam.name}")
        return cam

    def _say_place(self, text: str) -> None:
        if text != self._place:
            self._place = text
            self.signals.sig_place_changed.emit(text)

    @property
    def photo_index(self) -> int:
        """The training camera the view is exactly at (-1 once the person moved away from it)."""
        return self._training_index if self._place else -1

    def next_camera(self) -> TrainingCamera:
        return self.jump_to_camera(self._training_index + 1)

    def previous_camera(self) -> TrainingCamera:
        return self.jump_to_camera(self._training_index - 1 if self._training_index >= 0 else -1)

    def _interacted(self) -> None:
        """The user moved the orbit controller: follow it, drawing the budget until it settles."""
        self._camera_intrinsics = None  # back to the viewer's own field of view
        self._pose = self.orbit.pose()
        self._say_place("")  # away from the photo's viewpoint
        self._camera_changed(moving=True)

    def _camera_changed(self, moving: bool) -> None:
        self._moving = moving
        # restarted on every change: vispy's Timer.start() does nothing while the timer runs, and a
        # one-shot timer still "runs" for one interval after it fired, stopping then without firing
        # (a move in that window used to leave the view in moving mode)
        self._settle.stop()
        if moving:
            self._settle.start()
        self.update()

    def _on_settled(self, event=None) -> None:
        """The camera stopped: the full frame. On software OpenGL it is composited in the sort thread
        while the last moving frame stays on screen, rather than rasterised on the GUI thread."""
        self._moving = False
        if self._scene is not None and self._composites_previews():
            view = self._view()
            self._request_full(view, view_key(view), cpu=True)
            return
        self.update()

    # ----------------------------------------------------------------------- frame building

    def _view(self) -> np.ndarray:
        return self._pose.view_matrix()

    def mark(self, marked: np.ndarray | None, hide: bool = False) -> None:
        """Show the splats of ``marked`` (a boolean mask, None: none) tinted, or hidden with ``hide``: the
        preview of an edit such as the clean-up (``model/cleanup.py``). The scene itself is unchanged."""
        scene = self._scene
        if scene is None:
            return
        if marked is not None and len(marked) != len(scene):
            raise ValueError(f"a mark of {len(marked)} splats for a scene of {len(scene)}")
        scene.marked = None if marked is None else np.asarray(marked, dtype=bool)
        scene.hide_marked = hide
        self._marks_changed()

    def show_edits(self, hidden: np.ndarray | None, selected: np.ndarray | None) -> None:
        """The hand edits' state (``model/edits.py``): ``hidden`` splats (deleted or hidden) are neither drawn
        nor picked, ``selected`` ones are tinted `SELECT_TINT`; None (or an empty mask): none."""
        scene = self._scene
        if scene is None:
            return
        for mask in (hidden, selected):
            if mask is not None and len(mask) != len(scene):
                raise ValueError(f"an edit mask of {len(mask)} splats for a scene of {len(scene)}")
        scene.hidden = None if hidden is None or not np.any(hidden) else np.array(hidden, dtype=bool)
        scene.selected = None if selected is None or not np.any(selected) else np.array(selected, dtype=bool)
        self._marks_changed()

    def _marks_changed(self) -> None:
        self._generation += 1  # colours, uploads and frames in flight are of the old marks
        self._colors = None
        self._upload = _Upload()
        self._camera_changed(moving=False)

    def set_up(self, up: np.ndarray) -> None:
        """Orbit around ``up`` from now on (a levelled scene's vertical); the view keeps its place and
        direction, its roll dropped."""
        up = np.asarray(up, dtype=np.float64)
        up = up / max(float(np.linalg.norm(up)), 1e-12)
        self.orbit.up = up
        self._home.up = up.copy()
        self.orbit.set_from_pose(self._pose)
        self._pose = self.orbit.pose()
        self._say_place("")
        self._camera_changed(moving=False)

    def set_overlay(self, name: str, positions: np.ndarray | None, colors: Any = (1.0, 1.0, 1.0, 1.0),
                    mode: str = "lines", screen: bool = False, size: float = 2.0,
                    indices: np.ndarray | None = None) -> None:
        """Draw (or, with ``positions`` None, stop drawing) an overlay of the edit tools over the scene:
        ``positions`` (N, 3) in world coordinates, or (N, 2) logical pixels with ``screen``; ``colors`` (N, 4)
        or one RGBA; ``mode`` "lines" (segments), "line_strip", "line_loop" or "points" (``size`` pixels);
        ``indices``: draw only those points of ``positions`` (uploaded once while the same array is given)."""
        if positions is None or len(positions) == 0 or (indices is not None and len(indices) == 0):
            if self._extra.pop(name, None) is not None:
                self.update()
            return
        if mode not in ("lines", "line_strip", "line_loop", "points"):
            raise ValueError(f"unknown overlay mode {mode!r}")
        old = self._extra.get(name)
        overlay = _Overlay(np.asarray(positions), colors, mode, screen, float(size), indices)
        if old is not None and old.positions is overlay.positions and not screen:
            overlay.vbo = old.vbo  # the same points (the scene's centres): only the indices change
        self._extra[name] = overlay
        self.update()

    def _draw_extra(self, intr: Intrinsics) -> None:
        """The edit tools' overlays (`set_overlay`), over everything else."""
        if not self._extra:
            return
        radius = self._scene.radius if self._scene is not None else 1.0
        far = 100.0 * radius + float(np.linalg.norm(self._pose.center))
        world = np.ascontiguousarray((projection_matrix(intr, self.near, far) @ self._view()).T, dtype=np.float32)
        for overlay in self._extra.values():
            if overlay.screen:
                width, height = self.size
                xy = np.asarray(overlay.positions, dtype=np.float32).reshape(-1, 2)
                ndc = np.zeros((len(xy), 3), dtype=np.float32)
                ndc[:, 0] = 2.0 * xy[:, 0] / max(width, 1) - 1.0
                ndc[:, 1] = 1.0 - 2.0 * xy[:, 1] / max(height, 1)
                self._lines["u_mvp"] = np.eye(4, dtype=np.float32)
                self._lines["a_position"] = gloo.VertexBuffer(ndc)
            else:
                if overlay.vbo is None:
                    overlay.vbo = gloo.VertexBuffer(np.ascontiguousarray(overlay.positions, dtype=np.float32))
                self._lines["u_mvp"] = world
                self._lines["a_position"] = overlay.vbo
            colors = overlay.colors
            if isinstance(colors, np.ndarray) and colors.ndim == 2:
                self._lines["a_color"] = gloo.VertexBuffer(np.ascontiguousarray(colors, dtype=np.float32))
            else:
                self._lines["a_color"] = tuple(float(c) for c in colors)
            self._lines["u_point_size"] = overlay.size
            if overlay.indices is not None:
                if overlay.ibo is None:
                    overlay.ibo = gloo.IndexBuffer(np.ascontiguousarray(overlay.indices, dtype=np.uint32))
                self._lines.draw("points", overlay.ibo)
            else:
                self._lines.draw(overlay.mode)

    def _colors_for(self, eye: np.ndarray, force: bool = False) -> np.ndarray:
        """Current colours, recomputed synchronously when missing or (with `force`) stale.

        The first colours of a scene larger than the budget are the cheap degree-0 ones (the
        GUI thread stays responsive); the worker replaces them with the full SH evaluation.
        """
        scene = self._scene
        assert scene is not None
        state = self._colors
        if state is None or (force and _colors_stale(state, eye, scene, self.sh_degree, exact=True)):
            degree = self.sh_degree if force or len(scene) <= self.budget else 0
            state = _ColorState(splat_colors(scene, eye, degree), np.array(eye, float), degree)
            self._colors = state
        return state.colors

    def _prepare_frame(self) -> None:
        """Make sure the GPU holds splats sorted for the current view.

        Stopped: scenes up to `budget` splats are sorted and coloured exactly, synchronously;
        larger ones show the budget at once and ask the worker for the full frame. Moving: the
        `_budget_now` most important splats, sorted synchronously, with the last colours.
        """
        scene = self._scene
        if scene is None:
            return
        view = self._view()
        key = view_key(view)
        n = len(scene)
        current = self._upload.generation == self._generation and (
            self._upload.view_key == key or views_close(self._upload.view, view, scene.radius)
        )
        if not self._moving and self._still_in_background(n):
            if not (current and self._upload.full and self._image_valid(self.intrinsics())):
                self._request_full(view, key, cpu=True)
            return
        if current and (self._upload.full or self._moving):
            if self._moving or not self._composites(n) or self._image_valid(self.intrinsics()):
                return
            if n > self.budget and not composite.ready():
                return  # the GL full frame stands in while the compositor compiles
            current = False  # its composited image is missing (a resize): composite it again
        if not self._moving and n <= self.budget:
            colors = self._colors_for(self._pose.center, force=True)
            frame = build_frame(scene, colors, view, self.near)
            if self._composites(n):
                composite_frame(scene, frame, view, self.intrinsics(), self.near)
            self._upload_frame(frame)
            return
        if not current:
            colors = self._colors_for(self._pose.center)
            k = min(n, self._budget_now)
            subset = None if k >= n else scene.budget_order[:k]
            self._upload_frame(build_frame(scene, colors, view, self.near, subset=subset, full=False))
        if not self._moving:
            self._request_full(view, key)

    def _adapt_budget(self, frame_ms: float) -> None:
        """Scale the moving budget towards `target_moving_ms` (at most x1.5 or /2 per frame)."""
        if frame_ms <= 0:
            return
        factor = min(1.5, max(0.5, self.target_moving_ms / frame_ms))
        self._budget_now = int(min(self.budget, max(self.min_budget, self._budget_now * factor)))

    def _composites(self, count: int) -> bool:
        """Whether full frames of a scene of `count` splats are composited on the CPU (`compositor`)."""
        if self.compositor == "gl" or not composite.available():
            return False
        return self.compositor == "cpu" or (count > self.budget and bool(self._software_gl))

    def _still_in_background(self, count: int) -> bool:
        """Whether a still full frame of a scene of `count` splats is composited in the sort thread
        rather than drawn on the GUI thread: on a software renderer (compositor "auto") when the scene
        is larger than the budget or the viewport than `SYNC_GL_PIXELS`, with compositor "cpu" always;
        once the compositor's kernels are ready (until then OpenGL draws it, and they compile in the
        background)."""
        if self._moving or self.compositor == "gl" or not composite.available():
            return False
        if self.compositor == "auto":
            width, height = self.physical_size
            if not self._software_gl or (count <= self.budget and width * height <= SYNC_GL_PIXELS):
                return False
        if not composite.ready():
            composite.warm_up_in_background()
            return False
        return True

    def _image_valid(self, intr: Intrinsics) -> bool:
        """Whether the composited image on the GPU shows the uploaded full frame in viewport `intr`."""
        image = self._image
        return (
            image is not None
            and self._upload.full
            and image.generation == self._generation == self._upload.generation
            and image.view_key == self._upload.view_key
            and image.intr == intr
        )

    def _request_full(self, view: np.ndarray, key: bytes, cpu: bool = False) -> None:
        """Ask the sort thread for the full frame of `view` (colours, sort, and composited on the CPU
        with `cpu` or where `_composites` says so)."""
        if self._requested == (self._generation, key):
            return
        self._requested = (self._generation, key)
        scene, state, degree, near, generation = self._scene, self._colors, self.sh_degree, self.near, self._generation
        eye = self._pose.center.copy()
        intr = self.intrinsics()
        cpu = cpu or self._composites(len(scene))
        if cpu and not composite.ready():
            composite.warm_up_in_background()  # until then the full frame is drawn with OpenGL
            cpu = False

        def job() -> FrameData:
            colors = state.colors if state is not None else None
            new_colors = None
            if state is None or _colors_stale(state, eye, scene, degree):
                new_colors = colors = splat_colors(scene, eye, degree, fast=cpu)
            frame = build_frame(scene, colors, view, near)
            frame.generation = generation
            frame.new_colors = new_colors
            frame.colors_eye = eye
            frame.colors_degree = degree
            if cpu:
                composite_frame(scene, frame, view, intr, near)
            return frame

        self._worker.submit(job)

    def _on_frame_ready(self, frame: object) -> None:
        """GUI thread: upload a finished full sort if it still matches what is shown."""
        if self._closed or not shiboken_is_valid(self.native):
            return  # the widget went with its window while the sort thread worked
        if isinstance(frame, Exception):
            logger.error("background depth sort failed: %s", frame, exc_info=frame)
            self._requested = None  # asked again at the next frame
            return
        assert isinstance(frame, FrameData)
        if self._requested == (frame.generation, frame.view_key):
            self._requested = None
        if frame.generation != self._generation:
            return
        if frame.new_colors is not None and frame.colors_eye is not None:
            self._colors = _ColorState(frame.new_colors, frame.colors_eye, frame.colors_degree)
        view = self._view()
        if self._moving or not views_close(np.frombuffer(frame.view_key).reshape(4, 4), view, self._scene.radius):
            return
        self._upload_frame(frame)
        self.update()

    def _upload_frame(self, frame: FrameData) -> None:
        """Put `frame` on the GPU: a composited frame as its image only; otherwise its index buffer,
        and the scene's centres and covariances (once per scene) and colours (when they changed).

        A composited frame leaves the splat buffers alone (for a 100k-splat live preview they were
        6 MB copied on the GUI thread for nothing); a moving frame uploads what it draws."""
        count = len(frame.order)
        drawn_with_gl = frame.image is None
        if count and drawn_with_gl:
            scene = self._scene
            if self._gpu_scene is not scene:
                self._static_vbo.set_data(scene.static)
                self._gpu_scene, self._gpu_colors = scene, None
            if frame.colors is not self._gpu_colors:
                self._color_vbo.set_data(np.ascontiguousarray(frame.colors, dtype=np.float32))
                self._gpu_colors = frame.colors
            self._bind_attributes()
            self._index.set_data(frame.order)
        self._upload = _Upload(
            count if drawn_with_gl else 0, frame.view_key, frame.full, self._generation, np.frombuffer(frame.view_key).reshape(4, 4)
        )
        self._image = None
        if frame.image is not None and frame.image_intr is not None:
            height, width = frame.image.shape[:2]
            texture = self._image_texture
            if texture is None or texture.shape[:2] != (height, width):
                texture = gloo.Texture2D(shape=(height, width, 4), internalformat="rgba8", interpolation="nearest")
                self._image_texture = texture
            texture.set_data(np.ascontiguousarray(frame.image[::-1]))  # GL rows go bottom up
            self._image = _Image(texture, frame.image_intr, self._generation, frame.view_key)
        self.stats.splats_drawn = count
        self.stats.sort_ms = frame.sort_ms
        self.stats.full = frame.full
        self.stats.composite_ms = frame.composite_ms

    def wait_until_idle(self, timeout: float = 30.0) -> bool:
        """Process events until the full-quality frame for the current view is on the GPU and no
        frame asked of the sort thread is still to come."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            app.process_events()
            done = self._scene is None or (self._upload.full and self._upload.view_key == view_key(self._view()))
            if done and self._worker.idle and self._requested is None:
                return True
            time.sleep(0.005)
        return False

    # ----------------------------------------------------------------------------- drawing

    def on_resize(self, event) -> None:
        gloo.set_viewport(0, 0, *event.physical_size)

    def on_draw(self, event) -> None:
        start = time.perf_counter()
        moving = self._moving
        self._point_limit()  # reads the renderer on the first draw
        self._prepare_frame()
        width, height = self.physical_size
        if moving and self.moving_scale < 1.0:
            self._draw_reduced(width, height)
        else:
            self._draw_scene(width, height)
        gloo.flush()
        if moving:  # the budget adapts to what the frame really cost; a still frame is not waited for
            gloo.gl.glFinish()
        self.stats.frame_ms = (time.perf_counter() - start) * 1000.0
        if moving:
            self._adapt_budget(self.stats.frame_ms)
        self.signals.sig_stats_changed.emit(self.stats)

    def _draw_scene(self, width: int, height: int, synchronous: bool = False) -> None:
        """Draw the uploaded frame (`synchronous`: whatever it takes, for `render_image`)."""
        gloo.set_viewport(0, 0, width, height)
        gloo.set_state(depth_test=False, cull_face=False, blend=True, blend_func=("one", "one_minus_src_alpha"))
        gloo.set_clear_color((*self.background, 1.0))
        gloo.clear(color=True, depth=True)
        intr = self.intrinsics(width, height)
        if self.overlays.grid:
            self._draw_overlay("grid", intr)
        if self._scene is not None:
            if self._image_valid(intr):
                self._draw_image(self._image)
            elif not synchronous and self._still_in_background(len(self._scene)):
                # the sort thread composites this frame; until it arrives the last one stays when it
                # showed this very view (a preview reloaded in place), else only the background
                image = self._image
                if image is not None and image.intr == intr and image.view_key == view_key(self._view()):
                    self._draw_image(image)
            elif self._upload.count:
                self._draw_splats(width, height, intr)
        for name in ("points", "frustums", "axes"):
            if getattr(self.overlays, name):
                self._draw_overlay(name, intr)
        self._draw_extra(intr)

    def _draw_image(self, image: _Image) -> None:
        gloo.set_state(blend=True, blend_func=("one", "one_minus_src_alpha"))
        self._blit["u_texture"] = image.texture
        self._blit.draw("triangle_strip")

    def _draw_reduced(self, width: int, height: int) -> None:
        """Draw at `moving_scale` resolution into a texture, then stretch it over the canvas."""
        small = (max(1, round(width * self.moving_scale)), max(1, round(height * self.moving_scale)))
        if self._reduced is None or self._reduced[0] != small:
            texture = gloo.Texture2D(shape=(small[1], small[0], 4), internalformat="rgba8", interpolation="linear")
            self._reduced = (small, texture, gloo.FrameBuffer(color=texture))
        _, texture, fbo = self._reduced
        with fbo:
            self._draw_scene(*small)
        gloo.set_viewport(0, 0, width, height)
        gloo.set_state(blend=False, depth_test=False)
        self._blit["u_texture"] = texture
        self._blit.draw("triangle_strip")

    def _point_limit(self) -> int:
        """The largest point size to use: OpenGL's limit (255 on llvmpipe), at most `MAX_POINT_SIZE`.

        Also enables shader-set point sizes and (compatibility profiles) point sprites, whose
        square covers exactly the pixel centres within it, unlike legacy points' rounded sizes,
        and notes whether OpenGL is a software renderer.
        """
        if self._max_point is None:
            gl = gloo.gl
            sizes = []
            for name in (0x0B12, 0x846D):  # GL_POINT_SIZE_RANGE, GL_ALIASED_POINT_SIZE_RANGE
                try:
                    sizes.append(float(np.asarray(gl.glGetParameter(name), dtype=np.float64).ravel()[-1]))
                except Exception:  # not every profile knows both
                    pass
            for cap in (0x8642, 0x8861):  # GL_PROGRAM_POINT_SIZE, GL_POINT_SPRITE (compatibility only)
                try:
                    gl.glEnable(cap)
                except Exception:  # not in core profiles
                    pass
            while gl.glGetError() != gl.GL_NO_ERROR:
                pass
            renderer = str(gl.glGetParameter(gl.GL_RENDERER)).lower()
            self._software_gl = is_software(renderer)
            if self._software_gl and self.compositor != "gl":
                composite.warm_up_in_background()  # still frames will be composited on the CPU
            limit = int(min(sizes)) if sizes else 64
            self._max_point = max(2, min(limit, MAX_POINT_SIZE))
        return self._max_point

    def _draw_splats(self, width: int, height: int, intr: Intrinsics) -> None:
        """Draw the uploaded order as points (see splat.geom.glsl).

        The viewport is the framebuffer grown by half the largest point size on each side, so
        that points centred just outside it still draw their inside part. Large frames are drawn
        in bands small enough for the geometry shader's `MAX_TILES` tiles (a band is at most
        8 x 8 largest points: 2040 x 2040 pixels on llvmpipe).
        """
        limit = self._point_limit()
        margin = limit // 2 + 1
        band = min(int(math.isqrt(MAX_TILES)) * limit, 8192)
        p = self._splat
        p["u_view"] = np.ascontiguousarray(self._view().T, dtype=np.float32)
        p["u_focal"] = (intr.fx, intr.fy)
        p["u_principal"] = (intr.cx, intr.cy)
        p["u_tan_fov"] = intr.tan_half_fov
        p["u_near"] = self.near
        p["u_fb_height"] = float(height)
        p["u_max_point"] = float(limit)
        p["u_single_below"] = float(self._single_below)
        bands = [(x0, y0, min(x0 + band, width), min(y0 + band, height))
                 for y0 in range(0, height, band) for x0 in range(0, width, band)]  # fmt: skip
        if len(bands) > 1:
            gloo.set_state(scissor_test=True)
        for x0, y0, x1, y1 in bands:
            vw, vh = x1 - x0 + 2 * margin, y1 - y0 + 2 * margin
            gloo.set_viewport(x0 - margin, height - y1 - margin, vw, vh)
            if len(bands) > 1:
                gloo.set_scissor(x0, height - y1, x1 - x0, y1 - y0)
            p["u_clip"] = (float(x0), float(y0), float(x1), float(y1))
            p["u_ndc"] = (2.0 / vw, -2.0 / vh, -2.0 * (x0 - margin) / vw - 1.0, 2.0 * (y1 + margin) / vh - 1.0)
            p.draw("points", self._index)
        if len(bands) > 1:
            gloo.set_state(scissor_test=False)
        gloo.set_viewport(0, 0, width, height)

    def _overlay_data(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        radius = self._scene.radius if self._scene is not None else 1.0
        center = self._scene.center if self._scene is not None else np.zeros(3)
        if name == "grid":
            pts = grid_lines(center, self.orbit.up, radius)
            return pts, np.tile(np.array([0.6, 0.6, 0.6, 0.35], np.float32), (len(pts), 1))
        if name == "axes":
            return axes_lines(0.25 * radius)
        if name == "frustums" and self._training:
            pts = frustum_lines(self._training, 0.05 * radius)
            return pts, np.tile(np.array([1.0, 0.8, 0.1, 0.9], np.float32), (len(pts), 1))
        if name == "points" and self._sparse is not None:
            return self._sparse
        return None

    def _draw_overlay(self, name: str, intr: Intrinsics) -> None:
        if name not in self._overlay_cache:
            data = self._overlay_data(name)
            if data is None:
                return
            self._overlay_cache[name] = (gloo.VertexBuffer(np.ascontiguousarray(data[0], np.float32)),
                                         gloo.VertexBuffer(np.ascontiguousarray(data[1], np.float32)))  # fmt: skip
        positions, colors = self._overlay_cache[name]
        radius = self._scene.radius if self._scene is not None else 1.0
        mvp = (
            projection_matrix(intr, self.near, 100.0 * radius + float(np.linalg.norm(self._pose.center))) @ self._view()
        )
        self._lines["u_mvp"] = np.ascontiguousarray(mvp.T, dtype=np.float32)
        self._lines["u_point_size"] = 2.0
        self._lines["a_position"] = positions
        self._lines["a_color"] = colors
        self._lines.draw("points" if name == "points" else "lines")

    # -------------------------------------------------------------------------- read back

    def render_image(self, size: tuple[int, int] | None = None, alpha: bool = False) -> np.ndarray:
        """Render one full-quality frame (all splats, exact sort and colours) off screen.

        Returns (H, W, 3|4) uint8, top row first. `size` is (width, height), default the canvas'.
        """
        width, height = size if size is not None else self.physical_size
        self.set_current()  # not `with self`: vispy's context manager closes the canvas on exit
        self._point_limit()
        if self._scene is not None:
            view = self._view()
            colors = self._colors_for(self._pose.center, force=True)
            frame = build_frame(self._scene, colors, view, self.near)
            frame.generation = self._generation
            if self._composites(len(self._scene)):
                composite_frame(self._scene, frame, view, self.intrinsics(width, height), self.near)
            self._upload_frame(frame)
        target = gloo.Texture2D(shape=(height, width, 4), internalformat="rgba8")
        fbo = gloo.FrameBuffer(color=target)
        self.set_current()
        with fbo:
            self._draw_scene(width, height, synchronous=True)
            pixels = gloo.read_pixels((0, 0, width, height), alpha=True)
        gloo.set_viewport(0, 0, *self.physical_size)
        return pixels if alpha else np.ascontiguousarray(pixels[..., :3])

    def screenshot(self, path: str | os.PathLike[str], size: tuple[int, int] | None = None) -> Path:
        """Write a full-quality PNG of the current view; returns its path."""
        from PIL import Image

        path = Path(path)
        Image.fromarray(self.render_image(size)).save(path)
        return path

    def pick(self, x: float, y: float) -> PickResult | None:
        """The splat under canvas position (`x`, `y`) in logical pixels (top-left origin), or None."""
        if self._scene is None:
            return None
        scale = self.pixel_scale
        colors = self._colors_for(self._pose.center)
        return pick_splat(self._scene, colors, self._view(), self.intrinsics(), self.near, x * scale, y * scale)

    # ------------------------------------------------------------------------------- input

    def on_mouse_press(self, event) -> None:
        if self.interaction is not None and self.interaction.mouse_press(event):
            return
        self._last_mouse = tuple(event.pos)

    def on_mouse_release(self, event) -> None:
        if self.interaction is not None and self.interaction.mouse_release(event):
            return
        self._last_mouse = None

    def on_mouse_move(self, event) -> None:
        if self.interaction is not None and self.interaction.mouse_move(event):
            return
        if not event.is_dragging or self._last_mouse is None:
            return
        x, y = event.pos
        dx, dy = x - self._last_mouse[0], y - self._last_mouse[1]
        self._last_mouse = (x, y)
        buttons = event.buttons or []
        shift = any(getattr(k, "name", "") == "Shift" for k in event.modifiers)
        if self.orbit_button in buttons and not shift:
            self.orbit.orbit(-dx * ORBIT_RADIANS_PER_PIXEL, dy * ORBIT_RADIANS_PER_PIXEL)
        else:
            pixel = self.orbit.distance * 2 * math.tan(math.radians(self.orbit.fov_y_deg) / 2) / max(self.size[1], 1)
            self.orbit.pan(-dx * pixel, -dy * pixel)
        self._interacted()

    def on_mouse_wheel(self, event) -> None:
        self.orbit.zoom(0.9 ** float(event.delta[1]))
        self._interacted()

    _FLY = {"W": (1, 0, 0), "S": (-1, 0, 0), "D": (0, 1, 0), "A": (0, -1, 0), "E": (0, 0, 1), "Q": (0, 0, -1)}

    def on_key_press(self, event) -> None:
        if self.interaction is not None and self.interaction.key_press(event):
            return
        name = getattr(event.key, "name", "") if event.key is not None else ""
        if name in self._FLY:
            self._keys.fly.add(name)
            self._on_fly_tick()
            self._fly_timer.start()
        elif name == "R":
            self.reset_view()
        elif name in ("Right", "Down", "PageDown") and self._training:
            self.next_camera()
        elif name in ("Left", "Up", "PageUp") and self._training:
            self.previous_camera()
        elif name == "F12":
            self.screenshot(self.screenshot_dir / time.strftime("splatstudio-%Y%m%d-%H%M%S.png"))
        elif name in ("G", "X", "C", "P"):
            attr = {"G": "grid", "X": "axes", "C": "frustums", "P": "points"}[name]
            setattr(self.overlays, attr, not getattr(self.overlays, attr))
            self.update()
        elif name in ("0", "1", "2", "3"):
            self.set_sh_degree(int(name))

    def on_key_release(self, event) -> None:
        name = getattr(event.key, "name", "") if event.key is not None else ""
        self._keys.fly.discard(name)
        if not self._keys.fly:
            self._fly_timer.stop()

    def _on_fly_tick(self, event=None) -> None:
        if not self._keys.fly:
            return
        step = 0.02 * (self._scene.radius if self._scene is not None else 1.0)
        move = np.sum([self._FLY[k] for k in self._keys.fly], axis=0) * step
        self.orbit.fly(forward=move[0], right=move[1], up=move[2])
        self._interacted()


def _colors_stale(state: _ColorState, eye: np.ndarray, scene: PreparedScene, degree: int, exact: bool = False) -> bool:
    """Whether SH colours evaluated from ``state.eye`` should be recomputed for `eye`.

    Degree-0 colours never change. Otherwise they are refreshed when the direction from the
    scene centre to the eye turned by more than 0.5 degree or the eye moved by more than 1 %
    of the scene radius (any move with `exact`).
    """
    if state.degree != degree:
        return True
    if degree == 0 or scene.cloud.sh_degree == 0:
        return False
    eye = np.asarray(eye, dtype=np.float64)
    moved = float(np.linalg.norm(eye - state.eye))
    if exact:
        return moved > 0.0
    a, b = state.eye - scene.center, eye - scene.center
    cos = float(np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))
    return cos < math.cos(math.radians(0.5)) or moved > 0.01 * scene.radius


__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_FOV_Y_DEG",
    "FrameData",
    "Overlays",
    "PickResult",
    "PreparedScene",
    "SplatCanvas",
    "ViewerStats",
    "build_frame",
    "covariances_3d",
    "pick_splat",
    "prepare_scene",
    "project_conics",
]
