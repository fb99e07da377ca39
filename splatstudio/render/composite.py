"""Full-quality frames composited on the CPU (numba), for software OpenGL.

On Mesa llvmpipe a full frame of a large scene is bound by the GL rasteriser: at 1M splats
(1280x720) 80 % of the time is llvmpipe's per-4x4-block work for a million small primitives,
about 1.7 s of CPU in all, however the splats are shaped (points, quads, triangles). This module
renders the same image the way the reference 3DGS rasteriser does: splats binned into 16x16
tiles in depth order, composited front to back per pixel centre in float with the same EWA conic,
0.3 px low-pass, 3-sigma and 1/255 cuts and 0.99 cap, stopping once a pixel's transmittance would
fall below 1e-4 (what the reference does). The result is premultiplied RGBA, which the viewer
blends over its background exactly as it blends GL splats. About 0.6 s of CPU at 1M splats, run
in the viewer's sort thread (the GUI thread only uploads the finished image).

Needs numba (installed with the trainer); `available()` says whether it is. Importing this module
imports neither numba nor Qt; the kernels (`_composite_kernels`) compile on first use, or load
from numba's cache (`warm_up_in_background` does it off the GUI thread). One kernel call at a
time (a lock): not every numba threading layer is re-entrant.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass

import numpy as np

from splatstudio.model.geometry import Intrinsics

_lock = threading.Lock()  # held while a kernel runs (or compiles)
_warm_lock = threading.Lock()  # guards `_warming` only: never waits for a kernel
_kernels = None
_available: bool | None = None
_ready = threading.Event()
_warming = False


def available() -> bool:
    """Whether numba is installed (without importing it, which takes a while) and compiling the
    kernels has not failed; they compile on first use."""
    global _available
    if _available is None:
        import importlib.util

        _available = importlib.util.find_spec("numba") is not None
    return _available


def ready() -> bool:
    """Whether the kernels are compiled (or loaded from the cache) in this process."""
    return _ready.is_set()


def warm_up() -> bool:
    """Compile (or load) the kernels by compositing a one-splat frame; True once they are ready."""
    if not available():
        return False
    if not _ready.is_set():
        sh_colors(np.zeros((1, 3)), np.zeros((1, 3)), np.zeros((1, 15, 3)), np.ones(3), 3, np.ones(1), ready=False)
        view = np.eye(4)
        view[2, 3] = 2.0
        composite(np.zeros((1, 3)), np.array([[0.01, 0, 0, 0.01, 0, 0.01]]), np.array([[0.5, 0.5, 0.5, 0.9]]),
                  np.zeros(1, dtype=np.int64), view, Intrinsics.from_fov_y(8, 8, 50.0), 0.01)  # fmt: skip
    return True


def sh_colors(
    positions: np.ndarray,
    sh_dc: np.ndarray,
    sh_rest: np.ndarray,
    eye: np.ndarray,
    degree: int,
    alphas: np.ndarray,
    ready: bool = True,
) -> np.ndarray:
    """(N, 4) float32: `splatstudio.render.sh.sh_to_rgb` colours (clamped to [0, 1]) and `alphas`,
    in one parallel pass (about 5x faster than numpy at 1M splats). `ready`: only once `ready()`."""
    if ready and not _ready.is_set():
        raise RuntimeError("the CPU compositor's kernels are not compiled yet (see warm_up)")
    k = _load()
    n = len(positions)
    rest = np.ascontiguousarray(sh_rest, dtype=np.float32).reshape(n, -1, 3)
    available_degree = {0: 0, 3: 1, 8: 2, 15: 3}[rest.shape[1]]
    if rest.shape[1] == 0:
        rest = np.zeros((n, 1, 3), dtype=np.float32)
    out = np.empty((n, 4), dtype=np.float32)
    with _lock:
        k.sh_colors(np.ascontiguousarray(positions, dtype=np.float32), np.ascontiguousarray(sh_dc, dtype=np.float32),
                    rest, np.asarray(eye, dtype=np.float32), max(0, min(int(degree), available_degree)),
                    np.ascontiguousarray(alphas, dtype=np.float32), out)  # fmt: skip
    return out


BACKGROUND_NICE = 5  # as the stage processes: the GUI thread (nice 0) gets three times their share


def lower_thread_priority(nice: int = BACKGROUND_NICE) -> None:
    """Run the calling thread, and the OpenMP team its parallel kernels start, at `nice`.

    On Linux a nice value is per thread and new threads inherit their creator's, so a background
    thread that composites frames leaves the cores to the GUI thread when they are contended (a
    training run beside the window): a live preview composited at nice 0 on two busy cores
    stalled the event loop 60-90 ms. Elsewhere this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), nice))
    except OSError:  # not permitted in some sandboxes: only the responsiveness suffers
        pass


def warm_up_in_background() -> None:
    """`warm_up` in a daemon thread (once): compiling takes seconds the first time."""
    global _warming
    with _warm_lock:
        if _warming or _ready.is_set() or not available():
            return
        _warming = True

    def run() -> None:
        global _warming, _available
        lower_thread_priority()
        try:
            warm_up()
        except Exception:  # a broken numba or llvmlite: the viewer keeps drawing with OpenGL
            import logging

            logging.getLogger(__name__).exception("the CPU compositor failed to compile; using OpenGL")
            _available = False
        finally:
            _warming = False

    threading.Thread(target=run, name="splat-composite-compile", daemon=True).start()


def _load():
    global _kernels
    if _kernels is None:
        from splatstudio.render import _composite_kernels

        _kernels = _composite_kernels
    return _kernels


@dataclass(frozen=True)
class CompositeStats:
    """Where the time of one composited frame went (milliseconds) and how many tile entries it had."""

    project_ms: float
    bin_ms: float
    composite_ms: float
    entries: int


def composite(
    positions: np.ndarray,
    cov6: np.ndarray,
    colors: np.ndarray,
    order: np.ndarray,
    view: np.ndarray,
    intr: Intrinsics,
    near: float,
    stats: list | None = None,
) -> np.ndarray:
    """Premultiplied RGBA (H, W, 4) uint8, top row first, of the splats `order` (back to front).

    `positions` (N, 3) and `cov6` (N, 6: xx xy xz yy yz zz) are the centres and 3D covariances,
    `colors` (N, 4) the colours seen from the camera and the opacities; `view` is world-to-camera.
    Appends a `CompositeStats` to `stats` when given.
    """
    import time

    if not available():
        raise RuntimeError("the CPU compositor needs numba")
    k = _load()
    width, height = int(intr.width), int(intr.height)
    positions = np.ascontiguousarray(positions, dtype=np.float32)
    cov6 = np.ascontiguousarray(cov6, dtype=np.float32)
    colors = np.ascontiguousarray(colors, dtype=np.float32)
    front_to_back = np.ascontiguousarray(np.asarray(order)[::-1], dtype=np.int64)
    view32 = np.ascontiguousarray(view, dtype=np.float32)
    tanx, tany = intr.tan_half_fov
    n = len(positions)
    image = np.empty((height, width, 4), dtype=np.uint8)
    with _lock:
        t0 = time.perf_counter()
        data = np.empty((n, k.NF), dtype=np.float32)
        box = np.empty((n, 4), dtype=np.int32)
        k.project(positions, cov6, colors, view32, np.float32(intr.fx), np.float32(intr.fy), np.float32(intr.cx),
                  np.float32(intr.cy), np.float32(1.3 * tanx), np.float32(1.3 * tany), np.float32(near), width, height,
                  data, box)  # fmt: skip
        data_sorted = np.empty((len(front_to_back), k.NF), dtype=np.float32)
        box_sorted = np.empty((len(front_to_back), 4), dtype=np.int32)
        k.gather(data, box, front_to_back, data_sorted, box_sorted)
        del data, box
        t1 = time.perf_counter()
        tiles_x, tiles_y = -(-width // k.TILE), -(-height // k.TILE)
        offsets, lists = k.bin_tiles(box_sorted, tiles_x, tiles_y)
        t2 = time.perf_counter()
        k.composite(data_sorted, box_sorted, offsets, lists, tiles_x, width, height, image)
        t3 = time.perf_counter()
        _ready.set()
    if stats is not None:
        stats.append(CompositeStats((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, int(len(lists))))
    return image
