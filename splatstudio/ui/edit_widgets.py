"""The tabs of the edit panel (`edit_panel.EditPanel`) and their widgets: selecting by value over histograms
(`ValuesTab`, `Histogram`), by a box or sphere in the scene (`RegionTab`), and orienting and scaling the
scene (`OrientTab`, `ScaleDialog`).

A tab owns its widgets and turns their values into a mask of the model's splats (in the model's frame: the
edited frame's values are converted through the session's transform); its buttons are the panel's (they
carry the panel's action names), and `sig_changed` tells the panel to count again.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QRectF, Signal
from PySide6.QtGui import QPainter, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from splatstudio.model.edits import EditSession
from splatstudio.model.transform import UNITS
from splatstudio.render.selection import SplatValues, by_values, histogram, in_box, in_sphere

ButtonFactory = Callable[..., QPushButton]
"""The panel's ``_button(text, action, tip)``: a button that runs the panel's action `action`."""


class Histogram(QWidget):
    """Bars of a histogram (counts on a square-root scale) with the chosen range highlighted."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumHeight(36)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.counts = np.zeros(0)
        self.edges = np.zeros(1)
        self.log = False
        self.low, self.high = -math.inf, math.inf

    def set_data(self, counts: np.ndarray, edges: np.ndarray, log: bool) -> None:
        self.counts, self.edges, self.log = np.asarray(counts), np.asarray(edges, dtype=np.float64), log
        self.update()

    def set_range(self, low: float, high: float) -> None:
        self.low, self.high = low, high
        self.update()

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        palette = self.palette()
        painter.fillRect(self.rect(), palette.color(QPalette.ColorRole.Base))
        if not len(self.counts) or self.counts.max() <= 0:
            painter.end()
            return
        width, height = self.width(), self.height() - 2
        heights = np.sqrt(self.counts / self.counts.max())
        bar = width / len(self.counts)
        chosen = palette.color(QPalette.ColorRole.Highlight)
        other = palette.color(QPalette.ColorRole.Mid)
        for i, h in enumerate(heights):
            middle = 0.5 * (self.edges[i] + self.edges[i + 1])
            painter.fillRect(QRectF(i * bar, height - h * height + 1, max(bar - 1, 1), h * height),
                             chosen if self.low <= middle <= self.high else other)
        painter.end()


class ScaleDialog(QDialog):
    """The distance between the two picked points, as the person knows it, and its unit."""

    def __init__(self, now: float, unit: str | None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("scaleDialog")
        self.setWindowTitle("Set the scale")
        self.distance = QDoubleSpinBox(minimum=0.0, maximum=1e9, decimals=4, value=1.0)
        self.distance.setObjectName("scaleDistance")
        self.unit = QComboBox()
        for name in UNITS:
            self.unit.addItem(name, name)
        self.unit.setCurrentIndex(max(0, self.unit.findData(unit or "m")))
        row = QHBoxLayout()
        row.addWidget(self.distance, 1)
        row.addWidget(self.unit)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"The two points are {now:.6g} units apart now. How far apart are they really?"))
        layout.addLayout(row)
        layout.addWidget(buttons)


class _Tab(QWidget):
    sig_changed = Signal()
    """A value that decides the tab's mask changed (the panel counts again, a moment later)."""

    def _spin(self, low: float, high: float, value: float, decimals: int = 3, step: float = 0.05) -> QDoubleSpinBox:
        box = QDoubleSpinBox(minimum=low, maximum=high, decimals=decimals, singleStep=step, value=value)
        box.valueChanged.connect(self._changed)
        return box

    def _changed(self, *_args: Any) -> None:
        self.sig_changed.emit()


class ValuesTab(_Tab):
    """"By value": opacity and size ranges over their histograms, and a colour picked in the view."""

    def __init__(self, button: ButtonFactory, parent: QWidget | None = None):
        super().__init__(parent)
        self.values: SplatValues | None = None  # of the model, made when first needed
        self.picked_color: np.ndarray | None = None
        grid = QGridLayout(self)
        self.opacity_hist, self.size_hist = Histogram(), Histogram()
        self.opacity_min, self.opacity_max = self._spin(0.0, 1.0, 0.0), self._spin(0.0, 1.0, 1.0)
        self.size_min = self._spin(0.0, 1e6, 0.0, decimals=5, step=0.001)
        self.size_max = self._spin(0.0, 1e9, 1e9, decimals=5, step=0.001)
        self.use_opacity = QCheckBox("Opacity")
        self.use_size = QCheckBox("Size")
        self.use_size.setToolTip("The largest axis of a splat (one standard deviation), in the scene's units")
        self.use_color = QCheckBox("Colour near")
        for box in (self.use_opacity, self.use_size, self.use_color):
            box.toggled.connect(self._changed)
        self.color_swatch = QLabel("  none  ")
        self.color_swatch.setObjectName("colorSwatch")
        self.tolerance = self._spin(0.01, 1.8, 0.15)
        self.tolerance.setToolTip("How far a splat's base colour may be from the picked one (RGB, 0..1.7)")
        for row, widgets in enumerate(((self.use_opacity, self.opacity_hist, self.opacity_min, self.opacity_max),
                                       (self.use_size, self.size_hist, self.size_min, self.size_max),
                                       (self.use_color, self.color_swatch,
                                        button("Pick from the view", "pick_colour", "Click a splat of that colour"),
                                        self.tolerance))):
            for column, widget in enumerate(widgets):
                grid.addWidget(widget, row, column)
        self.value_count = QLabel()
        self.value_count.setObjectName("valueCount")
        grid.addWidget(self.value_count, 3, 0, 1, 3)
        grid.addWidget(button("Select", "select_values", "Select the visible splats that match"), 3, 3)
        grid.setColumnStretch(1, 1)

    def forget(self) -> None:
        """Another model (or none): its values are made again when needed, no colour is picked."""
        self.values, self.picked_color = None, None

    def pick_color(self, rgb: np.ndarray) -> None:
        """Select near this colour (RGB 0..1) from now on."""
        self.picked_color = rgb
        r, g, b = (int(round(255 * v)) for v in rgb)
        self.color_swatch.setText(f"  #{r:02x}{g:02x}{b:02x}  ")
        self.color_swatch.setStyleSheet(f"background: rgb({r},{g},{b});")
        self.use_color.setChecked(True)

    def ensure_values(self, cloud: Any, session: EditSession | None) -> SplatValues | None:
        """The model's values, and their histograms (sizes in the edited frame's units)."""
        if self.values is None and cloud is not None:
            self.values = SplatValues.of(cloud)
            counts, edges = histogram(self.values.opacity, bins=40)
            self.opacity_hist.set_data(counts, edges, False)
            scale = session.transform.scale if session is not None else 1.0
            counts, edges = histogram(self.values.size * scale, bins=40, log=True)
            self.size_hist.set_data(counts, edges, True)
            self.size_min.setValue(0.0)
            largest = float(self.values.size.max() * scale) if len(self.values.size) else 1.0
            self.size_max.setValue(math.ceil(largest * 1e5) / 1e5)  # every splat, at the box's 5 decimals
        return self.values

    def mask(self, cloud: Any, session: EditSession | None) -> np.ndarray | None:
        """The splats the criteria take (None when none is chosen)."""
        values = self.ensure_values(cloud, session)
        if values is None or session is None:
            return None
        color = self.use_color.isChecked() and self.picked_color is not None
        if not (self.use_opacity.isChecked() or self.use_size.isChecked() or color):
            return None
        scale = session.transform.scale
        return by_values(values,
                         (self.opacity_min.value(), self.opacity_max.value()) if self.use_opacity.isChecked() else None,
                         (self.size_min.value() / scale, self.size_max.value() / scale)
                         if self.use_size.isChecked() else None,
                         tuple(self.picked_color) if color else None, self.tolerance.value())

    def show_count(self, mask: np.ndarray | None, visible: np.ndarray) -> None:
        self.value_count.setText("Choose a criterion." if mask is None else
                                 f"{int(np.count_nonzero(mask & visible)):,} visible splats match")
        self.opacity_hist.set_range(self.opacity_min.value(), self.opacity_max.value())
        self.size_hist.set_range(self.size_min.value(), self.size_max.value())


class RegionTab(_Tab):
    """"Region": a box or a sphere in the edited frame, centred on a typed or picked point."""

    def __init__(self, button: ButtonFactory, parent: QWidget | None = None):
        super().__init__(parent)
        form = QFormLayout(self)
        self.region_shape = QComboBox()
        self.region_shape.addItem("Box", "box")
        self.region_shape.addItem("Sphere", "sphere")
        self.region_shape.currentIndexChanged.connect(self._changed)
        self.region_center = [self._spin(-1e9, 1e9, 0.0, decimals=4, step=0.1) for _ in range(3)]
        self.region_size = [self._spin(1e-6, 1e9, 1.0, decimals=4, step=0.1) for _ in range(3)]
        self.region_radius = self._spin(1e-6, 1e9, 1.0, decimals=4, step=0.1)
        centre_row, size_row = QHBoxLayout(), QHBoxLayout()
        for box in self.region_center:
            centre_row.addWidget(box)
        centre_row.addWidget(button("Pick", "pick_region", "Centre the region on a clicked splat"))
        for box in self.region_size:
            size_row.addWidget(box)
        form.addRow("Shape", self.region_shape)
        form.addRow("Centre (x, y, z)", centre_row)
        form.addRow("Box size", size_row)
        form.addRow("Sphere radius", self.region_radius)
        self.region_count = QLabel()
        self.region_count.setObjectName("regionCount")
        row = QHBoxLayout()
        row.addWidget(self.region_count, 1)
        row.addWidget(button("Fit the scene", "fit_region", "The region around the bulk of the scene"))
        row.addWidget(button("Select inside", "select_region", "Select the visible splats inside"))
        form.addRow(row)

    def centre_on(self, point: np.ndarray) -> None:
        """Centre the region on `point` (edited frame)."""
        for box, value in zip(self.region_center, point, strict=True):
            box.setValue(float(value))

    def fit(self, scene: Any, session: EditSession) -> None:
        """Around the bulk of `scene` (its framing box and radius), in the edited frame."""
        t = session.transform
        for boxes, values in ((self.region_center, t.apply(scene.center)),
                              (self.region_size, np.maximum(2.0 * scene.half_extent * t.scale, 1e-6))):
            for box, value in zip(boxes, values, strict=True):
                box.blockSignals(True)
                box.setValue(float(value))
                box.blockSignals(False)
        self.region_radius.setValue(float(scene.radius * t.scale))

    def in_model(self, session: EditSession) -> tuple[str, np.ndarray, Any, Any]:
        """The region in the model's frame: (shape, centre, half sizes or radius, box axes)."""
        t = session.transform
        inverse = t.inverse()
        centre = inverse.apply(np.array([b.value() for b in self.region_center]))
        if self.region_shape.currentData() == "sphere":
            return "sphere", centre, self.region_radius.value() / t.scale, None
        half = np.array([b.value() for b in self.region_size]) / 2.0 / t.scale
        return "box", centre, half, t.rotation.T  # the edited frame's axes, in the model's frame

    def mask(self, cloud: Any, session: EditSession | None) -> np.ndarray | None:
        if cloud is None or session is None:
            return None
        shape, centre, size, axes = self.in_model(session)
        if shape == "sphere":
            return in_sphere(cloud.positions, centre, size)
        return in_box(cloud.positions, centre, size, axes)


class OrientTab(QWidget):
    """"Orient & scale": level from the cameras or on the ground, origin, scale, measure, reset."""

    def __init__(self, button: ButtonFactory, parent: QWidget | None = None):
        super().__init__(parent)
        grid = QGridLayout(self)
        self.level_button = button("Level from the cameras", "level", "Make the photos' average up the scene's up (-y)")
        buttons = [self.level_button,
                   button("Level on the ground…", "ground", "Pick three points on the ground: it becomes level, at "
                          "height 0"),
                   button("Set the origin…", "origin", "Pick the point to become (0, 0, 0)"),
                   button("Set the scale…", "scale", "Pick two points and type how far apart they are"),
                   button("Measure…", "measure", "Pick two points: their distance in the scale's units"),
                   button("Reset", "reset_transform", "Back to the model's own orientation and scale")]
        for i, widget in enumerate(buttons):
            grid.addWidget(widget, i // 3, i % 3)
        self.transform_label = QLabel()
        self.transform_label.setObjectName("transformLabel")
        self.transform_label.setWordWrap(True)
        self.measure_label = QLabel()
        self.measure_label.setObjectName("measureLabel")
        grid.addWidget(self.transform_label, 2, 0, 1, 3)
        grid.addWidget(self.measure_label, 3, 0, 1, 3)

    def set_cameras(self, present: bool) -> None:
        """Levelling from the cameras needs the photos' cameras."""
        self.level_button.setEnabled(present)
        self.level_button.setToolTip("Make the photos' average up the scene's up (-y)" if present else
                                     "Needs the photos' cameras")
