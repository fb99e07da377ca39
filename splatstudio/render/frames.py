"""Frames of the viewer (pure numpy and a thread, no Qt): a draw order of the splats sorted back to front for a
view (`FrameData`, `build_frame`), optionally composited on the CPU (`composite_frame`), whether an order is
still good for a nearby view (`views_close`), the background thread that builds full frames (`SortWorker`),
and the figures of the frame shown (`ViewerStats`).

Splats are depth-sorted with a 16-bit radix sort (`sorting`). A depth order is kept while the view changes by
less than `RESORT_ANGLE_DEG` / `RESORT_SHIFT`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from splatstudio.model.geometry import Intrinsics
from splatstudio.render import composite
from splatstudio.render.scene import PreparedScene
from splatstudio.render.sorting import sort_back_to_front


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

