"""Where the view is and how the person moves it (`Navigation`, mixed into `viewer.SplatCanvas`).

The camera: an orbit controller (`camera.OrbitCamera`) or an exact pose (a training camera's, kept until the
person moves), the viewport's intrinsics, the home view computed on load, the training cameras to step
through, and the place in words (`sig_place_changed`). A move by the person (`_interacted`) draws the moving
budget until the camera settles (`SETTLE_MS` in the canvas); a placement by the program draws the full frame.

Mouse: left drag orbits (`orbit_button`), right / middle / shift+left drag pans, wheel zooms. Keys: W A S D
Q E fly, R resets the view, arrows and PageUp/PageDown step through the training cameras, F12 saves a
screenshot, G grid, X axes, C frustums, P sparse points, 0-3 SH degree. The edit tools, while installed as
``interaction``, are offered every mouse and key event first. vispy connects the ``on_*`` methods to the
canvas' events by name.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from vispy import app

from splatstudio.model.geometry import Intrinsics
from splatstudio.render.camera import OrbitCamera, Pose, TrainingCamera, average_up, home_view

ORBIT_RADIANS_PER_PIXEL = math.radians(0.2)
"""How far a left-drag turns the view (a drag across a 640-pixel view: 128 degrees). See NOTES."""

FLY_DIRECTIONS = {"W": (1, 0, 0), "S": (-1, 0, 0), "D": (0, 1, 0), "A": (0, -1, 0), "E": (0, 0, 1), "Q": (0, 0, -1)}
"""The fly keys: (forward, right, up) steps."""

OVERLAY_KEYS = {"G": "grid", "X": "axes", "C": "frustums", "P": "points"}


class Navigation:
    """The camera state and the mouse and key handlers of `SplatCanvas`. The canvas provides ``_scene``,
    ``_settle`` (the settle timer), ``_overlay_changed``, ``overlays``, ``screenshot``, ``set_sh_degree``
    and vispy's ``physical_size``, ``size`` and ``update``."""

    def _init_navigation(self) -> None:
        self.orbit = OrbitCamera()
        self._home = OrbitCamera()
        self._pose: Pose = self.orbit.pose()
        self._camera_intrinsics: Intrinsics | None = None
        self._moving = False
        self._training: list[TrainingCamera] = []
        self._training_index = -1
        self._place = ""  # where the view is, in words (sig_place_changed)
        self._fly_keys: set[str] = set()
        self._last_mouse: tuple[float, float] | None = None
        self.interaction: Any = None
        """The edit tools (``render/edit_tools.py``) while editing: offered every mouse and key event first."""
        self.orbit_button = 1
        """The mouse button whose drag orbits (the others pan); the right one while an edit tool has the left."""
        self._fly_timer = app.Timer(1 / 30, connect=self._on_fly_tick, start=False)

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
        return Intrinsics.from_fov_y(width, height, self.orbit.fov_y_deg)

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

    def set_training_cameras(self, cameras: Sequence[TrainingCamera], auto_orient: bool = True) -> None:
        """Cameras to step through and draw as frustums; `auto_orient` sets the world up from them."""
        self._training = list(cameras)
        self._training_index = -1
        self._overlay_changed("frustums")
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

    def _view(self) -> np.ndarray:
        return self._pose.view_matrix()

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

    def on_key_press(self, event) -> None:
        if self.interaction is not None and self.interaction.key_press(event):
            return
        name = getattr(event.key, "name", "") if event.key is not None else ""
        if name in FLY_DIRECTIONS:
            self._fly_keys.add(name)
            self._on_fly_tick()
            self._fly_timer.start()
        elif name == "R":
            self.reset_view()
        elif name in ("Right", "Down", "PageDown") and self.training_cameras:
            self.next_camera()
        elif name in ("Left", "Up", "PageUp") and self.training_cameras:
            self.previous_camera()
        elif name == "F12":
            self.screenshot(self.screenshot_dir / time.strftime("splatstudio-%Y%m%d-%H%M%S.png"))
        elif name in OVERLAY_KEYS:
            attr = OVERLAY_KEYS[name]
            setattr(self.overlays, attr, not getattr(self.overlays, attr))
            self.update()
        elif name in ("0", "1", "2", "3"):
            self.set_sh_degree(int(name))

    def on_key_release(self, event) -> None:
        name = getattr(event.key, "name", "") if event.key is not None else ""
        self._fly_keys.discard(name)
        if not self._fly_keys:
            self._fly_timer.stop()

    def _on_fly_tick(self, event=None) -> None:
        if not self._fly_keys:
            return
        step = 0.02 * (self.scene.radius if self.scene is not None else 1.0)
        move = np.sum([FLY_DIRECTIONS[k] for k in self._fly_keys], axis=0) * step
        self.orbit.fly(forward=move[0], right=move[1], up=move[2])
        self._interacted()
