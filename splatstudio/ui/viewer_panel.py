"""The project page's 3D view (`ViewerPanel`): a placeholder until a model is shown, then the embedded
`render.viewer.SplatCanvas` (in a native child window, `embed.native_child`), created once when the page
opens. Models are read and prepared in a worker (`prepare_model`); while one loads, only the newest asked
for waits (training previews can come faster than they load). What a loaded model means for the page (the
clean-up, the hand edits, the photos to compare with) is the page's, through `sig_model_loaded`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QStackedWidget, QWidget

from splatstudio.ui.embed import native_child
from splatstudio.ui.workers import Workers

PLACEHOLDER = "The 3D view appears here once the Gaussians are trained."


@dataclass(frozen=True)
class ModelRequest:
    """A model to show: its file, whether the camera goes back to the home view, the photos' cameras
    (``cameras.json``), and the project folder it was asked for (the page may have moved on since)."""

    path: Path
    reset_camera: bool
    cameras: Path | None
    folder: str | None


class ViewerPanel(QStackedWidget):
    """The placeholder or the viewer; ``viewer`` is None until `ensure_viewer` made it (or could not)."""

    sig_model_loaded = Signal(object, object, object)
    """A model asked for with `show_model` is in the viewer: the `ModelRequest`, the scene, the training cameras."""
    sig_load_failed = Signal(str)
    """A model could not be read or prepared: the reason."""

    def __init__(self, workers: Workers, parent: QWidget | None = None):
        super().__init__(parent)
        self.workers = workers
        self.placeholder = QLabel(PLACEHOLDER)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setEnabled(False)
        self.addWidget(self.placeholder)
        self.viewer: Any = None
        self.holder: QWidget | None = None  # the viewer in a native child window
        self.loading = False
        self.pending: ModelRequest | None = None

    def ensure_viewer(self) -> bool:
        """Embed the viewer once. Creating it (importing vispy, an OpenGL context, compiling shaders)
        takes a few hundred milliseconds of the GUI thread, so it happens when the page opens."""
        if self.viewer is not None:
            return True
        try:
            from splatstudio.render.viewer import SplatCanvas

            self.viewer = SplatCanvas(size=(640, 480))
            self.holder = native_child(self.viewer.native)
            self.addWidget(self.holder)
        except Exception as exc:  # no render package, no OpenGL...: the report is still there
            self.placeholder.setText(f"3D view unavailable: {exc}")
            return False
        return True

    def show_placeholder(self) -> None:
        self.setCurrentWidget(self.placeholder)

    def show_model(self, request: ModelRequest) -> None:
        """Show the model of `request` in the viewer, read and prepared in a worker (only the newest of those
        asked for while one loads)."""
        if not self.ensure_viewer():
            return
        self.setCurrentWidget(self.holder)
        if self.loading:
            self.pending = request
            return
        self.loading = True
        self.workers.submit(lambda: prepare_model(request.path, request.cameras),
                            lambda loaded: self._on_model_ready(request, loaded),
                            lambda message, _t: self._on_model_ready(request, None, message))

    def _on_model_ready(self, request: ModelRequest, loaded: tuple[Any, list] | None, error: str = "") -> None:
        self.loading = False
        if error:
            self.sig_load_failed.emit(error)
        elif self.viewer is not None and loaded is not None:
            self.sig_model_loaded.emit(request, *loaded)
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self.show_model(pending)


def prepare_model(path: Path, cameras: Path | None) -> tuple[object, list]:
    """Worker: read a splat file and prepare it for the viewer (sorting keys, colours), with the training
    cameras of ``cameras.json`` when it exists (none when it cannot be read: the model still shows)."""
    from splatstudio.io.formats import load_splats
    from splatstudio.render.camera import CameraSpecError, load_training_cameras
    from splatstudio.render.scene import prepare_scene

    scene = prepare_scene(load_splats(path))
    try:
        training = load_training_cameras(cameras) if cameras is not None and cameras.is_file() else []
    except (CameraSpecError, OSError, ValueError):
        training = []
    return scene, training
