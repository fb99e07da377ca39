"""New-project page: the dropped photos as a thumbnail grid (rejected ones badged with the reason),
a name, a preset, advanced settings, and Create / Create and reconstruct.

Checking the photos (:func:`inspect_photos`), making thumbnails and importing run in workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QKeyEvent, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from splatstudio.model.images import import_photos, inspect_photos
from splatstudio.model.library import Library, LibraryError
from splatstudio.model.settings import DEFAULT_PRESET, PRESETS, Settings
from splatstudio.ui.preferences import SettingsForm
from splatstudio.ui.workers import ProgressFn, Workers, pixmap_from_rgb, thumbnail_rgb

THUMB = 120
SOURCE_ROLE = Qt.ItemDataRole.UserRole
REASON_ROLE = Qt.ItemDataRole.UserRole + 1




@dataclass
class CheckedPhoto:
    """One dropped file after the check: its size (accepted) or the reason it was rejected."""

    source: str
    width: int | None
    height: int | None
    reason: str | None
    thumb: tuple[int, int, bytes] | None


def check_photos(sources: list[str], settings: Settings, progress: ProgressFn) -> list[CheckedPhoto]:
    """Worker: :func:`inspect_photos` plus a thumbnail of every file PIL can read."""
    report = inspect_photos(sources, settings, progress)
    items = [CheckedPhoto(a.source, a.original_width, a.original_height, None, thumbnail_rgb(a.source, THUMB))
             for a in report.accepted]
    items += [CheckedPhoto(r.source, None, None, r.reason, thumbnail_rgb(r.source, THUMB)) for r in report.rejected]
    return sorted(items, key=lambda item: Path(item.source).name.lower())


def create_and_import(library: Library, name: str, settings: Settings, sources: list[str],
                      progress: ProgressFn) -> str:
    """Worker: create the project and import the photos; returns the project folder."""
    project = library.create_project(name, settings)
    report = import_photos(project.images_dir, project.path("import.json"), sources, settings, progress)
    library.sync(project)
    if not report.accepted:
        raise LibraryError(f"none of the photos could be imported into {name!r}")
    return str(project.folder)


def badged_icon(thumb: tuple[int, int, bytes] | None, rejected: bool, placeholder: QPixmap) -> QIcon:
    """The thumbnail (or a placeholder) on a square canvas, with a red "!" badge when rejected."""
    canvas = QPixmap(THUMB, THUMB)
    canvas.fill(QColor(0, 0, 0, 0))
    painter = QPainter(canvas)
    picture = pixmap_from_rgb(thumb) if thumb is not None else placeholder
    painter.drawPixmap((THUMB - picture.width()) // 2, (THUMB - picture.height()) // 2, picture)
    if rejected:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setBrush(QColor("#d64541"))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.drawEllipse(THUMB - 30, 4, 26, 26)
        painter.setPen(QColor("white"))
        font = painter.font()
        font.setBold(True)
        font.setPixelSize(18)
        painter.setFont(font)
        painter.drawText(THUMB - 30, 4, 26, 26, Qt.AlignmentFlag.AlignCenter, "!")
    painter.end()
    return QIcon(canvas)


class PhotoGrid(QListWidget):
    """The thumbnail grid; Delete or Backspace removes the selected photos."""

    sig_remove_requested = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.sig_remove_requested.emit()
            event.accept()
            return
        super().keyPressEvent(event)


class NewProjectPage(QWidget):
    """Shows what was dropped, lets the person prune it and choose settings, then creates the project."""

    sig_project_created = Signal(str, bool)
    """(project folder, reconstruct now) after the photos were imported."""
    sig_cancel_requested = Signal()
    """The person left the page without creating anything."""
    sig_checked = Signal()
    """The dropped files were checked and the grid shows them."""
    sig_message = Signal(str)
    """A sentence for the status bar."""

    def __init__(self, library: Library, workers: Workers, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.library = library
        self.workers = workers
        self.base_settings = settings
        self.advanced: dict[str, Any] = {}
        self.sources: list[str] = []
        self._generation = 0
        self.grid = PhotoGrid()
        self.grid.sig_remove_requested.connect(self.remove_selected)
        self.grid.setObjectName("photoGrid")
        self.grid.setViewMode(QListWidget.ViewMode.IconMode)
        self.grid.setIconSize(QSize(THUMB, THUMB))
        self.grid.setGridSize(QSize(THUMB + 40, THUMB + 56))
        self.grid.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.grid.setMovement(QListWidget.Movement.Static)
        self.grid.setWordWrap(True)
        self.grid.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.grid.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        remove = QAction("Remove from the project (Delete)", self.grid)
        remove.triggered.connect(self.remove_selected)
        self.grid.addAction(remove)
        self.summary = QLabel()
        self.summary.setObjectName("photoSummary")
        self.busy = QProgressBar()
        self.busy.setRange(0, 1000)
        self.busy.setMaximumHeight(14)
        self.busy.hide()
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("projectName")
        self.name_edit.textChanged.connect(self._update_buttons)
        self.preset = QComboBox()
        self.preset.addItems([p.name for p in PRESETS])
        self.preset.setCurrentText(DEFAULT_PRESET)
        self.original = QCheckBox("Original resolution (no resizing on import)")
        self.original.toggled.connect(self._on_settings_changed)
        advanced = QPushButton("Advanced…")
        advanced.clicked.connect(self._on_advanced_requested)
        form = QFormLayout()
        form.addRow("Name", self.name_edit)
        preset_row = QHBoxLayout()
        preset_row.addWidget(self.preset, 1)
        preset_row.addWidget(advanced)
        form.addRow("Preset", preset_row)
        form.addRow("", self.original)
        style = self.style()
        self.create_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_DialogSaveButton), "Create")
        self.create_button.clicked.connect(lambda: self.create(reconstruct=False))
        self.create_run_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay),
                                             "Create and reconstruct")
        self.create_run_button.clicked.connect(lambda: self.create(reconstruct=True))
        self.create_run_button.setDefault(True)
        cancel = QPushButton("Cancel")
        cancel.clicked.connect(self.sig_cancel_requested.emit)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (cancel, self.create_button, self.create_run_button):
            buttons.addWidget(button)
        title = QLabel("<h2>New project</h2>Drop more photos or folders to add them. Photos marked "
                       "<b style='color:#d64541'>!</b> will not be imported (hover for the reason).")
        title.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self.grid, 1)
        layout.addWidget(self.busy)
        layout.addWidget(self.summary)
        layout.addLayout(form)
        layout.addLayout(buttons)
        self._placeholder = style.standardIcon(QStyle.StandardPixmap.SP_FileIcon).pixmap(THUMB // 2)
        self._update_buttons()

    # ------------------------------------------------------------------ settings
    def settings(self) -> Settings:
        """The project's settings: preferences < preset < advanced changes < the resolution checkbox."""
        preset = next(p for p in PRESETS if p.name == self.preset.currentText())
        changes = dict(preset.values)
        changes.update(self.advanced)
        changes["original_resolution"] = self.original.isChecked()
        return self.base_settings.updated(changes, "new project")

    def _on_advanced_requested(self) -> None:
        dialog = QDialog(self)
        dialog.setWindowTitle("Advanced settings for this project")
        dialog.resize(680, 520)
        form = SettingsForm(self.settings())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        form.sig_validity_changed.connect(buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled)
        buttons.accepted.connect(dialog.accept)
        buttons.rejected.connect(dialog.reject)
        layout = QVBoxLayout(dialog)
        layout.addWidget(form)
        layout.addWidget(buttons)
        dialog.accepted.connect(lambda: self._on_advanced_accepted(form.settings()))
        dialog.open()

    def _on_advanced_accepted(self, settings: Settings) -> None:
        self.advanced = {k: v for k, v in settings.values.items() if v != self.base_settings.values[k]}
        self.original.setChecked(settings.original_resolution)
        self._on_settings_changed()

    def _on_settings_changed(self) -> None:
        if self.sources:
            self._check()

    # ------------------------------------------------------------------ photos
    def start(self, sources: list[str]) -> None:
        """Begin a new project with the dropped ``sources`` (files and folders)."""
        self.sources = []
        self.advanced = {}
        self.grid.clear()
        first = Path(sources[0]) if sources else None
        self.name_edit.setText(self._free_name(first.stem if first and first.is_file() else
                                               (first.name if first else "Project")))
        self.add_sources(sources)

    def add_sources(self, sources: list[str]) -> None:
        self.sources += [s for s in sources if s not in self.sources]
        self._check()

    def _free_name(self, base: str) -> str:
        name, n = base or "Project", 2
        while self.library.find(name) is not None:
            name, n = f"{base} {n}", n + 1
        return name

    def _check(self) -> None:
        self._generation += 1
        generation = self._generation
        self.busy.show()
        self.summary.setText(f"Checking {len(self.sources)} dropped item(s)…")
        sources, settings = list(self.sources), self.settings()
        self.busy.setValue(0)
        self.workers.submit(lambda progress: check_photos(sources, settings, progress),
                            lambda items: self._on_checked(generation, items),
                            lambda message, _t: self._on_check_failed(generation, message),
                            self._on_progress)
        self._update_buttons()

    def _on_check_failed(self, generation: int, message: str) -> None:
        if generation == self._generation:
            self.busy.hide()
            self.summary.setText(f"Could not check the photos: {message}")

    def _on_checked(self, generation: int, items: list[CheckedPhoto]) -> None:
        if generation != self._generation:
            return  # an older check, superseded by a newer drop or settings change
        self.busy.hide()
        self.grid.clear()
        for item in items:
            name = Path(item.source).name
            if item.reason is None:
                text, tip = f"{name}\n{item.width}×{item.height}", f"{item.source}\n{item.width}×{item.height} px"
            else:
                text, tip = f"{name}\n{item.reason}", f"{item.source}\nnot imported: {item.reason}"
            entry = QListWidgetItem(badged_icon(item.thumb, item.reason is not None, self._placeholder), text)
            entry.setToolTip(tip)
            entry.setData(SOURCE_ROLE, item.source)
            entry.setData(REASON_ROLE, item.reason)
            if item.reason is not None:
                entry.setForeground(QColor("#d64541"))
            self.grid.addItem(entry)
        self._update_summary()
        self.sig_checked.emit()

    def items(self) -> list[QListWidgetItem]:
        return [self.grid.item(i) for i in range(self.grid.count())]

    def accepted_sources(self) -> list[str]:
        return [item.data(SOURCE_ROLE) for item in self.items() if item.data(REASON_ROLE) is None]

    def remove_selected(self) -> None:
        for item in self.grid.selectedItems():
            self.grid.takeItem(self.grid.row(item))
        self._update_summary()

    def _update_summary(self) -> None:
        accepted = len(self.accepted_sources())
        rejected = self.grid.count() - accepted
        self.summary.setText(f"{accepted} photo(s) will be imported" +
                             (f", {rejected} file(s) rejected" if rejected else ""))
        self._update_buttons()

    def _update_buttons(self) -> None:
        ready = bool(self.name_edit.text().strip()) and bool(self.accepted_sources()) and not self.busy.isVisible()
        self.create_button.setEnabled(ready)
        self.create_run_button.setEnabled(ready)

    # ------------------------------------------------------------------ create
    def create(self, reconstruct: bool) -> None:
        name, sources = self.name_edit.text().strip(), self.accepted_sources()
        try:
            settings = self.settings()
        except ValueError as exc:
            self.sig_message.emit(str(exc))
            return
        self.busy.setValue(0)
        self.busy.show()
        self._update_buttons()
        self.summary.setText(f"Importing {len(sources)} photo(s) into {name!r}…")
        self.workers.submit(lambda progress: create_and_import(self.library, name, settings, sources, progress),
                            lambda folder: self._on_created(folder, reconstruct), self._on_create_failed,
                            self._on_progress)

    def _on_progress(self, fraction: float, message: str) -> None:
        self.busy.setValue(int(fraction * 1000))
        self.busy.setFormat(message or "%p%")

    def _on_created(self, folder: str, reconstruct: bool) -> None:
        self.busy.hide()
        self.sources = []
        self.grid.clear()
        self._update_summary()
        self.sig_project_created.emit(folder, reconstruct)

    def _on_create_failed(self, message: str, _trace: str) -> None:
        self.busy.hide()
        self._update_summary()
        self.summary.setText(f"Could not create the project: {message}")
        self.sig_message.emit(message)
