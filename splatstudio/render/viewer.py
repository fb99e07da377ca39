"""The OpenGL Gaussian-splat viewer: a vispy gloo canvas (`SplatCanvas`) the UI embeds via ``.native``
(in a native child window: `splatstudio.ui.embed`).

The canvas holds the scene, the camera and what the GPU shows, and decides when to sort, colour and
composite; its rooms are beside it:

* `scene`        — a `SplatCloud` prepared for drawing (covariances, importance, framing) and its colours;
* `frames`       — depth-sorted frames, the sort thread (`SortWorker`), the status figures;
* `frame_policy` — where a frame is drawn (OpenGL or the CPU compositor, now or in the sort thread): one
  pure decision, `FramePolicy`;
* `painter`      — the OpenGL programs, buffers and draw calls (how splats become GL points);
* `picking`      — the splat under a pixel, on the CPU;
* `overlays`     — grid, axes, frustums, sparse points and the edit tools' shapes, as lines;
* `navigation`   — the camera, and what the mouse and the keys do.

CPU side: splats are depth-sorted with a 16-bit radix sort (`sorting`) and their
view-dependent colours evaluated from the SH coefficients (`sh`), recomputed only when the
view direction changed enough. Scenes up to `DEFAULT_BUDGET` splats are sorted synchronously;
larger ones are sorted (and recoloured) in a background thread once the camera settles, the
result reaching the GUI thread through a queued Qt signal. While the camera moves only a
budget of the most important splats (opacity x area of the two largest axes) is drawn,
sorted synchronously; the budget adapts to the measured frame time. On software OpenGL
(llvmpipe) still frames are composited on the CPU where that helps (`frame_policy`).

Needs OpenGL 3.2 (geometry shaders; Mesa llvmpipe has 4.5), the vispy ``pyside6`` app backend
and the ``gl+`` (PyOpenGL) gloo backend. Never imports ``QtWidgets`` directly.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui
from shiboken6 import delete as shiboken_delete
from shiboken6 import isValid as shiboken_is_valid
from vispy import app, gloo

from splatstudio.model.geometry import Intrinsics
from splatstudio.model.splatcloud import SplatCloud
from splatstudio.render import composite
from splatstudio.render.camera import DEFAULT_FOV_Y_DEG, home_view, projection_matrix
from splatstudio.render.frame_policy import BUDGET, COMPOSITORS, EXACT, IMAGE, WAIT, FramePolicy, Shown, image_valid
from splatstudio.render.frames import (
    FrameData,
    SortWorker,
    ViewerStats,
    build_frame,
    composite_frame,
    view_key,
    views_close,
)
from splatstudio.render.navigation import Navigation
from splatstudio.render.overlays import OVERLAY_MODES, EditOverlay, Overlays, overlay_geometry, sparse_points
from splatstudio.render.painter import SINGLE_POINT_BELOW, SplatPainter, read_gl_limits
from splatstudio.render.picking import PickResult, pick_splat
from splatstudio.render.scene import ColorState, PreparedScene, colors_stale, prepare_scene, splat_colors

logger = logging.getLogger(__name__)

DEFAULT_BUDGET = 150_000
"""Splats drawn while the camera moves (the most important ones); all of them once it stops."""

SETTLE_MS = 180
"""The camera counts as stopped this long after the last change."""


def use_gl_backend() -> None:
    """Select the PySide6 app backend and the instancing-capable ``gl+`` gloo backend."""
    try:
        app.use_app("pyside6")
    except RuntimeError:
        pass  # another backend already in use: creating the canvas will say so
    gloo.gl.use_gl("gl+")


class ViewerSignals(QtCore.QObject):
    """Qt signals of a `SplatCanvas` (``canvas.signals``); the UI connects to these."""

    sig_stats_changed = QtCore.Signal(object)
    """A frame was drawn; carries the canvas' `ViewerStats`."""

    sig_frame_ready = QtCore.Signal(object)
    """Internal: the sort worker finished a full frame (crosses to the GUI thread, queued)."""

    sig_place_changed = QtCore.Signal(str)
    """Where the view is, in words: "photo 3 of 16: IMG_0003.jpg" at a training camera, "" elsewhere."""


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


def _release_shared_context(native: Any) -> None:
    """Destroy the OpenGL context vispy's Qt backend keeps beside the widget's (``_secondary_context``, with
    its ``_surface``) now, on this thread, context first, with the widget: not whenever and in whatever order
    Python's collector gets to them (see services/main_thread_gc for what that did to other Qt objects)."""
    context = getattr(native, "_secondary_context", None)
    surface = getattr(native, "_surface", None)
    if context is not None and shiboken_is_valid(context):
        if QtGui.QOpenGLContext.currentContext() is context:
            context.doneCurrent()
        shiboken_delete(context)
    if surface is not None and shiboken_is_valid(surface):
        shiboken_delete(surface)
    native._secondary_context = native._surface = None


class SplatCanvas(Navigation, app.Canvas):
    """vispy canvas drawing a `SplatCloud`; embed ``canvas.native`` in a Qt layout.

    While the camera moves, the `budget` most important splats are drawn (adapted each frame
    towards `target_moving_ms`), optionally at `moving_scale` resolution (a texture stretched
    over the canvas; on llvmpipe that stretch costs about as much as it saves, hence 1.0).

    `compositor`: "auto" composites full frames on the CPU when OpenGL is a software renderer
    and numba is installed (see `composite`): synchronously for scenes larger than `budget` in
    `render_image`, in the sort thread for those on screen, for the full frame after the camera
    stops and for scenes reloaded in place (`load` with ``reset_camera=False``); "cpu" also for
    every synchronous full frame, wherever numba is installed; "gl" never. `FramePolicy` decides.

    Camera, mouse and keys: see `navigation`.

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
        if compositor not in COMPOSITORS:
            raise ValueError(f"compositor must be 'auto', 'cpu' or 'gl', got {compositor!r}")
        self.compositor = compositor
        self.overlays = Overlays()
        self.stats = ViewerStats()
        self.signals = ViewerSignals()
        self.screenshot_dir = Path(screenshot_dir) if screenshot_dir else Path.cwd()
        self._init_navigation()
        self._scene: PreparedScene | None = None
        self._colors: ColorState | None = None
        self._upload = _Upload()
        self._max_point: int | None = None  # point size limit, read from OpenGL on the first draw
        self._single_below = SINGLE_POINT_BELOW
        self._software_gl: bool | None = None  # read from OpenGL on the first draw
        self._image: _Image | None = None  # the composited full frame on the GPU, if any
        self._reduced: tuple[tuple[int, int], gloo.Texture2D, gloo.FrameBuffer] | None = None
        self._generation = 0
        self._requested: tuple[int, bytes] | None = None  # (generation, view key) being sorted
        self._sparse: tuple[np.ndarray, np.ndarray] | None = None
        self._painter = SplatPainter()
        self._extra: dict[str, EditOverlay] = {}  # the edit tools' overlays (`set_overlay`)
        self.signals.sig_frame_ready.connect(self._on_frame_ready)
        self._worker = SortWorker(self.signals.sig_frame_ready.emit)
        self._settle = app.Timer(SETTLE_MS / 1000.0, connect=self._on_settled, iterations=1, start=False)
        if show:
            self.show()

    def close(self) -> None:
        """Stop the sort thread, close the window and schedule the widget's destruction.

        Always close a canvas you are done with: a QOpenGLWidget destroyed later by Python's
        garbage collector releases the current OpenGL context at an arbitrary moment, which
        breaks whatever another canvas is drawing then. ``deleteLater`` destroys it during
        event processing instead, between frames, but only once an event loop runs: where none
        runs (the command line, tests) call `dispose` instead.
        """
        if self._closed:
            return
        self._worker.stop()
        self._settle.stop()
        self._fly_timer.stop()
        native = self.native
        super().close()
        _release_shared_context(native)
        native.deleteLater()

    def dispose(self) -> None:
        """`close`, and destroy the widget now. Only where no event loop runs (after ``app.run()``
        returned, in a command or a test): ``processEvents`` leaves the deferred deletion for the next
        event loop to start, which then tears the OpenGL widget down in the middle of another canvas'
        work (CI's segfault in the GL tests)."""
        self.close()
        QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete)

    def _policy(self) -> FramePolicy:
        """Where frames are drawn now (`FramePolicy`, from the canvas' state); starts compiling the compositor's
        kernels in the background when they are wanted and not ready."""
        width, height = self.physical_size
        policy = FramePolicy(self.compositor, bool(self._software_gl), self.budget, composite.available(),
                             composite.ready(), self._moving, width * height)  # fmt: skip
        if policy.warm_up:
            composite.warm_up_in_background()
        return policy

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
        elif self._policy().previews_in_background():
            view = self._view()
            self._request_full(view, view_key(view), cpu=True)
            return  # repainted when the composited frame arrives
        self.update()

    def set_sh_degree(self, degree: int) -> None:
        """Use SH up to `degree` (0..3, clipped to what the scene has) for the colours."""
        self.sh_degree = max(0, min(3, int(degree)))
        self._generation += 1  # drop background results computed with the old degree
        self._colors = None
        self._upload = _Upload()
        self.update()

    def set_sparse_points(self, xyz: np.ndarray | None, rgb: np.ndarray | None = None) -> None:
        """SfM points for the `points` overlay (rgb uint8 or float in 0..1)."""
        self._sparse = None if xyz is None else sparse_points(xyz, rgb)
        self._overlay_changed("points")

    def _overlay_changed(self, name: str) -> None:
        """The geometry of overlay `name` changed: made again when next drawn."""
        self._painter.forget_overlay(name)
        self.update()

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
        if mode not in OVERLAY_MODES:
            raise ValueError(f"unknown overlay mode {mode!r}")
        old = self._extra.get(name)
        overlay = EditOverlay(np.asarray(positions), colors, mode, screen, float(size), indices)
        if old is not None and old.positions is overlay.positions and not screen:
            overlay.vbo = old.vbo  # the same points (the scene's centres): only the indices change
        self._extra[name] = overlay
        self.update()

    def _on_settled(self, event=None) -> None:
        """The camera stopped: the full frame. On software OpenGL it is composited in the sort thread
        while the last moving frame stays on screen, rather than rasterised on the GUI thread."""
        self._moving = False
        if self._scene is not None and self._policy().previews_in_background():
            view = self._view()
            self._request_full(view, view_key(view), cpu=True)
            return
        self.update()

    def _view(self) -> np.ndarray:
        return self._pose.view_matrix()

    # ----------------------------------------------------------------------- frame building

    def _colors_for(self, eye: np.ndarray, force: bool = False) -> np.ndarray:
        """Current colours, recomputed synchronously when missing or (with `force`) stale.

        The first colours of a scene larger than the budget are the cheap degree-0 ones (the
        GUI thread stays responsive); the worker replaces them with the full SH evaluation.
        """
        scene = self._scene
        assert scene is not None
        state = self._colors
        if state is None or (force and colors_stale(state, eye, scene, self.sh_degree, exact=True)):
            degree = self.sh_degree if force or len(scene) <= self.budget else 0
            state = ColorState(splat_colors(scene, eye, degree), np.array(eye, float), degree)
            self._colors = state
        return state.colors

    def _prepare_frame(self) -> None:
        """Make sure the GPU holds splats sorted for the current view, as `FramePolicy.step` says: the exact
        frame synchronously, the moving budget, and/or the full frame asked of the sort thread."""
        scene = self._scene
        if scene is None:
            return
        view = self._view()
        key = view_key(view)
        n = len(scene)
        current = self._upload.generation == self._generation and (
            self._upload.view_key == key or views_close(self._upload.view, view, scene.radius)
        )
        shown = Shown(current, self._upload.full, self._image_valid(self.intrinsics()))
        step = self._policy().step(n, shown)
        if step.draw == EXACT:
            colors = self._colors_for(self._pose.center, force=True)
            frame = build_frame(scene, colors, view, self.near)
            if step.composite:
                composite_frame(scene, frame, view, self.intrinsics(), self.near)
            self._upload_frame(frame)
        elif step.draw == BUDGET:
            colors = self._colors_for(self._pose.center)
            k = min(n, self._budget_now)
            subset = None if k >= n else scene.budget_order[:k]
            self._upload_frame(build_frame(scene, colors, view, self.near, subset=subset, full=False))
        if step.request:
            self._request_full(view, key, cpu=step.request_cpu)

    def _adapt_budget(self, frame_ms: float) -> None:
        """Scale the moving budget towards `target_moving_ms` (at most x1.5 or /2 per frame)."""
        if frame_ms <= 0:
            return
        factor = min(1.5, max(0.5, self.target_moving_ms / frame_ms))
        self._budget_now = int(min(self.budget, max(self.min_budget, self._budget_now * factor)))

    def _composites(self, count: int) -> bool:
        """Whether full frames of a scene of `count` splats are composited on the CPU (`FramePolicy.composites`)."""
        return self._policy().composites(count)

    def _image_valid(self, intr: Intrinsics) -> bool:
        """Whether the composited image on the GPU shows the uploaded full frame in viewport `intr`."""
        return image_valid(self._image, self._upload, self._generation, intr)

    def _request_full(self, view: np.ndarray, key: bytes, cpu: bool = False) -> None:
        """Ask the sort thread for the full frame of `view` (colours, sort, and composited on the CPU
        with `cpu` or where `FramePolicy.request_cpu` says so)."""
        if self._requested == (self._generation, key):
            return
        self._requested = (self._generation, key)
        scene, state, degree, near, generation = self._scene, self._colors, self.sh_degree, self.near, self._generation
        eye = self._pose.center.copy()
        intr = self.intrinsics()
        cpu = self._policy().request_cpu(len(scene), cpu)  # until the kernels are ready: drawn with OpenGL

        def job() -> FrameData:
            colors = state.colors if state is not None else None
            new_colors = None
            if state is None or colors_stale(state, eye, scene, degree):
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
            self._colors = ColorState(frame.new_colors, frame.colors_eye, frame.colors_degree)
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
            self._painter.upload_splats(self._scene, frame)
        self._upload = _Upload(
            count if drawn_with_gl else 0, frame.view_key, frame.full, self._generation, np.frombuffer(frame.view_key).reshape(4, 4)
        )
        self._image = None
        if frame.image is not None and frame.image_intr is not None:
            texture = self._painter.upload_image(frame.image)
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
        """Draw the uploaded frame where `FramePolicy.placement` says (`synchronous`: whatever it takes, for
        `render_image`), the overlays over it."""
        gloo.set_viewport(0, 0, width, height)
        gloo.set_state(depth_test=False, cull_face=False, blend=True, blend_func=("one", "one_minus_src_alpha"))
        gloo.set_clear_color((*self.background, 1.0))
        gloo.clear(color=True, depth=True)
        intr = self.intrinsics(width, height)
        if self.overlays.grid:
            self._draw_overlay("grid", intr)
        if self._scene is not None:
            placement = self._policy().placement(len(self._scene), self._image_valid(intr), synchronous)
            if placement == IMAGE:
                self._painter.draw_texture(self._image.texture)
            elif placement == WAIT:
                # the sort thread composites this frame; until it arrives the last one stays when it
                # showed this very view (a preview reloaded in place), else only the background
                image = self._image
                if image is not None and image.intr == intr and image.view_key == view_key(self._view()):
                    self._painter.draw_texture(image.texture)
            elif self._upload.count:
                self._draw_splats(width, height, intr)
        for name in ("points", "frustums", "axes"):
            if getattr(self.overlays, name):
                self._draw_overlay(name, intr)
        if self._extra:
            self._painter.draw_edit_overlays(self._extra, self._mvp(intr), self.size)

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
        self._painter.draw_texture(texture, blend=False)

    def _point_limit(self) -> int:
        """The largest point size to use (`painter.read_gl_limits`, on the first draw), which also notes
        whether OpenGL is a software renderer (and then starts compiling the CPU compositor)."""
        if self._max_point is None:
            self._max_point, self._software_gl = read_gl_limits()
            self._policy()  # still frames will be composited on the CPU: compile its kernels
        return self._max_point

    def _draw_splats(self, width: int, height: int, intr: Intrinsics) -> None:
        """Draw the uploaded order as points (`SplatPainter.draw_splats`)."""
        self._painter.draw_splats(self._view(), intr, self.near, width, height, self._point_limit(), self._single_below)

    def _mvp(self, intr: Intrinsics) -> np.ndarray:
        """World to clip coordinates for viewport `intr` (far plane well beyond the scene and the camera)."""
        radius = self._scene.radius if self._scene is not None else 1.0
        far = 100.0 * radius + float(np.linalg.norm(self._pose.center))
        return projection_matrix(intr, self.near, far) @ self._view()

    def _draw_overlay(self, name: str, intr: Intrinsics) -> None:
        scene = self._scene
        center, radius = (scene.center, scene.radius) if scene is not None else (np.zeros(3), 1.0)
        self._painter.draw_overlay(name, self._mvp(intr), lambda: overlay_geometry(
            name, center, radius, self.orbit.up, self._training, self._sparse))

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


__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_FOV_Y_DEG",
    "SplatCanvas",
    "ViewerSignals",
    "use_gl_backend",
]
