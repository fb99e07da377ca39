"""The export dialog: format, filtered or raw result, minimum opacity, SH degree, a crop box and how many
splats (all, a count, what fits a file size, or the web / mobile preset), with the exact splat count and
file size shown before anything is written where the user chose.

Every change of an option (debounced) writes the export to a temporary file in a worker
(:func:`splatstudio.io.export.prepare_export`) and shows its size and count; "Export…" asks where, then
moves that very file there (a rename on the same filesystem). Nothing runs on the GUI thread but the
widgets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from splatstudio.io.export import CropBox, ExportOptions, ExportPreview, prepare_export
from splatstudio.io.formats import FORMATS
from splatstudio.model import humanize
from splatstudio.ui.workers import Workers

DEBOUNCE_MS = 300

WEB_FORMAT = ".sog"
WEB_MAX_SPLATS = 1_000_000
WEB_MAX_BYTES = 20_000_000
"""The web / mobile preset: PlayCanvas's SOG, the smallest format web viewers read, with at most a million
splats (what phones draw smoothly; SOG's own documentation puts a single file's practical ceiling at
1-2 million) in at most 20 MB."""
AMOUNTS = (("all", "All splats"), ("count", "At most this many splats"), ("size", "As many as fit this size"),
           ("web", f"Web / mobile: {WEB_FORMAT}, at most {WEB_MAX_SPLATS:,} splats and "
                   f"{WEB_MAX_BYTES // 1_000_000} MB"))


def _load(source: Path, cleanup: tuple[float, Any, dict[Path, Any]] | None = None,
          edits: tuple[np.ndarray | None, Any] | None = None) -> Any:
    """Worker: the cloud, its robust bounds (1st-99th percentile, what a crop box starts from, in the edited
    frame), the splats the project's clean-up ``(strength, views, masks already made by source)`` and hand
    edits ``(deleted, transform)`` remove from it (None without any), and the edits' transform."""
    from splatstudio.io.formats import load_splats
    from splatstudio.model.cleanup import cleanup_mask, cleanup_scores

    cloud = load_splats(source)
    deleted, transform = edits if edits is not None else (None, None)
    if deleted is not None and len(deleted) != len(cloud):
        deleted, transform = None, None  # made on another model (the page passes the shown result's only)
    if len(cloud):
        positions = cloud.positions if transform is None else transform.apply(cloud.positions)
        lo, hi = np.percentile(positions, [1, 99], axis=0)
    else:
        lo, hi = np.zeros(3), np.ones(3)
    removed = None
    if cleanup is not None and cleanup[0] > 0:
        removed = cleanup[2].get(source)  # the preview's own mask of this model, when the page has one
        if removed is None or len(removed) != len(cloud):
            removed = cleanup_mask(cleanup_scores(cloud, cleanup[1]), cleanup[0])[0]
    if deleted is not None:
        removed = deleted.copy() if removed is None else removed | deleted
    return cloud, lo, hi, removed, transform


class ExportDialog(QDialog):
    """Export a project's result. ``sig_exported(path, count, size)`` after a successful export."""

    sig_exported = Signal(str, int, int)

    def __init__(self, filtered: Path | None, raw: Path | None, name: str, workers: Workers,
                 parent: QWidget | None = None, extension: str = ".ply",
                 cleanup: tuple[float, Any, dict[Path, Any]] | None = None,
                 edits: dict[Path, tuple[np.ndarray | None, Any]] | None = None):
        super().__init__(parent)
        self.setObjectName("exportDialog")
        self.setWindowTitle(f"Export — {name}")
        self.sources = {"filtered": filtered, "raw": raw}
        self.cleanup = cleanup if cleanup is not None and cleanup[0] > 0 else None
        """The project's clean-up (strength, the photos' cameras as ``model.cleanup.Views``, masks the page
        already made by source path), applied first."""
        self.edits = edits or {}
        """The hand edits (the deleted splats, the transform) by source path: the shown result's only."""
        self.name = name
        self.workers = workers
        self.clouds: dict[str, Any] = {}
        self.preview: ExportPreview | None = None
        self._generation = 0
        self._busy = False
        self._again = False
        self._closed = False
        self._loading: set[str] = set()
        form = self._build_options(filtered, raw, extension)
        self.crop = self._build_crop()
        self.summary = QLabel("reading the model…")
        self.summary.setObjectName("exportSummary")
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.export_button = self.buttons.addButton("Export…", QDialogButtonBox.ButtonRole.AcceptRole)
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self._on_export_clicked)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.crop)
        layout.addWidget(self.summary)
        layout.addWidget(self.buttons)

        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._debounce.timeout.connect(self._update_preview)
        self.amount.currentIndexChanged.connect(self._on_amount_changed)
        self._on_amount_changed()
        for signal in (self.format.currentIndexChanged, self.sh_degree.currentIndexChanged,
                       self.min_opacity.valueChanged, self.crop.toggled, self.filtered_choice.toggled,
                       self.amount.currentIndexChanged, self.target_count.valueChanged, self.target_mb.valueChanged):
            signal.connect(self._schedule)
        for box in self.crop_min + self.crop_max:
            box.valueChanged.connect(self._schedule)
        self._schedule()

    def _build_options(self, filtered: Path | None, raw: Path | None, extension: str) -> QFormLayout:
        """Format, which splats (filtered or raw), minimum opacity, SH degree and how many splats to keep."""
        self.format = QComboBox()
        for ext, fmt in sorted(FORMATS.items()):
            self.format.addItem(f"{ext}  —  {fmt.description}", ext)
        self.format.setCurrentIndex(max(0, self.format.findData(extension)))
        self.filtered_choice = QRadioButton("Filtered result (outliers removed)")
        self.raw_choice = QRadioButton("Raw trainer output")
        self.filtered_choice.setEnabled(filtered is not None)
        self.raw_choice.setEnabled(raw is not None)
        (self.filtered_choice if filtered is not None else self.raw_choice).setChecked(True)
        self.min_opacity = QDoubleSpinBox(minimum=0.0, maximum=0.99, singleStep=0.01, decimals=2)
        self.min_opacity.setToolTip("Leave out splats less opaque than this (0 keeps them all)")
        self.sh_degree = QComboBox()
        self.sh_degree.addItem("Keep all", None)
        for degree, text in ((0, "0 — colour only"), (1, "1"), (2, "2"), (3, "3 — full view-dependent colour")):
            self.sh_degree.addItem(text, degree)
        self.amount = QComboBox()
        self.amount.setObjectName("exportAmount")
        for key, text in AMOUNTS:
            self.amount.addItem(text, key)
        self.amount.setToolTip("Fewer splats make smaller files that phones and browsers draw faster; the most "
                               "visible ones (opacity times size) are kept")
        self.target_count = QSpinBox(minimum=1, maximum=100_000_000, singleStep=10_000, value=WEB_MAX_SPLATS)
        self.target_count.setGroupSeparatorShown(True)
        self.target_count.setSuffix(" splats")
        self.target_mb = QDoubleSpinBox(minimum=0.01, maximum=100_000.0, decimals=2, singleStep=1.0,
                                        value=WEB_MAX_BYTES / 1e6)
        self.target_mb.setSuffix(" MB")
        form = QFormLayout()
        form.addRow("Format", self.format)
        form.addRow("Splats", self.filtered_choice)
        form.addRow("", self.raw_choice)
        form.addRow("Minimum opacity", self.min_opacity)
        form.addRow("SH degree", self.sh_degree)
        form.addRow("Splats to keep", self.amount)
        form.addRow("", self.target_count)
        form.addRow("", self.target_mb)
        return form

    def _build_crop(self) -> QGroupBox:
        """The crop box: its minimum and maximum corners (in the edited frame, see NOTES)."""
        crop = QGroupBox("Crop to a box")
        crop.setCheckable(True)
        crop.setChecked(False)
        grid = QGridLayout(crop)
        self.crop_min, self.crop_max = [], []
        for column, axis in enumerate("XYZ", start=1):
            grid.addWidget(QLabel(axis, alignment=Qt.AlignmentFlag.AlignCenter), 0, column)
        for row, (label, boxes) in enumerate((("Minimum", self.crop_min), ("Maximum", self.crop_max)), start=1):
            grid.addWidget(QLabel(label), row, 0)
            for column in range(3):
                box = QDoubleSpinBox(minimum=-1e6, maximum=1e6, decimals=3, singleStep=0.1)
                boxes.append(box)
                grid.addWidget(box, row, column + 1)
        return crop

    # ------------------------------------------------------------------ options
    @property
    def source_key(self) -> str:
        return "filtered" if self.filtered_choice.isChecked() else "raw"

    @property
    def extension(self) -> str:
        return self.format.currentData()

    @property
    def amount_key(self) -> str:
        return self.amount.currentData()

    def _on_amount_changed(self, *_args: Any) -> None:
        key = self.amount_key
        self.target_count.setEnabled(key == "count")
        self.target_mb.setEnabled(key == "size")
        if key == "web":  # the preset's format; the user may still pick another
            self.format.setCurrentIndex(max(0, self.format.findData(WEB_FORMAT)))

    def options(self) -> ExportOptions:
        """The options as set (`ValueError` names an invalid one, e.g. an empty crop box)."""
        crop = None
        if self.crop.isChecked():
            crop = CropBox.from_min_max([b.value() for b in self.crop_min], [b.value() for b in self.crop_max])
        key = self.amount_key
        target_count = {"count": self.target_count.value(), "web": WEB_MAX_SPLATS}.get(key)
        target_size = {"size": round(self.target_mb.value() * 1e6), "web": WEB_MAX_BYTES}.get(key)
        loaded = self.clouds.get(self.source_key)
        return ExportOptions(raw=self.source_key == "raw", min_opacity=self.min_opacity.value(),
                             sh_degree=self.sh_degree.currentData(), crop=crop, target_count=target_count,
                             target_size=target_size, remove=loaded[3] if loaded is not None else None,
                             transform=loaded[4] if loaded is not None else None)

    # ------------------------------------------------------------------ preview
    def _schedule(self, *_args: Any) -> None:
        self._generation += 1
        self.export_button.setEnabled(False)
        self._debounce.start()

    def _update_preview(self) -> None:
        key = self.source_key
        if key not in self.clouds:
            self.summary.setText("reading the model…")
            if key in self._loading:
                return
            self._loading.add(key)
            cleanup, edits = self.cleanup, self.edits.get(self.sources[key])
            self.workers.submit(lambda: _load(self.sources[key], cleanup, edits),
                                lambda loaded: self._on_loaded(key, loaded),
                                lambda message, _t: self.summary.setText(f"cannot read the model: {message}"))
            return
        try:
            options = self.options()
        except ValueError as exc:
            self.summary.setText(str(exc))
            return
        if self._busy:  # one preview at a time; the newest options get the next one
            self._again = True
            return
        self._busy = True
        generation, cloud, ext = self._generation, self.clouds[key][0], self.extension
        self.summary.setText("preparing…")
        self.workers.submit(lambda: prepare_export(cloud, ext, options),
                            lambda preview: self._on_preview(generation, preview),
                            lambda message, _t: self._on_preview_failed(generation, message))

    def _on_loaded(self, key: str, loaded: Any) -> None:
        _cloud, lo, hi, _removed, _transform = loaded
        self._loading.discard(key)
        first = not self.clouds
        self.clouds[key] = loaded
        if first:  # the crop box starts around the bulk of the scene
            for axis in range(3):
                self.crop_min[axis].setValue(float(lo[axis]))
                self.crop_max[axis].setValue(float(hi[axis]))
        self._update_preview()

    def _set_preview(self, preview: ExportPreview | None) -> None:
        if self.preview is not None:
            self.preview.discard()
        self.preview = preview

    def _finish_busy(self) -> bool:
        """End of one preview; True when newer options are waiting (they start now)."""
        self._busy = False
        if self._again:
            self._again = False
            self._update_preview()
            return True
        return False

    def _on_preview(self, generation: int, preview: ExportPreview) -> None:
        if generation != self._generation or self._closed:
            preview.discard()
        else:
            self._set_preview(preview)
            total = len(self.clouds[self.source_key][0])
            kept = " (the most visible)" if self.amount_key != "all" and preview.count < total else ""
            removed = self.clouds[self.source_key][3]
            what = " and ".join(w for w, on in (("the clean-up", self.cleanup is not None),
                                                ("your edits", self.edits.get(self.sources[self.source_key])
                                                 is not None)) if on)
            cleaned = f" after {what} removed {int(removed.sum()):,}" if removed is not None else ""
            self.summary.setText(f"{preview.count:,} of {total:,} splats{kept}{cleaned} · "
                                 f"{humanize.format_size(preview.size)} as {preview.extension}")
            self.export_button.setEnabled(True)
        self._finish_busy()

    def _on_preview_failed(self, generation: int, message: str) -> None:
        if generation == self._generation:
            self._set_preview(None)
            self.summary.setText(message)
        self._finish_busy()

    # ------------------------------------------------------------------ export
    def _on_export_clicked(self) -> None:
        dialog = QFileDialog(self, "Export to", str(Path.home() / f"{self.name}{self.extension}"),
                             f"{self.extension} files (*{self.extension})")
        dialog.setObjectName("exportTarget")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix(self.extension.lstrip("."))
        dialog.fileSelected.connect(self.export_to)
        dialog.open()

    def export_to(self, target: str) -> None:
        """Move the prepared file to `target` (in a worker: it may be a copy across filesystems)."""
        preview = self.preview
        if preview is None:
            return
        if not target.lower().endswith(preview.extension):
            target += preview.extension
        self.preview = None
        self.export_button.setEnabled(False)
        self.summary.setText(f"writing {Path(target).name}…")
        self.workers.submit(lambda: preview.commit(target),
                            lambda path: self._on_exported(str(path), preview),
                            lambda message, _t: self._on_export_failed(message, preview))

    def _on_exported(self, path: str, preview: ExportPreview) -> None:
        self.sig_exported.emit(path, preview.count, preview.size)
        self.accept()

    def _on_export_failed(self, message: str, preview: ExportPreview) -> None:
        preview.discard()
        self.summary.setText(f"export failed: {message}")
        self._schedule()

    def done(self, result: int) -> None:  # accept, reject, close: the temporary file goes
        self._closed = True
        self._set_preview(None)
        super().done(result)
