"""The viewer's OpenGL side (`SplatPainter`): the programs, buffers and draw calls of `viewer.SplatCanvas`.

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

A frame composited on the CPU is shown as a texture (`upload_image`, `draw_texture`); the overlays
(`overlays`) are drawn as lines and points over the splats. Needs OpenGL 3.2 (geometry shaders; Mesa
llvmpipe has 4.5) and the ``gl+`` (PyOpenGL) gloo backend.
"""

from __future__ import annotations

import importlib.resources
import math
from collections.abc import Callable

import numpy as np
from vispy import gloo

from splatstudio.model.geometry import Intrinsics
from splatstudio.render.frames import FrameData
from splatstudio.render.glinfo import is_software
from splatstudio.render.overlays import EditOverlay, screen_to_ndc
from splatstudio.render.scene import STATIC_DTYPE, PreparedScene

_CORNERS = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]], dtype=np.float32)

MAX_TILES = 64
"""Points the geometry shader emits at most for one splat (``max_vertices`` in splat.geom.glsl)."""

MAX_POINT_SIZE = 1024
"""Largest point size used even where the OpenGL limit is higher (llvmpipe's is 255)."""

SINGLE_POINT_BELOW = 16.0
"""Splats whose bounding square is at most this many pixels wide are always one point; larger
ones become rows of tiles following the ellipse where that rasterises fewer pixels (see
splat.geom.glsl)."""


def load_shader(name: str) -> str:
    """GLSL source of ``splatstudio/render/shaders/<name>`` (package data)."""
    return (
        importlib.resources.files("splatstudio.render").joinpath("shaders").joinpath(name).read_text(encoding="utf-8")
    )


def read_gl_limits() -> tuple[int, bool]:
    """The largest point size to use (OpenGL's limit, 255 on llvmpipe, at most `MAX_POINT_SIZE`) and whether
    OpenGL is a software renderer; needs the canvas' context current.

    Also enables shader-set point sizes and (compatibility profiles) point sprites, whose
    square covers exactly the pixel centres within it, unlike legacy points' rounded sizes.
    """
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
    software = is_software(str(gl.glGetParameter(gl.GL_RENDERER)).lower())
    limit = int(min(sizes)) if sizes else 64
    return max(2, min(limit, MAX_POINT_SIZE)), software


class SplatPainter:
    """GL objects of one canvas (made lazily by gloo, in the canvas' context) and what draws with them."""

    def __init__(self) -> None:
        self.splat = gloo.Program()
        self.splat.set_shaders(load_shader("splat.vert.glsl"), load_shader("splat.frag.glsl"),
                               load_shader("splat.geom.glsl"))  # fmt: skip
        self._static_vbo = gloo.VertexBuffer(np.zeros(1, dtype=STATIC_DTYPE))
        self._color_vbo = gloo.VertexBuffer(np.zeros((1, 4), dtype=np.float32))
        self._index = gloo.IndexBuffer(np.zeros(1, dtype=np.uint32))
        self._bind_attributes()
        self.lines = gloo.Program(load_shader("lines.vert.glsl"), load_shader("lines.frag.glsl"))
        self.blit = gloo.Program(load_shader("blit.vert.glsl"), load_shader("blit.frag.glsl"))
        self.blit["a_corner"] = gloo.VertexBuffer(_CORNERS)
        self._overlay_cache: dict[str, tuple[gloo.VertexBuffer, gloo.VertexBuffer]] = {}
        self._image_texture: gloo.Texture2D | None = None
        self._gpu_scene: PreparedScene | None = None  # whose centres and covariances are uploaded
        self._gpu_colors: np.ndarray | None = None  # the colours uploaded

    def _bind_attributes(self) -> None:
        for name in STATIC_DTYPE.names:
            self.splat[name] = self._static_vbo[name]
        self.splat["a_color"] = self._color_vbo

    # ------------------------------------------------------------------------------ uploads

    def upload_splats(self, scene: PreparedScene, frame: FrameData) -> None:
        """`frame`'s index buffer, and the scene's centres and covariances (once per scene) and colours (when
        they changed)."""
        if self._gpu_scene is not scene:
            self._static_vbo.set_data(scene.static)
            self._gpu_scene, self._gpu_colors = scene, None
        if frame.colors is not self._gpu_colors:
            self._color_vbo.set_data(np.ascontiguousarray(frame.colors, dtype=np.float32))
            self._gpu_colors = frame.colors
        self._bind_attributes()
        self._index.set_data(frame.order)

    def upload_image(self, image: np.ndarray) -> gloo.Texture2D:
        """A composited frame (H, W, 4) premultiplied RGBA, top row first, as the texture `draw_texture` shows."""
        height, width = image.shape[:2]
        texture = self._image_texture
        if texture is None or texture.shape[:2] != (height, width):
            texture = gloo.Texture2D(shape=(height, width, 4), internalformat="rgba8", interpolation="nearest")
            self._image_texture = texture
        texture.set_data(np.ascontiguousarray(image[::-1]))  # GL rows go bottom up
        return texture

    # ------------------------------------------------------------------------------ drawing

    def draw_texture(self, texture: gloo.Texture2D, blend: bool = True) -> None:
        """`texture` over the whole viewport (premultiplied: blended over what is there with `blend`)."""
        if blend:
            gloo.set_state(blend=True, blend_func=("one", "one_minus_src_alpha"))
        else:
            gloo.set_state(blend=False, depth_test=False)
        self.blit["u_texture"] = texture
        self.blit.draw("triangle_strip")

    def draw_splats(self, view: np.ndarray, intr: Intrinsics, near: float, width: int, height: int,
                    limit: int, single_below: float) -> None:
        """Draw the uploaded order as points (see splat.geom.glsl), `limit` the largest point size.

        The viewport is the framebuffer grown by half the largest point size on each side, so
        that points centred just outside it still draw their inside part. Large frames are drawn
        in bands small enough for the geometry shader's `MAX_TILES` tiles (a band is at most
        8 x 8 largest points: 2040 x 2040 pixels on llvmpipe).
        """
        margin = limit // 2 + 1
        band = min(int(math.isqrt(MAX_TILES)) * limit, 8192)
        p = self.splat
        p["u_view"] = np.ascontiguousarray(view.T, dtype=np.float32)
        p["u_focal"] = (intr.fx, intr.fy)
        p["u_principal"] = (intr.cx, intr.cy)
        p["u_tan_fov"] = intr.tan_half_fov
        p["u_near"] = near
        p["u_fb_height"] = float(height)
        p["u_max_point"] = float(limit)
        p["u_single_below"] = float(single_below)
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

    # ----------------------------------------------------------------------------- overlays

    def forget_overlay(self, name: str) -> None:
        """Drop the uploaded geometry of overlay `name` (made again from `overlay_geometry` when next drawn)."""
        self._overlay_cache.pop(name, None)

    def draw_overlay(self, name: str, mvp: np.ndarray,
                     geometry: Callable[[], tuple[np.ndarray, np.ndarray] | None]) -> None:
        """Overlay `name` (its `geometry`, uploaded once) as lines, or points for "points"."""
        if name not in self._overlay_cache:
            data = geometry()
            if data is None:
                return
            self._overlay_cache[name] = (gloo.VertexBuffer(np.ascontiguousarray(data[0], np.float32)),
                                         gloo.VertexBuffer(np.ascontiguousarray(data[1], np.float32)))  # fmt: skip
        positions, colors = self._overlay_cache[name]
        self.lines["u_mvp"] = np.ascontiguousarray(mvp.T, dtype=np.float32)
        self.lines["u_point_size"] = 2.0
        self.lines["a_position"] = positions
        self.lines["a_color"] = colors
        self.lines.draw("points" if name == "points" else "lines")

    def draw_edit_overlays(self, overlays: dict[str, EditOverlay], mvp: np.ndarray,
                           logical_size: tuple[int, int]) -> None:
        """The edit tools' overlays (`SplatCanvas.set_overlay`); `mvp` maps world coordinates to the view,
        `logical_size` is the view's size in the logical pixels of screen overlays."""
        world = np.ascontiguousarray(mvp.T, dtype=np.float32)
        for overlay in overlays.values():
            if overlay.screen:
                self.lines["u_mvp"] = np.eye(4, dtype=np.float32)
                self.lines["a_position"] = gloo.VertexBuffer(screen_to_ndc(overlay.positions, *logical_size))
            else:
                if overlay.vbo is None:
                    overlay.vbo = gloo.VertexBuffer(np.ascontiguousarray(overlay.positions, dtype=np.float32))
                self.lines["u_mvp"] = world
                self.lines["a_position"] = overlay.vbo
            colors = overlay.colors
            if isinstance(colors, np.ndarray) and colors.ndim == 2:
                self.lines["a_color"] = gloo.VertexBuffer(np.ascontiguousarray(colors, dtype=np.float32))
            else:
                self.lines["a_color"] = tuple(float(c) for c in colors)
            self.lines["u_point_size"] = overlay.size
            if overlay.indices is not None:
                if overlay.ibo is None:
                    overlay.ibo = gloo.IndexBuffer(np.ascontiguousarray(overlay.indices, dtype=np.uint32))
                self.lines.draw("points", overlay.ibo)
            else:
                self.lines.draw(overlay.mode)
