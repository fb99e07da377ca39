"""New-project page: the dropped photos as a thumbnail grid (rejected ones badged with the reason),
a name, a preset (or a time budget), the scene detail, advanced settings, and Create / Create and
reconstruct. Once the photos are checked, each preset shows how long it would train on this computer.
A dropped video shows as one badged item followed by the frames that would be taken from it, with a
control for how many frames to take.

Checking the photos and videos (:func:`inspect_photos`), making thumbnails, estimating the training time
(:func:`estimate_training`) and importing run in workers; a check or an import can be stopped (Stop), which
keeps nothing of it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor
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
    QSpinBox,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from splatstudio.model.humanize import format_about, format_memory_mb
from splatstudio.model.library import Library
from splatstudio.model.settings import DEFAULT_PRESET, PRESETS, SPEC_BY_KEY, Settings, SettingsError, preset
from splatstudio.model.video import format_time
from splatstudio.ui.photo_check import (
    THUMB,
    CheckedPhoto,
    PhotoGrid,
    badged_icon,
    check_photos,
    create_and_import,
    estimate_entries,
    stoppable,
    suggested_name,
)
from splatstudio.ui.preferences import SettingsForm, StepsCombo
from splatstudio.ui.workers import Workers

SOURCE_ROLE = Qt.ItemDataRole.UserRole
REASON_ROLE = Qt.ItemDataRole.UserRole + 1
KIND_ROLE = Qt.ItemDataRole.UserRole + 2
""""photo", "video" (a video that gives frames) or "frame" (one of them: SOURCE_ROLE is its video)."""
BUDGET_KEY = "budget"
BUDGET_NAME = "Time budget"
"""The preset list's last entry: the Balanced preset, trained for the minutes chosen beside it."""
ROW_KEYS = ("original_resolution", "scene_detail", "time_budget_minutes", "video_frames")
"""Settings the page has a widget of its own for (the advanced dialog's changes to them go there)."""
ESTIMATE_DELAY_MS = 300
"""Changes within this long of each other make one new estimate."""
RECHECK_DELAY_MS = 600
"""A changed frame count is applied (the videos checked again) this long after the last change."""


class NewProjectPage(QWidget):
    """Shows what was dropped, lets the person prune it and choose settings, then creates the project."""

    sig_project_created = Signal(str, bool)
    """(project folder, reconstruct now) after the photos were imported."""
    sig_cancel_requested = Signal()
    """The person left the page without creating anything."""
    sig_checked = Signal()
    """The dropped files were checked and the grid shows them."""
    sig_estimated = Signal()
    """The expected training times were shown (or cleared: no photos, a reference trainer, an error)."""
    sig_message = Signal(str)
    """A sentence for the status bar."""

    def __init__(self, library: Library, workers: Workers, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.library = library
        self.workers = workers
        self.base_settings = settings
        self.advanced: dict[str, Any] = {}
        self.sources: list[str] = []
        self.sizes: dict[str, tuple[int, int]] = {}
        """Original width and height of each accepted photo, by source."""
        self.video_frames: dict[str, tuple[int, tuple[int, int]]] = {}
        """Each accepted video's frame count and upright size, by source."""
        self._check_stop: threading.Event | None = None
        """Set to stop the check that is running (each check gets its own)."""
        self._import_stop: threading.Event | None = None
        """Set to stop the import that is running."""
        self._importing = False
        self.detail_estimate: dict[str, Any] | None = None
        """The last estimate of the scene-detail costs (scene detail on auto), shown in Advanced… too."""
        self._generation = 0
        self._estimate_generation = 0
        self._estimating = False
        self._estimate_again = False
        self._build_grid()
        form = self._build_form(settings)
        buttons = self._build_buttons()
        title = QLabel("<h2>New project</h2>Drop more photos, videos or folders to add them. Files marked "
                       "<b style='color:#d64541'>!</b> will not be imported (hover for the reason); a video "
                       "<b style='color:#2d7dd2'>▶</b> is followed by the frames taken from it.")
        title.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self.grid, 1)
        busy_row = QHBoxLayout()
        busy_row.addWidget(self.busy, 1)
        busy_row.addWidget(self.stop_button)
        layout.addLayout(busy_row)
        layout.addWidget(self.summary)
        layout.addLayout(form)
        layout.addLayout(buttons)
        self._placeholder = self.style().standardIcon(QStyle.StandardPixmap.SP_FileIcon).pixmap(THUMB // 2)
        self._update_buttons()

    def _build_grid(self) -> None:
        """The thumbnail grid, the summary under it, and the progress of a check or an import with its Stop."""
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
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stopWork")
        self.stop_button.setToolTip("Stop checking or importing; nothing of it is kept")
        self.stop_button.clicked.connect(self.stop)
        self.stop_button.hide()

    def _build_form(self, settings: Settings) -> QFormLayout:
        """Name, preset (or time budget), scene detail, frames per video, resolution, and the estimates."""
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("projectName")
        self.name_edit.textChanged.connect(self._update_buttons)
        self.preset = QComboBox()
        self.preset.setObjectName("preset")
        for item in PRESETS:
            self.preset.addItem(item.name, item.key)
        self.preset.addItem(BUDGET_NAME, BUDGET_KEY)
        self.preset.setItemData(self.preset.count() - 1, "The Balanced preset, trained for about this many "
                                "minutes on this computer", Qt.ItemDataRole.ToolTipRole)
        self.select_preset(DEFAULT_PRESET)
        self.preset.currentIndexChanged.connect(self._on_preset_changed)
        self.minutes = QSpinBox()
        self.minutes.setObjectName("budgetMinutes")
        self.minutes.setRange(1, 600)
        self.minutes.setValue(10)
        self.minutes.setSuffix(" min")
        self.minutes.setToolTip(SPEC_BY_KEY["time_budget_minutes"].help)
        self.minutes.valueChanged.connect(self._schedule_estimate)
        self.minutes.hide()
        self.detail = StepsCombo(SPEC_BY_KEY["scene_detail"])
        self.detail.setObjectName("sceneDetail")
        self.detail.setToolTip(SPEC_BY_KEY["scene_detail"].help)
        self.detail.set_value(settings.scene_detail)
        self.detail.currentIndexChanged.connect(self._schedule_estimate)
        self.original = QCheckBox("Original resolution (no resizing on import)")
        self.original.toggled.connect(self._on_settings_changed)
        self.frames = QSpinBox()
        self.frames.setObjectName("videoFrames")
        spec = SPEC_BY_KEY["video_frames"]
        self.frames.setRange(int(spec.minimum or 0), int(spec.maximum or 10_000))
        self.frames.setSpecialValueText("auto (2 a second, 20-150)")
        self.frames.setSuffix(" frames")
        self.frames.setToolTip(spec.help)
        self.frames.setValue(settings.video_frames)
        self._frames_timer = QTimer(self)
        self._frames_timer.setSingleShot(True)
        self._frames_timer.setInterval(RECHECK_DELAY_MS)
        self._frames_timer.timeout.connect(self._on_frames_changed)
        self.frames.valueChanged.connect(self._frames_timer.start)
        self.estimate_label = QLabel()
        self.estimate_label.setObjectName("trainingEstimate")
        self.estimate_label.setWordWrap(True)
        self.estimate_label.hide()
        self._estimate_timer = QTimer(self)
        self._estimate_timer.setSingleShot(True)
        self._estimate_timer.setInterval(ESTIMATE_DELAY_MS)
        self._estimate_timer.timeout.connect(self._estimate)
        advanced = QPushButton("Advanced…")
        advanced.clicked.connect(self._on_advanced_requested)
        form = QFormLayout()
        form.addRow("Name", self.name_edit)
        preset_row = QHBoxLayout()
        preset_row.addWidget(self.preset, 1)
        preset_row.addWidget(self.minutes)
        preset_row.addWidget(advanced)
        form.addRow("Preset", preset_row)
        form.addRow("Scene detail", self.detail)
        form.addRow("Frames per video", self.frames)
        form.setRowVisible(self.frames, False)
        self._form = form
        form.addRow("", self.original)
        form.addRow("", self.estimate_label)
        return form

    def _build_buttons(self) -> QHBoxLayout:
        style = self.style()
        self.create_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_DialogSaveButton), "Create")
        self.create_button.clicked.connect(lambda: self.create(reconstruct=False))
        self.create_run_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay),
                                             "Create and reconstruct")
        self.create_run_button.clicked.connect(lambda: self.create(reconstruct=True))
        self.create_run_button.setDefault(True)
        cancel = QPushButton("Cancel")
        cancel.clicked.connect(self._on_cancel_clicked)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (cancel, self.create_button, self.create_run_button):
            buttons.addWidget(button)
        return buttons

    # ------------------------------------------------------------------ settings
    def settings(self) -> Settings:
        """The project's settings: preferences < preset < advanced changes < the page's own rows (resolution,
        scene detail, the time budget's minutes)."""
        return self._settings_for(self.preset.currentData())

    def _settings_for(self, key: str, advanced: bool = True) -> Settings:
        """The settings the preset entry ``key`` would give (without the advanced changes if not ``advanced``)."""
        changes = dict(preset(DEFAULT_PRESET if key == BUDGET_KEY else key).values)
        if advanced:
            changes.update(self.advanced)
        changes["original_resolution"] = self.original.isChecked()
        changes["scene_detail"] = self.detail.value()
        changes["video_frames"] = self.frames.value()
        if key == BUDGET_KEY:
            changes["time_budget_minutes"] = float(self.minutes.value())
        return self.base_settings.updated(changes, "new project")

    def select_preset(self, name_or_key: str) -> None:
        """Choose a preset by name or key ("Fast preview", "fast"...; "budget" for the time budget)."""
        wanted = name_or_key.lower()
        key = BUDGET_KEY if wanted in (BUDGET_KEY, BUDGET_NAME.lower()) else preset(name_or_key).key
        self.preset.setCurrentIndex(self.preset.findData(key))

    def _on_preset_changed(self) -> None:
        key = self.preset.currentData()
        self.minutes.setVisible(key == BUDGET_KEY)
        values = preset(DEFAULT_PRESET if key == BUDGET_KEY else key).values
        if "scene_detail" in values:  # a preset that sets the scene detail shows it in the row
            self.detail.set_value(values["scene_detail"])
        self._schedule_estimate()

    def _on_advanced_requested(self) -> None:
        dialog = QDialog(self)
        dialog.setWindowTitle("Advanced settings for this project")
        dialog.resize(680, 520)
        form = SettingsForm(self.settings())
        form.set_estimate(self.detail_estimate)
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
        """The settings a row shows go to the row (a time budget selects the Time budget entry, none leaves
        it for Balanced); the rest that differ from what the preset gives become the advanced changes."""
        budget = settings.time_budget_minutes
        if budget:
            self.minutes.setValue(min(self.minutes.maximum(), max(self.minutes.minimum(), round(budget))))
            self.select_preset(BUDGET_KEY)
        elif self.preset.currentData() == BUDGET_KEY:
            self.select_preset(DEFAULT_PRESET)
        self.detail.set_value(settings.scene_detail)
        self.frames.blockSignals(True)  # the check below applies it
        self.frames.setValue(settings.video_frames)
        self.frames.blockSignals(False)
        plain = self._settings_for(self.preset.currentData(), advanced=False)
        self.advanced = {k: v for k, v in settings.values.items() if k not in ROW_KEYS and v != plain.values[k]}
        self.original.setChecked(settings.original_resolution)
        self._on_settings_changed()

    def _on_settings_changed(self) -> None:
        if self.sources:
            self._check()
        self._schedule_estimate()

    # ------------------------------------------------------------------ expected training time
    def _schedule_estimate(self) -> None:
        """Estimate again shortly (changes in quick succession make one estimate); older results are stale."""
        self._estimate_generation += 1
        self._estimate_timer.start()

    def _estimate(self) -> None:
        if self._estimating:  # one at a time: the next starts when this one is back
            self._estimate_again = True
            return
        if self.busy.isVisible():
            return  # photos being checked or imported: estimated when that is done
        sizes = self.photo_sizes()
        if not sizes:
            self._show_estimates({}, None)
            return
        keys = [self.preset.itemData(i) for i in range(self.preset.count())]
        try:
            entries = {key: self._settings_for(key) for key in keys}
        except SettingsError as exc:
            self._show_estimates({}, None, f"No training time estimate: {exc}.")
            return
        generation, current, steps = self._estimate_generation, self.preset.currentData(), self.detail.values()
        self._estimating = True
        if self.estimate_label.isHidden():
            self.estimate_label.setText("Estimating the training time on this computer…")
            self.estimate_label.show()
        self.workers.submit(lambda: estimate_entries(entries, current, sizes, steps),
                            lambda found: self._on_estimated(generation, *found),
                            lambda message, _t: self._on_estimate_failed(generation, message))

    def _estimate_back(self, generation: int) -> bool:
        """An estimate came back: start the one asked for meanwhile; whether this one is still current."""
        self._estimating = False
        if self._estimate_again:
            self._estimate_again = False
            self._estimate()
        return generation == self._estimate_generation

    def _on_estimated(self, generation: int, entries: dict[str, dict[str, Any]], detail: dict[str, Any] | None
                      ) -> None:
        if self._estimate_back(generation):
            self._show_estimates(entries, detail)

    def _on_estimate_failed(self, generation: int, message: str) -> None:
        if self._estimate_back(generation):
            sentence = message[:1].upper() + message[1:] if "estimate" in message else \
                f"Could not estimate the training time: {message}"
            self._show_estimates({}, None, sentence if sentence.endswith((".", "!", "?")) else sentence + ".")

    def _show_estimates(self, entries: dict[str, dict[str, Any]], detail: dict[str, Any] | None,
                        error: str | None = None) -> None:
        """Each preset entry's expected duration, the current one's figures under the form, and the cost of
        each scene-detail step; plain names (and ``error``, if any) without estimates."""
        for i in range(self.preset.count()):
            key = self.preset.itemData(i)
            name = BUDGET_NAME if key == BUDGET_KEY else preset(key).name
            found = entries.get(key)
            if found is None:
                text = name
            elif key == BUDGET_KEY:  # its duration is the budget; what it buys is the number of iterations
                iterations = int(float(f"{found['iterations']:.2g}"))
                text = f"{name} — about {iterations:,} iterations here"
            else:
                text = f"{name} — {format_about(found['expected_total_sec'])} here"
            self.preset.setItemText(i, text)
        self.detail_estimate = detail
        self.detail.set_estimate(detail)
        found = entries.get(self.preset.currentData())
        if found is not None:
            gaussians = f"up to {found['max_gaussians']:,} Gaussians, " if found.get("max_gaussians") else ""
            text = (f"{format_about(found['expected_total_sec']).capitalize()} of training on this computer: "
                    f"{found['iterations']:,} iterations, {gaussians}about {format_memory_mb(found['memory_mb'])} "
                    "of memory")
            if not found.get("calibrated", True):
                text += " (rough until the first training run on this computer)"
            self.estimate_label.setText(text)
            self.estimate_label.setToolTip(found.get("describe", ""))
        else:
            self.estimate_label.setText(error or "")
            self.estimate_label.setToolTip("")
        self.estimate_label.setVisible(bool(self.estimate_label.text()))
        self.sig_estimated.emit()

    # ------------------------------------------------------------------ photos
    def start(self, sources: list[str]) -> None:
        """Begin a new project with the dropped ``sources`` (files and folders)."""
        self.sources = []
        self.sizes = {}
        self.video_frames = {}
        self.advanced = {}
        self.detail.set_value(self.base_settings.scene_detail)
        self.frames.blockSignals(True)
        self.frames.setValue(self.base_settings.video_frames)
        self.frames.blockSignals(False)
        self.grid.clear()
        self.name_edit.setText(self._free_name(suggested_name(sources)))
        self.add_sources(sources)

    def add_sources(self, sources: list[str]) -> None:
        if self._importing:  # a check now would stop the import; the files can be added to the project after
            self.sig_message.emit("The project is being created: add these files to it once it is open")
            return
        self.sources += [s for s in sources if s not in self.sources]
        self._check()

    def _free_name(self, base: str) -> str:
        name, n = base or "Project", 2
        while self.library.find(name) is not None:
            name, n = f"{base} {n}", n + 1
        return name

    def _begin_work(self, importing: bool = False) -> threading.Event:
        """A new check (the check running is stopped: its result would be stale) or import; the Stop button
        stops it."""
        stop = threading.Event()
        if importing:
            self._import_stop = stop
        else:
            if self._check_stop is not None:
                self._check_stop.set()
            self._check_stop = stop
        self.busy.setValue(0)
        self.busy.setFormat("%p%")
        self.busy.show()
        self.stop_button.show()
        self.stop_button.setEnabled(True)
        return stop

    def _running_stop(self) -> threading.Event | None:
        return self._import_stop if self._importing else self._check_stop

    def _end_work(self) -> None:
        self.busy.hide()
        self.stop_button.hide()

    def stop(self) -> None:
        """Stop the check or import that is running; nothing of it is kept."""
        stop = self._running_stop()
        if stop is not None and self.busy.isVisible():
            stop.set()
            self.stop_button.setEnabled(False)
            self.busy.setFormat("Stopping…")

    def _on_cancel_clicked(self) -> None:
        """Leaving the page stops a check (an import goes on and opens its project when done)."""
        if self._check_stop is not None:
            self._check_stop.set()
        self.sig_cancel_requested.emit()

    def _check(self, videos_only: list[str] | None = None) -> None:
        """Check the dropped files (or, after a change of the frame count, only the accepted ``videos_only``)."""
        self._generation += 1
        self._estimate_generation += 1  # an estimate for the photos before this check is stale
        generation = self._generation
        stop = self._begin_work()
        sources = list(videos_only if videos_only is not None else self.sources)
        self.summary.setText(f"Checking {len(sources)} dropped item(s)…" if videos_only is None else
                             f"Choosing the frames of {len(sources)} video(s) again…")
        settings = self.settings()
        self.workers.submit(
            lambda progress: check_photos(sources, settings, stoppable(progress, stop, "the check was stopped")),
            lambda items: self._on_checked(generation, items, videos_only),
            lambda message, _t: self._on_check_failed(generation, message, stop.is_set(), videos_only),
            self._on_progress)
        self._update_buttons()

    def _on_check_failed(self, generation: int, message: str, stopped: bool = False,
                         videos_only: list[str] | None = None) -> None:
        """The check failed or was stopped: what it was checking leaves the grid (all of it, or the videos
        whose frames were being chosen again)."""
        if generation != self._generation:
            return
        self._end_work()
        for item in reversed(self.items()):
            if videos_only is None or item.data(SOURCE_ROLE) in videos_only:
                self.grid.takeItem(self.grid.row(item))
        for source in videos_only if videos_only is not None else list(self.video_frames):
            self.video_frames.pop(source, None)
        if videos_only is None:
            self.sizes = {}
        self._update_summary()
        what = "files" if videos_only is None else "videos"
        self.summary.setText(f"Stopped checking: drop the {what} again to check them." if stopped else
                             f"Could not check the {what}: {message}")
        self._update_frames_row()
        self._schedule_estimate()

    def _on_frames_changed(self) -> None:
        """A new frame count: the accepted videos choose their frames again (a check that is running is started
        again with it)."""
        videos = [item.data(SOURCE_ROLE) for item in self.items() if item.data(KIND_ROLE) == "video"]
        if self.busy.isVisible() and not self._importing:
            self._check()
        elif videos and not self._importing:
            self._check(videos)
        self._schedule_estimate()

    def _on_checked(self, generation: int, items: list[CheckedPhoto], videos_only: list[str] | None = None) -> None:
        if generation != self._generation:
            return  # an older check, superseded by a newer drop or settings change
        self._end_work()
        if videos_only is None:
            self.grid.clear()
            self.sizes, self.video_frames = {}, {}
            row = 0
        else:  # the videos' items and their frames are replaced where the first of them was
            stale = [i for i in range(self.grid.count()) if self.grid.item(i).data(SOURCE_ROLE) in videos_only]
            row = stale[0] if stale else self.grid.count()
            for i in reversed(stale):
                self.grid.takeItem(i)
            for source in videos_only:
                self.video_frames.pop(source, None)
        for item in items:
            if item.reason is None and item.kind == "photo" and item.width and item.height:
                self.sizes[item.source] = (item.width, item.height)
            if item.kind == "video" and item.video is not None:
                self.video_frames[item.source] = (item.video.chosen, (item.video.info.width, item.video.info.height))
            self.grid.insertItem(row, self._grid_item(item))
            row += 1
        self._update_summary()
        self._update_frames_row()
        self._schedule_estimate()
        self.sig_checked.emit()

    def _grid_item(self, item: CheckedPhoto) -> QListWidgetItem:
        name = Path(item.source).name
        video = item.video
        if item.reason is not None:
            text, tip = f"{name}\n{item.reason}", f"{item.source}\nnot imported: {item.reason}"
        elif item.kind == "video" and video is not None:
            text = f"{name}\n{video.chosen} frames"
            tip = "\n".join([item.source, video.describe(), *video.notes])
        elif item.kind == "frame" and video is not None:
            when = format_time(item.time or 0.0)
            text, tip = f"{name}\n{when}", f"frame at {when} of {item.source}\n{item.width}×{item.height} px"
        else:
            text, tip = f"{name}\n{item.width}×{item.height}", f"{item.source}\n{item.width}×{item.height} px"
        entry = QListWidgetItem(badged_icon(item.thumb, item.reason is not None, self._placeholder,
                                            video=item.kind == "video"), text)
        entry.setToolTip(tip)
        entry.setData(SOURCE_ROLE, item.source)
        entry.setData(REASON_ROLE, item.reason)
        entry.setData(KIND_ROLE, item.kind)
        if item.reason is not None:
            entry.setForeground(QColor("#d64541"))
        if item.kind == "frame":  # removed with its video, not one by one
            entry.setFlags(Qt.ItemFlag.ItemIsEnabled)
        return entry

    def items(self) -> list[QListWidgetItem]:
        return [self.grid.item(i) for i in range(self.grid.count())]

    def accepted_sources(self) -> list[str]:
        """The photos and videos to import (a video once, not once per frame)."""
        return [item.data(SOURCE_ROLE) for item in self.items()
                if item.data(REASON_ROLE) is None and item.data(KIND_ROLE) != "frame"]

    def frame_items(self, video: str | None = None) -> list[QListWidgetItem]:
        """The items of the frames the videos (or ``video``) would give, in grid order."""
        return [item for item in self.items() if item.data(KIND_ROLE) == "frame"
                and (video is None or item.data(SOURCE_ROLE) == video)]

    def photo_sizes(self) -> list[tuple[int, int]]:
        """The original size of every photo that would be imported, a video's once per frame it gives."""
        sizes = []
        for source in self.accepted_sources():
            if source in self.sizes:
                sizes.append(self.sizes[source])
            elif source in self.video_frames:
                count, size = self.video_frames[source]
                sizes += [size] * count
        return sizes

    def remove_selected(self) -> None:
        removed = {item.data(SOURCE_ROLE) for item in self.grid.selectedItems()}
        for item in self.grid.selectedItems():
            self.grid.takeItem(self.grid.row(item))
        for item in self.frame_items():
            if item.data(SOURCE_ROLE) in removed:
                self.grid.takeItem(self.grid.row(item))
        self._update_summary()
        self._update_frames_row()
        self._schedule_estimate()

    def _update_frames_row(self) -> None:
        """The frame count is offered while there are videos among the dropped files."""
        videos = any(item.data(KIND_ROLE) == "video" for item in self.items())
        self._form.setRowVisible(self.frames, videos or self.frames.value() != self.base_settings.video_frames)

    def _update_summary(self) -> None:
        accepted = self.accepted_sources()
        videos = [source for source in accepted if source in self.video_frames]
        photos = len(accepted) - len(videos)
        rejected = sum(1 for item in self.items() if item.data(REASON_ROLE) is not None)
        if videos:
            frames = sum(self.video_frames[source][0] for source in videos)
            text = f"{photos} photo(s) and {frames} frame(s) of {len(videos)} video(s) will be imported"
        else:
            text = f"{photos} photo(s) will be imported"
        self.summary.setText(text + (f", {rejected} file(s) rejected" if rejected else ""))
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
        stop = self._begin_work(importing=True)
        self._importing = True
        self._update_buttons()
        self.summary.setText(f"Importing {len(sources)} file(s) into {name!r}…")
        message = f"the import was stopped: nothing was imported and project {name!r} was not created"
        self.workers.submit(
            lambda progress: create_and_import(self.library, name, settings, sources,
                                               stoppable(progress, stop, message)),
            lambda folder: self._on_created(folder, reconstruct), self._on_create_failed, self._on_progress)

    def _on_progress(self, fraction: float, message: str) -> None:
        stop = self._running_stop()
        if stop is not None and stop.is_set():
            return  # "Stopping…" stays until the work has stopped
        self.busy.setValue(int(fraction * 1000))
        self.busy.setFormat(message or "%p%")

    def _on_created(self, folder: str, reconstruct: bool) -> None:
        self._importing = False
        self._end_work()
        self.sources = []
        self.sizes, self.video_frames = {}, {}
        self.grid.clear()
        self._update_summary()
        self._update_frames_row()
        self._schedule_estimate()
        self.sig_project_created.emit(folder, reconstruct)

    def _on_create_failed(self, message: str, _trace: str) -> None:
        self._importing = False
        self._end_work()
        self._update_summary()
        stopped = message.startswith("the import was stopped")
        self.summary.setText(f"{message[:1].upper()}{message[1:]}." if stopped else
                             f"Could not create the project: {message}")
        self._schedule_estimate()
        self.sig_message.emit(message)
