"""The guided clean-up on the project page: one strength, what it removes in words, a live preview in the
3D view (what would go tinted, or hidden to see the result), kept in the project (``edits.json``) and
applied when the result is exported. The detectors are ``model/cleanup.py``; their scores are computed
once per model in a worker, after which moving the strength costs milliseconds."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QCheckBox, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

from splatstudio.model.cleanup import CleanupScores, Views, cleanup_mask, cleanup_scores, describe
from splatstudio.ui.workers import Workers

SETTLE_MS = 120  # a slider being dragged asks for one mask per this many milliseconds at most


class CleanupPanel(QGroupBox):
    """Emits :attr:`sig_marks` with the mask to preview and :attr:`sig_strength_changed` when the kept
    strength changes; :meth:`set_model` gives it the model the 3D view shows."""

    sig_marks = Signal(object, bool)
    """(mask of the splats the strength removes, or None; hide them instead of tinting)."""
    sig_strength_changed = Signal(float)
    """The strength to keep with the project (0: no clean-up)."""
    sig_enabled = Signal(bool)
    """Whether there is a model to clean (the result, not a training preview)."""

    def __init__(self, workers: Workers, parent: QWidget | None = None):
        super().__init__("Clean up floaters and junk", parent)
        self.setObjectName("cleanupPanel")
        self.workers = workers
        self.scores: CleanupScores | None = None
        self.mask: np.ndarray | None = None
        self._model: tuple[Any, Views | None] | None = None  # (cloud, views) of the shown model
        self._generation = 0
        self._analysing = False
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("cleanupStrength")
        self.slider.setRange(0, 100)
        self.slider.setToolTip("0: keep every splat. Stronger removes more: nearly transparent, oversized and "
                               "isolated splats, and those outside the photos' views or far from the cameras")
        self.value_label = QLabel("off")
        self.value_label.setMinimumWidth(40)
        self.summary = QLabel("Move the strength to see what a clean-up removes; the 3D view tints it.")
        self.summary.setObjectName("cleanupSummary")
        self.summary.setWordWrap(True)
        self.hide_box = QCheckBox("Show the result (hide what goes)")
        self.hide_box.toggled.connect(self._emit_marks)
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("No clean-up: every splat is kept")
        self.reset_button.clicked.connect(lambda: self.slider.setValue(0))
        row = QHBoxLayout()
        row.addWidget(QLabel("Strength"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.value_label)
        row.addWidget(self.reset_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.summary)
        layout.addWidget(self.hide_box)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SETTLE_MS)
        self._timer.timeout.connect(self._settled)
        self.slider.valueChanged.connect(self._on_slider)
        self.setEnabled(False)

    @property
    def model(self) -> Any | None:
        """The cloud the panel scores (the shown result's), or None."""
        return self._model[0] if self._model is not None else None

    @property
    def strength(self) -> float:
        return self.slider.value() / 100.0

    def set_model(self, cloud: Any | None, views: Views | None, strength: float) -> None:
        """The model the 3D view shows (None: none, or a training preview: the panel waits) and the strength
        kept for it; its scores are computed when the strength first asks for them."""
        self._generation += 1
        self._model = (cloud, views) if cloud is not None else None
        self.scores, self.mask, self._analysing = None, None, False
        self.setEnabled(cloud is not None)
        self.sig_enabled.emit(cloud is not None)
        self.slider.blockSignals(True)
        self.slider.setValue(round(100 * min(max(strength, 0.0), 1.0)))
        self.slider.blockSignals(False)
        self._show_value()
        if cloud is not None and strength > 0:
            self._update()
        else:
            self.summary.setText("Move the strength to see what a clean-up removes; the 3D view tints it.")

    def _on_slider(self, _value: int) -> None:
        self._show_value()
        if not self._timer.isActive():
            self._timer.start()

    def _settled(self) -> None:
        self.sig_strength_changed.emit(self.strength)
        self._update()

    def _show_value(self) -> None:
        self.value_label.setText(f"{self.slider.value()}" if self.slider.value() else "off")

    def _update(self) -> None:
        if self._model is None:
            return
        if self.strength <= 0:
            self.mask = None
            self.summary.setText("Off: every splat is kept.")
            self._emit_marks()
            return
        if self.scores is None:
            if not self._analysing:
                self._analysing = True
                self.summary.setText("Looking at every splat…")
                cloud, views = self._model
                generation = self._generation
                self.workers.submit(lambda: cleanup_scores(cloud, views),
                                    lambda scores: self._on_scores(generation, scores),
                                    lambda message, _t: self.summary.setText(f"The clean-up failed: {message}"))
            return
        self.mask, counts = cleanup_mask(self.scores, self.strength)
        self.summary.setText(describe(self.mask, counts).capitalize() + ".")
        self._emit_marks()

    def _on_scores(self, generation: int, scores: CleanupScores) -> None:
        if generation != self._generation:
            return  # another model by now
        self.scores, self._analysing = scores, False
        self._update()

    def _emit_marks(self) -> None:
        marked = self.mask if self.mask is not None and self.mask.any() else None
        self.sig_marks.emit(marked, self.hide_box.isChecked())
