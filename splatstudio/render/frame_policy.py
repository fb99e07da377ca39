"""Where and when the viewer draws a frame: one pure decision (`FramePolicy`), unit-tested without OpenGL.

On software OpenGL (llvmpipe) full-quality frames are composited on the CPU where that helps
(`composite`, numba, ``compositor="auto"``), in the sort thread, and the GUI thread only shows
the image (a texture): every still frame of a scene larger than the budget or of a viewport
larger than `SYNC_GL_PIXELS` (at 1M splats about 40 % of the GL time; llvmpipe spends 80 % of a
frame rasterising a million small primitives, and even 10k splats at 1280x720 took 80 ms of the
GUI thread), and live previews reloaded in place, during which the previous frame stays on
screen. Only moving frames are drawn with OpenGL there.

Scenes up to the budget are sorted and coloured synchronously when the camera stops; larger ones show the
budget of the most important splats at once and the sort thread builds the full frame. While the camera
moves only the budget is drawn, sorted synchronously.

`SplatCanvas` takes a snapshot of its inputs (`FramePolicy`: the compositor setting, the renderer, the
budget, whether numba is there and compiled, whether the camera moves, the viewport) and of what the GPU
holds (`Shown`), and asks: `step` (what to sort, composite and ask of the sort thread before drawing),
`placement` (what to draw: the composited image, nothing yet, or the splats), `previews_in_background`
(a scene reloaded in place) and `request_cpu` (whether a frame asked of the sort thread is composited).
`warm_up` says when the compositor's kernels should start compiling (in the background).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

COMPOSITORS = ("auto", "cpu", "gl")

SYNC_GL_PIXELS = 320 * 240
"""On a software renderer a still frame of a larger viewport is never rasterised on the GUI thread:
llvmpipe needs ~80 ms for 10k splats at 1280x720 (GL path, quiet 2-core machine), an event-loop
stall; the sort thread composites it instead. Smaller viewports draw synchronously."""

KEEP, EXACT, BUDGET = "keep", "exact", "budget"
"""`FrameStep.draw`: the GPU's frame stands; sort and colour every splat now; the moving budget now."""

IMAGE, WAIT, SPLATS = "image", "wait", "splats"
"""`FramePolicy.placement`: the composited image; nothing new (the sort thread composites the frame: the last
image stays if it showed this very view, else the background); the uploaded splats."""


@dataclass(frozen=True)
class Shown:
    """What the GPU holds, against the frame wanted now."""

    current: bool  # the uploaded order is of this scene and marks, sorted for this view or one close to it
    full: bool  # it holds every splat (not the moving budget)
    image_valid: bool  # the composited image of that full frame is on the GPU, for this viewport


@dataclass(frozen=True)
class FrameStep:
    """What to do before drawing (`FramePolicy.step`)."""

    draw: str = KEEP  # KEEP, EXACT or BUDGET
    composite: bool = False  # with EXACT: composite it on the CPU too (synchronously)
    request: bool = False  # ask the sort thread for the full frame of this view
    request_cpu: bool = False  # ... composited on the CPU (else as `FramePolicy.request_cpu` says)


@dataclass(frozen=True)
class FramePolicy:
    """The inputs of the decision; its methods answer. ``compositor``: "auto" composites on the CPU where OpenGL
    is a software renderer, "cpu" wherever numba is installed, "gl" never."""

    compositor: str = "auto"
    software_gl: bool = False  # OpenGL is a software renderer (llvmpipe)
    budget: int = 150_000  # splats drawn while moving; scenes up to this are sorted synchronously
    available: bool = False  # numba is installed and the kernels did not fail to compile
    ready: bool = False  # the compositor's kernels are compiled
    moving: bool = False  # the camera moves (the budget is drawn until it settles)
    pixels: int = 0  # the viewport, in physical pixels

    def __post_init__(self) -> None:
        if self.compositor not in COMPOSITORS:
            raise ValueError(f"compositor must be 'auto', 'cpu' or 'gl', got {self.compositor!r}")

    @property
    def wants_compositor(self) -> bool:
        """Whether still frames would be composited on the CPU somewhere ("cpu", or "auto" on software GL)."""
        if self.compositor == "gl" or not self.available:
            return False
        return self.compositor == "cpu" or self.software_gl

    @property
    def warm_up(self) -> bool:
        """Whether the compositor's kernels should start compiling (in the background): wanted, not ready."""
        return self.wants_compositor and not self.ready

    def composites(self, count: int) -> bool:
        """Whether full frames of a scene of `count` splats are composited on the CPU: "cpu" always, "auto" on
        a software renderer when the scene is larger than the budget."""
        if self.compositor == "gl" or not self.available:
            return False
        return self.compositor == "cpu" or (count > self.budget and self.software_gl)

    def still_in_background(self, count: int) -> bool:
        """Whether a still full frame of `count` splats is composited in the sort thread rather than drawn on the
        GUI thread: on a software renderer ("auto") when the scene is larger than the budget or the viewport
        than `SYNC_GL_PIXELS`, with "cpu" always; once the kernels are ready (until then OpenGL draws it)."""
        if self.moving or not self.wants_compositor:
            return False
        if self.compositor == "auto" and count <= self.budget and self.pixels <= SYNC_GL_PIXELS:
            return False
        return self.ready

    def previews_in_background(self) -> bool:
        """Whether a scene reloaded in place (a live training preview), or the full frame once the camera
        stopped, is composited in the sort thread while the last frame stays on screen."""
        return not self.moving and self.wants_compositor and self.ready

    def request_cpu(self, count: int, asked: bool = False) -> bool:
        """Whether a full frame asked of the sort thread is composited there (`asked`, or where `composites`
        says so), once the kernels are ready; until then it is drawn with OpenGL."""
        return (asked or self.composites(count)) and self.ready

    def step(self, count: int, shown: Shown) -> FrameStep:
        """What to prepare before drawing a scene of `count` splats.

        Still: a frame composited in the background is asked for unless its image is up; scenes up to the
        budget are sorted and coloured exactly, synchronously; larger ones show the budget at once and ask the
        sort thread for the full frame. Moving: the budget, sorted synchronously, unless the order on the GPU
        is still good for this view.
        """
        if self.still_in_background(count):
            if shown.current and shown.full and shown.image_valid:
                return FrameStep()
            return FrameStep(request=True, request_cpu=True)
        current = shown.current
        if current and (shown.full or self.moving):
            if self.moving or not self.composites(count) or shown.image_valid:
                return FrameStep()
            if count > self.budget and not self.ready:
                return FrameStep()  # the GL full frame stands in while the compositor compiles
            current = False  # its composited image is missing (a resize): composite it again
        if not self.moving and count <= self.budget:
            return FrameStep(EXACT, composite=self.composites(count))
        return FrameStep(KEEP if current else BUDGET, request=not self.moving)

    def placement(self, count: int, image_valid: bool, synchronous: bool = False) -> str:
        """What to draw of a scene of `count` splats: IMAGE, WAIT or SPLATS (`synchronous`: whatever it takes,
        for a frame read back at once)."""
        if image_valid:
            return IMAGE
        if not synchronous and self.still_in_background(count):
            return WAIT
        return SPLATS


def image_valid(image: Any, uploaded: Any, generation: int, intr: Any) -> bool:
    """Whether the composited `image` on the GPU (its ``generation``, ``view_key`` and ``intr``) shows the
    `uploaded` full frame (``full``, ``generation``, ``view_key``) of the current `generation`, in viewport
    `intr`."""
    return (
        image is not None
        and uploaded.full
        and image.generation == generation == uploaded.generation
        and image.view_key == uploaded.view_key
        and image.intr == intr
    )
