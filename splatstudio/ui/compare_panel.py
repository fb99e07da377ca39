"""Compare with the photos, beside the 3D view: the photo whose viewpoint the view is at (held-out photos
first and named as such), and, once measured, the trainer's own render of it, the two blended (a slider
from the photo to the render) and their difference, with that view's PSNR and SSIM and every measured view
listed worst first (a click goes there).

Measuring runs the bundled trainer's ``render.py`` (:func:`pipeline.train.measure_command`), so the figures
are the ones training reports, computed by the same code on the same photos."""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops
from PySide6.QtCore import QProcess, Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from splatstudio.pipeline.train import ViewMeasure, read_measurements
from splatstudio.ui.workers import Workers, pixmap_from_rgb, thumbnail_rgb

PHOTO, RENDER, BLENDED, DIFFERENCE = "photo", "render", "blended", "difference"
DIFFERENCE_GAIN = 4  # differences are faint: shown four times as bright
BLEND_DEFAULT = 50  # percent of the render in the blend


def photo_file(folder: Path | str, name: str) -> Path | None:
    """A training camera's photo (``img_name`` is the file name without its extension): the undistorted one
    the trainer compared with, else the imported one; None when the project has neither."""
    for images in (Path(folder) / "dataset" / "images", Path(folder) / "images"):
        for path in sorted(images.glob(f"{glob.escape(name)}.*")):
            if path.is_file():
                return path
    return None


def difference_rgb(render: Path, photo: Path, size: int) -> tuple[int, int, bytes] | None:
    """Worker: |render - photo| brightened DIFFERENCE_GAIN times, fitted in ``size``; None if unreadable."""
    try:
        with Image.open(render) as a, Image.open(photo) as b:
            diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB").resize(a.size))
    except (OSError, ValueError):
        return None
    diff = diff.point(lambda v: min(255, v * DIFFERENCE_GAIN))
    diff.thumbnail((size, size))
    return diff.width, diff.height, diff.tobytes()


def blended_rgb(render: Path, photo: Path, size: int, mix: float) -> tuple[int, int, bytes] | None:
    """Worker: the photo and the render mixed, ``mix`` of the render (0: the photo, 1: the render), at the
    render's size, fitted in ``size``; None if unreadable."""
    try:
        with Image.open(render) as a, Image.open(photo) as b:
            render_rgb = a.convert("RGB")
            blend = Image.blend(b.convert("RGB").resize(render_rgb.size), render_rgb, min(max(mix, 0.0), 1.0))
    except (OSError, ValueError):
        return None
    blend.thumbnail((size, size))
    return blend.width, blend.height, blend.tobytes()


class ScaledPhoto(QLabel):
    """A picture drawn as large as the label allows, keeping its shape; the label's size never follows the
    picture's (it shares the row with the 3D view equally)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.photo = QPixmap()
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setWordWrap(True)
        self.setMinimumSize(120, 90)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)

    def set_photo(self, photo: QPixmap) -> None:
        self.photo = photo
        self._fit()

    def clear(self) -> None:
        self.photo = QPixmap()
        super().clear()

    def setText(self, text: str) -> None:
        self.photo = QPixmap()
        super().setText(text)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if not self.photo.isNull():
            self.setPixmap(self.photo.scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                             Qt.TransformationMode.SmoothTransformation))


class ComparePanel(QWidget):
    """The photo side of the comparison. The project page gives it the viewer (:attr:`viewer`) and the
    project (:meth:`set_project`) and calls :meth:`update_view` when the view moves."""

    sig_message = Signal(str)

    def __init__(self, workers: Workers, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("comparePanel")
        self.workers = workers
        self.viewer: Any = None
        self.folder: str | None = None
        self.held_out = 0  # the first this many training cameras were held out (test cameras come first)
        self.model_dir: Path | None = None  # the trained model to measure (None: it cannot be measured now)
        self.command: list[str] = []
        self.measures: dict[str, ViewMeasure] = {}
        self.process: QProcess | None = None
        self._done = 0  # views measured so far by the running measurement
        self.photo_view = ScaledPhoto()
        self.photo_view.setObjectName("comparePhoto")
        self.caption = QLabel(wordWrap=True)
        self.caption.setObjectName("compareCaption")
        self.mode = QComboBox()
        self.mode.setObjectName("compareMode")
        self.mode.addItem("The photo", PHOTO)
        self.mode.addItem("The trainer's render", RENDER)
        self.mode.addItem("Photo and render blended", BLENDED)
        self.mode.addItem(f"Difference (×{DIFFERENCE_GAIN})", DIFFERENCE)
        self.mode.setToolTip("The trainer's render, the blend and the difference come from measuring the photos")
        self.mode.currentIndexChanged.connect(lambda _i: self.update_view())
        self.blend = QSlider(Qt.Orientation.Horizontal)
        self.blend.setObjectName("compareBlend")
        self.blend.setRange(0, 100)
        self.blend.setValue(BLEND_DEFAULT)
        self.blend.setToolTip("How much of the render shows through the photo: left the photo, right the render")
        self.blend.valueChanged.connect(lambda _v: self.update_view())
        self.blend_label = QLabel()
        self.blend_label.setObjectName("compareBlendLabel")
        self.measure_button = QPushButton("Measure each photo")
        self.measure_button.setObjectName("measureButton")
        self.measure_button.setToolTip("Render each held-out photo's view with the trainer and compare it with "
                                       "the photo (PSNR, SSIM), as training measured them")
        self.measure_button.clicked.connect(self.measure)
        self.views = QListWidget()
        self.views.setObjectName("measuredViews")
        self.views.setMaximumHeight(110)
        self.views.itemActivated.connect(self._on_view_chosen)
        self.views.itemClicked.connect(self._on_view_chosen)
        self.views.hide()
        top = QHBoxLayout()
        top.addWidget(self.mode, 1)
        top.addWidget(self.measure_button)
        self.blend_row = QWidget()
        blend_row = QHBoxLayout(self.blend_row)
        blend_row.setContentsMargins(0, 0, 0, 0)
        blend_row.addWidget(QLabel("Photo"))
        blend_row.addWidget(self.blend, 1)
        blend_row.addWidget(QLabel("Render"))
        blend_row.addWidget(self.blend_label)
        self.blend_row.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.blend_row)
        layout.addWidget(self.photo_view, 1)
        layout.addWidget(self.caption)
        layout.addWidget(self.views)

    # ------------------------------------------------------------------ the project
    def set_project(self, folder: str | None, held_out: int, model_dir: Path | None, command: list[str]) -> None:
        """The shown project: how many photos were held out, and the model and command that measure it
        (``model_dir`` None: not now, e.g. while a re-run recomputes the result)."""
        changed = folder != self.folder or model_dir != self.model_dir
        self.folder, self.held_out, self.model_dir, self.command = folder, held_out, model_dir, command
        self.measure_button.setEnabled(model_dir is not None and self.process is None)
        if changed:
            self.measures = {}
            self.views.clear()
            self.views.hide()
            if model_dir is not None:
                self.workers.submit(lambda: read_measurements(model_dir),
                                    lambda found: self._show_measures(folder, found))

    # ------------------------------------------------------------------ measuring
    def measure(self) -> None:
        if self.model_dir is None or self.process is not None or not self.command:
            return
        process = QProcess(self)
        process.setProgram(self.command[0])
        process.setArguments(self.command[1:])
        process.setStandardErrorFile(QProcess.nullDevice())  # its log; the JSON events come on stdout
        folder, model_dir = self.folder, self.model_dir
        process.finished.connect(lambda code, _status: self._on_measured(process, folder, model_dir, code))
        process.readyReadStandardOutput.connect(lambda: self._on_output(process))
        self.process = process
        self.measure_button.setEnabled(False)
        self.measure_button.setText("Measuring…")
        process.start()

    def _on_output(self, process: QProcess) -> None:
        """render.py's progress: one JSON event a line, a ``view`` event per photo measured."""
        while process.canReadLine():
            line = bytes(process.readLine()).decode("utf-8", "replace").strip()
            try:
                event = json.loads(line) if line.startswith("{") else None
            except ValueError:
                event = None
            if isinstance(event, dict) and event.get("event") == "view":
                self._done += 1
                self.measure_button.setText(f"Measuring… {self._done}")

    def _on_measured(self, process: QProcess, folder: str | None, model_dir: Path, code: int) -> None:
        self.process, self._done = None, 0
        self.measure_button.setText("Measure each photo")
        self.measure_button.setEnabled(self.model_dir is not None)
        process.deleteLater()
        if code != 0:
            self.sig_message.emit(f"measuring the photos failed (exit status {code}); see {model_dir}")
            return
        self.workers.submit(lambda: read_measurements(model_dir), lambda found: self._show_measures(folder, found))

    def _show_measures(self, folder: str | None, found: list[ViewMeasure]) -> None:
        if folder != self.folder:
            return
        self.measures = {view.name: view for view in found}
        self.views.clear()
        for view in found:  # worst first
            item = QListWidgetItem(f"{view.psnr:.2f} dB  SSIM {view.ssim:.3f}  {view.name}"
                                   + ("  (held out)" if view.held_out else ""))
            item.setData(Qt.ItemDataRole.UserRole, view.name)
            self.views.addItem(item)
        self.views.setVisible(bool(found))
        self.update_view()

    def _on_view_chosen(self, item: QListWidgetItem) -> None:
        name = item.data(Qt.ItemDataRole.UserRole)
        cameras = self.viewer.training_cameras if self.viewer is not None else []
        index = next((i for i, camera in enumerate(cameras) if camera.name == name), None)
        if index is not None:
            self.viewer.jump_to_camera(index)  # the page hears the place change and updates this panel

    # ------------------------------------------------------------------ the picture
    def blend_fraction(self) -> float:
        """How much of the render the blended picture shows (0..1)."""
        return self.blend.value() / 100.0

    def update_view(self) -> None:
        self.blend_row.setVisible(self.mode.currentData() == BLENDED)
        self.blend_label.setText(f"{self.blend.value()} %")
        viewer = self.viewer
        index = viewer.photo_index if viewer is not None else -1
        if index < 0:
            self.photo_view.clear()
            self.caption.setText("Step to a photo's viewpoint with ← → to compare it with the render.")
            return
        cameras = viewer.training_cameras
        camera = cameras[index]
        held = index < self.held_out
        measured = self.measures.get(camera.name)
        figures = f" — {measured.psnr:.2f} dB, SSIM {measured.ssim:.3f}" if measured else ""
        if measured and measured.gain is not None:
            figures += f" at the photo's recorded exposure (render x{measured.gain:.2f})"
        self.caption.setText(
            f"Photo {index + 1} of {len(cameras)}: {camera.name}{figures} — "
            + ("<b>held out</b>: training never saw it, so this pair shows how the model does from a new viewpoint"
               if held else "used in training"))
        mode, folder, name, mix = self.mode.currentData(), self.folder, camera.name, self.blend_fraction()
        size = max(self.photo_view.width(), self.photo_view.height(), 320)
        if mode != PHOTO and measured is None:
            self.photo_view.setText("Measure each photo to see the trainer's render of this view"
                                    + {DIFFERENCE: " and its difference from the photo",
                                       BLENDED: " blended with the photo"}.get(mode, "") + ".")
            return

        def read() -> tuple[int, int, bytes] | None:
            if mode == RENDER:
                return thumbnail_rgb(measured.render, size)
            if mode == DIFFERENCE:
                return difference_rgb(measured.render, measured.photo, size)
            if mode == BLENDED:
                return blended_rgb(measured.render, measured.photo, size, mix)
            path = photo_file(folder, name)
            return thumbnail_rgb(path, size) if path is not None else None

        self.workers.submit(read, lambda picture: self._show_picture(folder, index, mode, name, picture, mix))

    def _show_picture(self, folder: str | None, index: int, mode: str, name: str, picture,
                      mix: float | None = None) -> None:
        if folder != self.folder or self.viewer is None or self.viewer.photo_index != index \
                or mode != self.mode.currentData() or (mode == BLENDED and mix != self.blend_fraction()):
            return  # another project, photo, mode or blend by now
        if picture is None:
            self.photo_view.setText(f"The photo {name} is not in this project any more." if mode == PHOTO else
                                    f"The measured images of {name} cannot be read; measure again.")
            return
        self.photo_view.set_photo(pixmap_from_rgb(picture))
