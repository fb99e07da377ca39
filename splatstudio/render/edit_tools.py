"""The viewer's edit mode (issue 23, items 2 and 3): selection tools and point picks on a `SplatCanvas`,
installed as its ``interaction`` (the canvas offers it every mouse and key event first).

Tools: rectangle (M), lasso (L), brush (B; [ and ] resize it), navigate (V). With a tool, the left button
draws its shape (Shift adds to the selection, Ctrl takes away from it, else the shape replaces it), the right
button orbits and the middle one pans, the wheel zooms. Keys: Delete/Backspace deletes the selection, H hides
it, I isolates it (hides the rest), U shows all, Ctrl+A selects all, Ctrl+D or Ctrl+Shift+A none, Ctrl+I
inverts, Ctrl+Z undoes, Ctrl+Shift+Z and Ctrl+Y redo, Esc drops the shape or pick under way.

A pick (for the orientation and scale tools) takes the splat that contributes most to the clicked pixel (its
alpha times the transmittance in front of it: opacity and depth both count, as the picture shows it) and
gives its centre; a click on empty space picks nothing and says so. Deleted and hidden splats are never
picked or selected.

The tools compute masks (``render/selection.py``) and hand them to a listener (the edit panel, or a test):
``tool_selected(mask, mode, label)``, ``point_picked(position_or_None)`` and ``action(name)``. Qt-free apart
from vispy's events.
"""

from __future__ import annotations

import math
import time
from typing import Any, Protocol

import numpy as np

from splatstudio.render.selection import Projected, in_brush, in_polygon, in_rectangle, project_centres

TOOLS = ("navigate", "rectangle", "lasso", "brush")
TOOL_KEYS = {"V": "navigate", "M": "rectangle", "L": "lasso", "B": "brush"}
SHAPE_COLOR = (1.0, 0.85, 0.1, 1.0)
PICK_COLOR = (0.1, 0.9, 1.0, 1.0)
SELECTED_POINT_COLOR = (1.0, 0.78, 0.0, 1.0)
CLICK_SLOP = 4.0
"""A press and release this many pixels apart still count as a click (a pick), not a drag."""
MIN_BRUSH, MAX_BRUSH = 2.0, 300.0


class Listener(Protocol):
    def tool_selected(self, mask: np.ndarray, mode: str, label: str) -> None: ...
    def point_picked(self, position: np.ndarray | None) -> None: ...
    def action(self, name: str) -> bool: ...


def _modifiers(event: Any) -> set[str]:
    return {getattr(k, "name", str(k)) for k in (getattr(event, "modifiers", None) or ())}


def circle(center: tuple[float, float], radius: float, segments: int = 40) -> np.ndarray:
    """(segments, 2) points of a circle (a line loop)."""
    angles = np.linspace(0.0, 2.0 * math.pi, segments, endpoint=False)
    return np.column_stack([center[0] + radius * np.cos(angles), center[1] + radius * np.sin(angles)])


class EditTools:
    """Selection tools and point picks on ``canvas`` for ``listener`` (see the module's docstring)."""

    def __init__(self, canvas: Any, listener: Listener, tool: str = "rectangle", brush_radius: float = 25.0):
        self.canvas = canvas
        self.listener = listener
        self.tool = "navigate"
        self.mode = "replace"
        """The selection mode without Shift or Ctrl held (the panel's choice)."""
        self.brush_radius = float(brush_radius)
        self.picking = 0
        """Points still to pick (0: the tools select)."""
        self._shape: list[tuple[float, float]] = []
        self._shape_mode = "replace"
        self._press: tuple[float, float] | None = None
        self._hover: tuple[float, float] | None = None
        self.last_timing: dict[str, float] = {}
        """Milliseconds of the last selection: ``project`` (the centres), ``shape`` (the test), ``total``."""
        self.set_tool(tool)

    # ------------------------------------------------------------------------------ state
    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"a tool is one of {', '.join(TOOLS)}, got {tool!r}")
        self.tool = tool
        self._shape.clear()
        self._press = None
        self.canvas.orbit_button = 1 if tool == "navigate" and not self.picking else 2
        self._draw_shape()
        self._draw_brush_cursor()

    def set_brush_radius(self, radius: float) -> None:
        self.brush_radius = float(min(max(radius, MIN_BRUSH), MAX_BRUSH))
        self._draw_brush_cursor()

    def start_pick(self, count: int) -> None:
        """Pick ``count`` points with the next left clicks (each reported by ``point_picked``)."""
        self.picking = int(count)
        self._shape.clear()
        self._press = None
        self.canvas.orbit_button = 2 if self.picking else (1 if self.tool == "navigate" else 2)
        self._draw_shape()

    def stop_pick(self) -> None:
        self.start_pick(0)

    def uninstall(self) -> None:
        """Leave edit mode: the canvas navigates with the left button again, the tools' overlays go."""
        self.picking = 0
        self._shape.clear()
        self.canvas.orbit_button = 1
        for name in ("edit-shape", "brush-cursor"):
            self.canvas.set_overlay(name, None)
        if self.canvas.interaction is self:
            self.canvas.interaction = None

    # ------------------------------------------------------------------------------ mouse
    def _owns_left(self) -> bool:
        return bool(self.picking) or self.tool != "navigate"

    def mouse_press(self, event: Any) -> bool:
        if getattr(event, "button", None) != 1 or not self._owns_left():
            return False
        x, y = (float(v) for v in event.pos[:2])
        self._press = (x, y)
        if self.picking:
            return True
        mods = _modifiers(event)
        self._shape_mode = "add" if "Shift" in mods else ("subtract" if "Control" in mods else self.mode)
        self._shape = [(x, y)]
        self._draw_shape()
        return True

    def mouse_move(self, event: Any) -> bool:
        x, y = (float(v) for v in event.pos[:2])
        self._hover = (x, y)
        if self.tool == "brush" and not self.picking:
            self._draw_brush_cursor()
        if self._press is None or not self._shape:
            return self._press is not None  # a pick's press: the drag is not a camera move
        if self.tool == "rectangle":
            self._shape = [self._shape[0], (x, y)]
        elif self.tool == "lasso":
            last = self._shape[-1]
            if (x - last[0]) ** 2 + (y - last[1]) ** 2 >= 4.0:  # a point every 2 pixels is plenty
                self._shape.append((x, y))
        elif self.tool == "brush":
            last = self._shape[-1]
            if (x - last[0]) ** 2 + (y - last[1]) ** 2 >= (self.brush_radius / 4.0) ** 2:
                self._shape.append((x, y))
        self._draw_shape()
        return True

    def mouse_release(self, event: Any) -> bool:
        if getattr(event, "button", None) != 1 or self._press is None:
            return False
        x, y = (float(v) for v in event.pos[:2])
        press, self._press = self._press, None
        if self.picking:
            if math.hypot(x - press[0], y - press[1]) <= CLICK_SLOP:
                self._pick(x, y)
            return True
        if self.tool == "rectangle":
            self._shape = [self._shape[0], (x, y)] if self._shape else []
        elif self._shape and self._shape[-1] != (x, y):
            self._shape.append((x, y))
        shape, self._shape = self._shape, []
        self._draw_shape()
        self.select_shape(self.tool, shape, self._shape_mode)
        return True

    # ------------------------------------------------------------------------------- keys
    def key_press(self, event: Any) -> bool:
        name = getattr(event.key, "name", "") if getattr(event, "key", None) is not None else ""
        mods = _modifiers(event)
        ctrl, shift = "Control" in mods, "Shift" in mods
        if name == "Escape":
            if self.picking or self._shape:
                self._shape, self._press = [], None
                self._draw_shape()
                if self.picking:
                    self.stop_pick()
                    self.listener.action("cancel_pick")
                return True
            return False
        if ctrl:
            action = {"Z": "redo" if shift else "undo", "Y": "redo", "A": "select_none" if shift else "select_all",
                      "D": "select_none", "I": "invert"}.get(name.upper())
            return bool(action) and self.listener.action(action)
        if name in ("Delete", "Backspace"):
            return self.listener.action("delete")
        upper = name.upper() if len(name) == 1 else name
        if upper in TOOL_KEYS:
            self.set_tool(TOOL_KEYS[upper])
            return self.listener.action("tool:" + self.tool) or True
        if upper in ("H", "I", "U"):
            return self.listener.action({"H": "hide", "I": "isolate", "U": "unhide"}[upper])
        if name in ("[", "]"):
            self.set_brush_radius(self.brush_radius * (0.8 if name == "[" else 1.25))
            self.listener.action("brush_radius")
            return True
        return False

    # ---------------------------------------------------------------------------- results
    def projected(self) -> Projected | None:
        """The scene's centres in the canvas' physical pixels for its current view."""
        scene = self.canvas.scene
        if scene is None:
            return None
        return project_centres(scene.positions, self.canvas.pose.view_matrix(), self.canvas.intrinsics(),
                               self.canvas.near)

    def shape_mask(self, tool: str, shape: list[tuple[float, float]] | np.ndarray) -> np.ndarray | None:
        """The splats whose centres ``shape`` (logical pixels: two corners, a lasso's points, a brush's path)
        takes for ``tool``; None without a scene or a shape."""
        start = time.perf_counter()
        projected = self.projected()
        if projected is None or len(shape) == 0:
            return None
        projected_at = time.perf_counter()
        scale = float(self.canvas.pixel_scale)
        pts = np.asarray(shape, dtype=np.float64).reshape(-1, 2) * scale
        if tool == "rectangle":
            if len(pts) < 2:
                return None
            mask = in_rectangle(projected, pts[0, 0], pts[0, 1], pts[-1, 0], pts[-1, 1])
        elif tool == "lasso":
            if len(pts) < 3:
                return None
            mask = in_polygon(projected, pts)
        elif tool == "brush":
            mask = in_brush(projected, pts, self.brush_radius * scale)
        else:
            raise ValueError(f"{tool!r} selects nothing")
        done = time.perf_counter()
        self.last_timing = {"project": (projected_at - start) * 1e3, "shape": (done - projected_at) * 1e3,
                            "total": (done - start) * 1e3}
        return mask

    def select_shape(self, tool: str, shape, mode: str) -> None:
        mask = self.shape_mask(tool, shape)
        if mask is not None:
            self.listener.tool_selected(mask, mode, {"rectangle": "rectangle selection", "lasso": "lasso selection",
                                                     "brush": "brush selection"}[tool])

    def _pick(self, x: float, y: float) -> None:
        found = self.canvas.pick(x, y)
        if found is None:
            self.listener.point_picked(None)
            return
        self.picking = max(self.picking - 1, 0)
        if not self.picking:
            self.canvas.orbit_button = 1 if self.tool == "navigate" else 2
        self.listener.point_picked(np.asarray(found.position, dtype=np.float64))

    # ---------------------------------------------------------------------------- overlays
    def _draw_shape(self) -> None:
        shape = self._shape
        if not shape:
            self.canvas.set_overlay("edit-shape", None)
            return
        if self.tool == "rectangle" and len(shape) >= 2:
            (x0, y0), (x1, y1) = shape[0], shape[-1]
            self.canvas.set_overlay("edit-shape", np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), SHAPE_COLOR,
                                    mode="line_loop", screen=True)
        elif self.tool in ("lasso", "brush") and len(shape) >= 2:
            self.canvas.set_overlay("edit-shape", np.asarray(shape), SHAPE_COLOR,
                                    mode="line_loop" if self.tool == "lasso" else "line_strip", screen=True)
        else:
            self.canvas.set_overlay("edit-shape", None)

    def _draw_brush_cursor(self) -> None:
        if self.tool != "brush" or self._hover is None or self.picking:
            self.canvas.set_overlay("brush-cursor", None)
            return
        self.canvas.set_overlay("brush-cursor", circle(self._hover, self.brush_radius), SHAPE_COLOR,
                                mode="line_loop", screen=True)
