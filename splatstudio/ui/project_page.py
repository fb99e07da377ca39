"""Project page: the stages with their state, progress, elapsed time and ETA; Reconstruct / Resume /
Cancel / Retry from a stage (all through the :class:`RunQueue`); the failure panel with what to try and
the details; the run report; exports; and the 3D viewer when the render package is available.

Its rooms: the stage table (`stage_table`), the 3D view and the loading of models into it (`viewer_panel`),
Export…, Clean up… and Edit… of the result (`result_tools`), the stage states, report and failure panel
(`run_status`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from splatstudio.model import humanize
from splatstudio.model.project import (
    CANCELLED,
    DONE,
    FAILED,
    INTERRUPTED,
    RUNNING,
    STAGE_TITLES,
    STAGES,
    TRAIN_CAMERAS,
    Project,
    ProjectError,
    trained_iterations,
)
from splatstudio.model.settings import Settings
from splatstudio.pipeline.events import Preview, Progress
from splatstudio.pipeline.outcome import RunOutcome
from splatstudio.pipeline.plan import stage_weights
from splatstudio.pipeline.train import latest_checkpoint, measure_command, uses_bundled_trainer
from splatstudio.services.runs import ProjectRun, RunQueue
from splatstudio.ui.compare_panel import ComparePanel
from splatstudio.ui.export_dialog import ExportDialog
from splatstudio.ui.result_tools import ResultTools
from splatstudio.ui.run_status import (
    WAITING,
    DetailsDialog,
    FailurePanel,
    StageState,
    kept_result_words,
    monotonic_at,
    read_log_tail,
    run_report,
)
from splatstudio.ui.stage_table import StageTable
from splatstudio.ui.viewer_panel import ModelRequest, ViewerPanel
from splatstudio.ui.workers import SignalLinks, Workers

RESUMABLE = {FAILED, CANCELLED, INTERRUPTED, "incomplete"}


VIEW_CONTROLS = ("3D view: drag to orbit, right-drag to pan, wheel to zoom, W A S D Q E to fly; ← → step "
                 "through the photos' viewpoints; R resets the view. Edit…: M rectangle, L lasso, B brush, "
                 "V navigate (right-drag orbits), Delete, H hide, I isolate, U show all, Ctrl+Z undo")
CONFIRM_CANCEL_AFTER = 60.0  # seconds a stage has worked before a cancel asks first

class ProjectPage(QWidget):
    """One project. The main window calls :meth:`show_project`; the page follows the project's run."""

    sig_title_changed = Signal(str)
    """The window title for this project (name, and the overall progress while it runs)."""
    sig_back_requested = Signal()
    """The person wants the library page."""
    sig_message = Signal(str)
    """A sentence for the status bar."""

    def __init__(self, queue: RunQueue, workers: Workers, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.queue = queue
        self.workers = workers
        self.app_settings = settings
        """The window's settings (``MainWindow.apply_settings`` replaces them): the application settings a
        page acts on (``live_preview``) come from here, not from the project, which does not keep them."""
        self.project: Project | None = None
        self.run: ProjectRun | None = None
        self.question: QMessageBox | None = None  # a question shown before something that loses work
        self._weights: tuple[ProjectRun | None, dict[str, float]] = (None, {})  # stage_weights of self.run
        self.states: dict[str, StageState] = {}
        self.last_outcome: RunOutcome | None = None
        self._links = SignalLinks()
        self._previewed = False  # a training preview of the followed run was shown (the next keeps the camera)
        self._build()
        queue.sig_run_started.connect(self._on_run_started)
        queue.sig_run_finished.connect(self._on_run_finished)
        queue.sig_run_refused.connect(self._on_run_refused)
        queue.sig_changed.connect(self._update_buttons)
        self._clock = QTimer(self)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._update_times)
        self._clock.start()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        header = self._build_header()
        self.tools = ResultTools(self.workers, self)
        self.tools.sig_message.connect(self.sig_message.emit)
        self.export_button, self.cleanup_button, self.edit_button = (
            self.tools.export_button, self.tools.cleanup_button, self.tools.edit_button)
        self.cleanup, self.edit = self.tools.cleanup, self.tools.edit
        self.stage_list = StageTable()
        self.stage_list.sig_menu_requested.connect(self._on_stage_menu_requested)
        self.items, self.bars = self.stage_list.items, self.stage_list.bars
        self.failure = FailurePanel()
        self.failure.sig_details_requested.connect(self._on_details_requested)
        self.failure.hide()
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.status_label)
        left_layout.addWidget(self.stage_list)
        left_layout.addWidget(self.failure)
        left_layout.addWidget(self._build_report(), 1)
        left_layout.addWidget(self.cleanup)
        left_layout.addWidget(self.edit)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self._build_view_side())
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([520, 480])
        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(splitter, 1)

    def _build_header(self) -> QHBoxLayout:
        """Back to the library, the project's name and status, how far a run goes, and the run buttons."""
        style = self.style()
        back = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_ArrowBack), "Library")
        back.clicked.connect(self.sig_back_requested.emit)
        self.name_label = QLabel()
        self.name_label.setObjectName("projectTitle")
        self.status_label = QLabel()
        self.status_label.setObjectName("projectStatus")
        self.reconstruct_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay), "Reconstruct")
        self.reconstruct_button.setToolTip("Run every stage from the start (Ctrl+R)")
        self.reconstruct_button.clicked.connect(self.reconstruct)
        self.resume_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_MediaSkipForward), "Resume")
        self.resume_button.setToolTip("Go on from the first stage that is not done")
        self.resume_button.clicked.connect(self.resume)
        self.cancel_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_MediaStop), "Cancel")
        self.cancel_button.setToolTip("Stop the run; the project can be resumed (Ctrl+.)")
        self.cancel_button.clicked.connect(self.cancel)
        self.until = QComboBox()
        self.until.setObjectName("runUntil")
        for stage in STAGES:
            self.until.addItem(STAGE_TITLES[stage], stage)
        self.until.setCurrentIndex(len(STAGES) - 1)
        self.until.setToolTip("The last stage a run goes to")
        header = QHBoxLayout()
        header.addWidget(back)
        header.addWidget(self.name_label, 1)
        header.addWidget(QLabel("Run up to"))
        header.addWidget(self.until)
        for button in (self.reconstruct_button, self.resume_button, self.cancel_button):
            header.addWidget(button)
        return header

    def _build_report(self) -> QGroupBox:
        """The run report, with Export…, Clean up… and Edit… under it."""
        self.report = QLabel()
        self.report.setObjectName("runReport")
        self.report.setTextFormat(Qt.TextFormat.RichText)
        self.report.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.report.setWordWrap(True)
        self.report.linkActivated.connect(lambda _link: self.compare_button.setChecked(True))
        report_scroll = QScrollArea()
        report_scroll.setWidgetResizable(True)
        report_scroll.setFrameShape(QFrame.Shape.NoFrame)
        report_scroll.setWidget(self.report)
        report_box = QGroupBox("Report")
        report_layout = QVBoxLayout(report_box)
        report_layout.addWidget(report_scroll, 1)
        report_layout.addLayout(self.tools.buttons())
        return report_box

    def _build_view_side(self) -> QWidget:
        """The 3D view and the photo beside it, where the view is, and how to move in it."""
        self.viewer_area = ViewerPanel(self.workers)
        self.viewer_placeholder = self.viewer_area.placeholder
        self.viewer_area.sig_model_loaded.connect(self._on_model_ready)
        self.viewer_area.sig_load_failed.connect(self._on_model_failed)
        # how to move in the 3D view, and which photo's viewpoint it shows (from the viewer)
        self.view_hint = QLabel(VIEW_CONTROLS, wordWrap=True)
        self.view_hint.setObjectName("viewHint")
        self.view_hint.setEnabled(False)  # the palette's quieter text
        self.view_place = QLabel()
        self.view_place.setObjectName("viewPlace")
        # the photo beside the render from its viewpoint, to judge the quality by eye
        self.compare_button = QPushButton("Compare with the photo")
        self.compare_button.setObjectName("compareButton")
        self.compare_button.setCheckable(True)
        self.compare_button.setEnabled(False)
        self.compare_button.setToolTip("Show the photo beside the render from its viewpoint (← → step through "
                                       "the photos; those held out from training come first)")
        self.compare_button.toggled.connect(self._on_compare_toggled)
        self.compare = ComparePanel(self.workers)
        self.compare.sig_message.connect(self.sig_message.emit)
        self.compare.hide()
        # the render and the photo share the row equally (the viewer's 640-pixel size hint would win)
        self.viewer_area.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        view_split = QHBoxLayout()
        view_split.setContentsMargins(0, 0, 0, 0)
        view_split.addWidget(self.viewer_area, 1)
        view_split.addWidget(self.compare, 1)
        place_row = QHBoxLayout()
        place_row.addWidget(self.view_place, 1)
        place_row.addWidget(self.compare_button)
        viewer_side = QWidget()
        viewer_layout = QVBoxLayout(viewer_side)
        viewer_layout.setContentsMargins(0, 0, 0, 0)
        viewer_layout.addLayout(view_split, 1)
        viewer_layout.addLayout(place_row)
        viewer_layout.addWidget(self.view_hint)
        return viewer_side

    # ------------------------------------------------------------------ showing a project
    def show_project(self, folder: str) -> None:
        """Show the project in ``folder`` and follow its run if it has one."""
        self._links.clear()
        self.run = None
        self.last_outcome = None
        self.project = Project(folder)
        self.name_label.setText(f"<h2>{self.project.name}</h2>")
        self.states = {stage: StageState() for stage in STAGES}
        self.failure.hide()
        self.compare_button.setChecked(False)
        self.compare_button.setEnabled(False)  # until this project's model and cameras are shown
        self.tools.project = self.project
        self.tools.reset()  # until this project's result is shown
        self._load_records(keep_live=False)
        run = self.queue.active.get(str(self.project.folder))
        if run is not None:
            self._follow(run)
        self._show_recorded_failure()
        self._update_all()
        self._ensure_viewer()  # created when the page opens, not when the first preview arrives mid-run
        self._update_viewer()

    @property
    def folder(self) -> str | None:
        return str(self.project.folder) if self.project is not None else None

    def _load_records(self, keep_live: bool) -> None:
        """Stage states from the records; with ``keep_live`` the followed run's states win."""
        assert self.project is not None
        try:
            records = self.project.stage_records()
        except ProjectError as exc:
            self.sig_message.emit(str(exc))
            return
        touched = set(self.run.plan.stages) if keep_live and self.run is not None else set()
        for stage in STAGES:
            record = records.get(stage)
            state = self.states[stage]
            if record is not None:
                state.duration = record.duration
                state.message = record.message
            if stage in touched and state.state != WAITING:
                continue
            state.state = record.status if record is not None else WAITING
            state.fraction = 1.0 if state.state == DONE else 0.0
            state.note = ""
            state.finish.clear()
            if stage == "train" and state.state in (CANCELLED, INTERRUPTED):
                self._show_checkpoint(state)
        report = run_report(records)
        shown = self.project.shown_result()
        train = records.get("train")
        held = train.figures.get("held_out_views") if train is not None else None
        if shown is not None and shown[2]:
            kept = self.project.kept_result() or {}
            report += "<p>" + kept_result_words(kept) + "</p>"
            held = kept.get("held_out_views")
        model_dir = self.project.path("train")
        measurable = shown is not None and not shown[2] and model_dir.is_dir() and uses_bundled_trainer(
            self.project.settings)
        self.compare.set_project(self.folder, held if isinstance(held, int) else 0,
                                 model_dir if measurable else None,
                                 measure_command(self.project.settings, model_dir) if measurable else [])
        if shown is not None and shown[1] is not None:
            report += ("<p><a href='#compare'>Compare the render with the photos</a> — side by side from each "
                       "photo's viewpoint, the held-out ones first.</p>")
        self.report.setText(report)
        trained = bool(trained_iterations(self.project.path("train")))  # a checkpoint alone exports nothing
        self.export_button.setEnabled(shown is not None or trained)

    def _show_checkpoint(self, state: StageState) -> None:
        """A stopped training shows how far it got and that Resume goes on from there, not from 0 %."""
        assert self.project is not None
        latest = latest_checkpoint(self.project.path("train"))
        if latest is None:
            return
        iteration = latest[0]
        planned = max(int(self.project.settings.iterations), iteration, 1)
        state.fraction = iteration / planned
        state.note = f"resumes from iteration {iteration:,} of {planned:,}"

    def _show_recorded_failure(self) -> None:
        """After (re)opening a failed project: the panel from the failed stage's record."""
        assert self.project is not None
        state, stage = self.project.status()
        if state not in (FAILED, INTERRUPTED) or stage is None or self.run is not None:
            return
        record = self.project.stage_record(stage)
        error = (record.error or {}) if record else {}
        self.failure.show_failure(state, stage, error.get("message") or (record.message if record else ""),
                                  error.get("hint", ""))
        self._load_failure_log(stage)

    def _load_failure_log(self, stage: str) -> None:
        assert self.project is not None
        path, folder = self.project.log_path(stage), self.folder
        self.workers.submit(lambda: read_log_tail(path, 8000),
                            lambda text: self.failure.log.setPlainText(text) if self.folder == folder else None)

    # ------------------------------------------------------------------ following a run
    def _follow(self, run: ProjectRun) -> None:
        self._links.clear()
        self.run = run
        self.failure.hide()
        assert self.project is not None
        records = self.project.stage_records()
        for stage in run.plan.stages:
            record = records.get(stage)
            if record is None or record.run_id != run.run_id or record.status != DONE:
                self.states[stage] = StageState()  # not (yet) run in this run: the old record is stale
        current = run.current_stage
        if current is not None:
            record = records.get(current)
            started = record.started if record is not None and record.run_id == run.run_id else None
            self.states[current].state, self.states[current].started = RUNNING, monotonic_at(started)
        self._links.connect(run.sig_stage_started, self._on_stage_started)
        self._links.connect(run.sig_stage_finished, self._on_stage_finished)
        self._links.connect(run.sig_progress, self._on_progress)
        self._links.connect(run.sig_event, self._on_event)
        self._previewed = False

    def _on_run_started(self, folder: str, run: ProjectRun) -> None:
        if folder == self.folder:
            self._follow(run)
            self._update_all()

    def _on_stage_started(self, stage: str) -> None:
        state = self.states[stage]
        state.state, state.started, state.fraction = RUNNING, time.monotonic(), 0.0
        state.finish.clear()
        self._update_stage(stage)
        self._update_buttons()
        self.refresh_title()

    def _on_progress(self, stage: str, event: Progress) -> None:
        state = self.states.get(stage)
        if state is None:
            return
        eta = event.figures.get("eta_sec")
        state.observe(event.fraction, float(eta) if isinstance(eta, (int, float)) else None)
        state.message = event.message
        self._update_stage(stage)
        self.refresh_title()

    def _on_stage_finished(self, stage: str, status: str) -> None:
        state = self.states[stage]
        state.state = status
        if status == DONE:
            state.fraction = 1.0
        if state.started is not None:
            state.duration = time.monotonic() - state.started
        self._load_records(keep_live=True)  # the stage's record now holds its duration and figures
        self._update_stage(stage)
        self.refresh_title()

    def _on_run_finished(self, folder: str, outcome: RunOutcome) -> None:
        if folder != self.folder:
            return
        self._load_records(keep_live=True)
        self._links.clear()
        self.run = None
        self.last_outcome = outcome
        if outcome.status == FAILED and outcome.stage is not None:
            self.failure.show_failure(outcome.status, outcome.stage, outcome.message, outcome.hint)
            self._load_failure_log(outcome.stage)
        self._update_all()
        self._update_viewer()

    def _on_run_refused(self, folder: str, reason: str) -> None:
        if folder == self.folder:
            self.sig_message.emit(reason)
            self._update_all()

    # ------------------------------------------------------------------ commands
    def _until(self) -> str | None:
        stage = self.until.currentData()
        return None if stage == STAGES[-1] else stage

    def reconstruct(self) -> None:
        """Run every stage from the first. A project that never ran simply starts; one that has finished
        stages asks first, since its results are recomputed and the current ones deleted."""
        if self.project is None:
            return
        state, _stage = self.project.status()
        done = [stage for stage, record in self.project.stage_records().items() if record.status == DONE]
        if state == "new" or not done:
            self._enqueue(None if state == "new" else STAGES[0])
            return
        gaussians = self.project.summary()["gaussian_count"]
        if self.project.shown_result() is not None:
            result = f"The current result{f' ({gaussians:,} Gaussians)' if gaussians else ''} stays in the 3D " \
                     "view and Export until the new one replaces it."
        else:
            result = "Their results so far are deleted when the run starts."
        self._ask("Reconstruct from the start",
                  f"Run every stage of {self.project.name!r} again, from feature extraction?",
                  f"{len(done)} finished stage(s) are computed anew. {result} To finish only what is left, "
                  "use Resume.",
                  "Reconstruct", lambda: self._enqueue(STAGES[0]))

    def _ask(self, title: str, text: str, detail: str, action: str, then) -> None:
        """A question before something that loses work: ``then()`` runs only on ``action``; No is the default
        (Enter and Esc keep everything as it is). Non-blocking; the box is ``self.question`` while shown."""
        box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.NoButton, self)
        box.setInformativeText(detail)
        yes = box.addButton(action, QMessageBox.ButtonRole.DestructiveRole)
        keep = box.addButton(QMessageBox.StandardButton.No)
        box.setDefaultButton(keep)
        box.setEscapeButton(keep)

        def answered() -> None:
            self.question = None
            if box.clickedButton() is yes:
                then()

        box.finished.connect(answered)
        self.question = box
        box.open()

    def resume(self) -> None:
        self._enqueue(None)

    def retry_from(self, stage: str) -> None:
        self._enqueue(stage)

    def cancel(self) -> None:
        """Stop the project's run (or take it off the queue); asks first when the running stage has more
        than a minute of work in it."""
        if self.folder is None or not self.queue.is_queued(self.folder):
            return
        stage = self.run.current_stage if self.run is not None else None
        elapsed = self.states[stage].elapsed() if stage in self.states else None
        if stage is None or elapsed is None or elapsed < CONFIRM_CANCEL_AFTER:
            self._cancel_now()
            return
        resumes = ("training resumes from its last checkpoint" if stage == "train"
                   else f"{STAGE_TITLES[stage]} starts again")
        self._ask("Cancel the run", f"Stop reconstructing {self.project.name!r}?",
                  f"{STAGE_TITLES[stage]} has been working for {humanize.format_duration(elapsed)}. "
                  f"The project stays resumable: {resumes} on Resume.", "Stop the run", self._cancel_now)

    def _cancel_now(self) -> None:
        if self.folder is not None and self.queue.is_queued(self.folder):
            self.queue.remove(self.folder)
            self.sig_message.emit("cancelling… the project stays resumable")

    def _enqueue(self, from_stage: str | None) -> None:
        if self.project is None:
            return
        self.failure.hide()
        if not self.queue.enqueue(self.project, from_stage, self._until()):
            self.sig_message.emit(f"{self.project.name!r} is already queued or running")
        self._update_all()

    def _on_stage_menu_requested(self, stage: str, where: QPoint) -> None:
        if self.project is None:
            return
        menu = QMenu(self)
        retry = menu.addAction(f"Retry from {STAGE_TITLES[stage]}")
        retry.setEnabled(not self.queue.is_queued(self.folder))
        retry.triggered.connect(lambda: self.retry_from(stage))
        log = menu.addAction("Open this stage's log")
        log.triggered.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.project.log_path(stage)))))
        menu.popup(where)

    # ------------------------------------------------------------------ display
    def _update_all(self) -> None:
        for stage in STAGES:
            self._update_stage(stage)
        self._update_buttons()
        self.refresh_title()

    def _update_stage(self, stage: str) -> None:
        self.stage_list.show_state(stage, self.states[stage])

    def _update_times(self) -> None:
        for stage, state in self.states.items():
            if state.state == RUNNING:
                self._update_stage(stage)

    def overall_fraction(self) -> float | None:
        """Progress of the followed run over its planned stages, each weighted by the time it is expected to
        take (:func:`stage_weights`), or None when nothing runs."""
        if self.run is None:
            return None
        stages = self.run.plan.stages
        if self._weights[0] is not self.run:  # once a run: the photo count is read from import.json
            project = self.run.project
            self._weights = (self.run, stage_weights(stages, len(project.image_names()),
                                                     int(project.settings.iterations)))
        weights = self._weights[1]
        done = sum(weights[s] * (self.states[s].fraction if self.states[s].state == RUNNING else
                                 (1.0 if self.states[s].state == DONE else 0.0)) for s in stages)
        return done / max(sum(weights.values()), 1e-9)

    def refresh_title(self) -> None:
        if self.project is None:
            return
        fraction = self.overall_fraction()
        title = self.project.name + (f" — {fraction * 100:.0f}%" if fraction is not None else "")
        self.sig_title_changed.emit(title)

    def _update_buttons(self) -> None:
        if self.project is None:
            return
        folder = self.folder
        active = folder in self.queue.active
        waiting = self.queue.position(folder) is not None
        try:
            state, stage = self.project.status()
        except ProjectError:
            return
        if active:
            text = f"running: {STAGE_TITLES.get(self.run.current_stage or '', 'starting')}" if self.run else "running"
        elif waiting:
            text = f"queued (position {self.queue.position(folder) + 1})"
        else:
            text = self.project.describe_status()
        self.status_label.setText(f"Status: <b>{text}</b> — {len(self.project.image_names())} photos")
        self.cancel_button.setEnabled(active or waiting)
        self.reconstruct_button.setEnabled(not (active or waiting))
        self.resume_button.setEnabled(not (active or waiting) and state in RESUMABLE)

    # ------------------------------------------------------------------ details, export, viewer
    def _on_details_requested(self) -> None:
        stage = (self.last_outcome.stage if self.last_outcome else None) or (self.project.status()[1]
                                                                               if self.project else None)
        if self.project is None or stage is None:
            return
        record = self.project.stage_record(stage)
        trace = ((record.error or {}).get("traceback") if record else "") or "(no traceback: the stage did not " \
            "raise a Python error — it was stopped or killed, or reported the problem itself)"
        path = self.project.log_path(stage)
        dialog = DetailsDialog(f"{STAGE_TITLES[stage]} — details", trace, path, self)
        self.workers.submit(lambda: read_log_tail(path), dialog.set_log)
        dialog.open()

    def open_export_dialog(self) -> ExportDialog | None:
        """The export dialog for this project's result (`ResultTools.open_export_dialog`)."""
        return self.tools.open_export_dialog()

    def export(self, source: Path, target: str) -> None:
        """Convert ``source`` to ``target`` (format from the extension) in a worker."""
        self.tools.export(source, target)

    def _update_viewer(self) -> None:
        """Show the output model (or the one kept while a re-run recomputes it), else the placeholder."""
        shown = self.project.shown_result() if self.project is not None else None
        if shown is not None:
            self.show_model(shown[0], reset_camera=True, cameras=shown[1])
        else:
            self.viewer_area.show_placeholder()

    def _on_event(self, _stage: str, event: object) -> None:
        if isinstance(event, Preview) and self.project is not None and self.app_settings.live_preview:
            path = Path(event.path)
            self.show_model(path if path.is_absolute() else self.project.folder / path,
                            reset_camera=not self._previewed)
            self._previewed = True

    @property
    def _viewer(self) -> Any:
        """The embedded `SplatCanvas` (`ViewerPanel.viewer`), None until the page first opened a project."""
        return self.viewer_area.viewer

    @property
    def _viewer_holder(self) -> QWidget | None:
        return self.viewer_area.holder

    @property
    def _model_loading(self) -> bool:
        return self.viewer_area.loading

    def _ensure_viewer(self) -> bool:
        """Embed the viewer once (`ViewerPanel.ensure_viewer`: when the page opens) and follow where it is."""
        if self._viewer is not None:
            return True
        if not self.viewer_area.ensure_viewer():
            return False
        self._viewer.signals.sig_place_changed.connect(self._on_place_changed)
        self.compare.viewer = self.tools.viewer = self._viewer
        return True

    def _on_place_changed(self, place: str) -> None:
        self.view_place.setText(f"Viewing from {place}" if place else "")
        if self.compare_button.isChecked():
            self.compare.update_view()

    # ------------------------------------------------------------------ photo beside the render
    def _on_compare_toggled(self, on: bool) -> None:
        self.compare.setVisible(on)
        if on and self._viewer is not None and self._viewer.training_cameras and self._viewer.photo_index < 0:
            self._viewer.jump_to_camera(0)  # held-out photos come first: the honest comparison
        if on:
            self.compare.update_view()

    def show_model(self, path: Path, reset_camera: bool, cameras: Path | None = None) -> None:
        """Show ``path`` in the viewer, read and prepared in a worker, with the photos' ``cameras`` (default:
        the trainer's). While one model loads, only the newest asked for waits (training previews can come
        faster than they load)."""
        if not self._ensure_viewer():
            return
        if cameras is None and self.project is not None:
            cameras = self.project.path(*TRAIN_CAMERAS.split("/"))
        self.viewer_area.show_model(ModelRequest(path, reset_camera, cameras, self.folder))

    def _on_model_failed(self, error: str) -> None:
        self.sig_message.emit(f"could not show the model: {error}")

    def _on_model_ready(self, request: ModelRequest, scene: Any, cameras: list) -> None:
        """A model is prepared (`ViewerPanel`): into the viewer, and, for the project's result (not a training
        preview), the clean-up and the hand edits of it."""
        if request.folder != self.folder:
            return
        reset_camera, path = request.reset_camera, request.path
        self._viewer.load(scene, reset_camera=reset_camera)
        shown = self.project.shown_result() if self.project is not None else None
        is_result = shown is not None and path == shown[0]  # not a training preview: it can be cleaned, edited
        self.tools.show_cleanup(scene, cameras, is_result)
        if cameras and reset_camera:
            # the photos' cameras to step through (arrow keys); the view starts from the first one,
            # where the scene is known to look right (an orbit framing all splats can sit far out)
            self._viewer.set_training_cameras(cameras)
            self._viewer.jump_to_camera(0)
        self.tools.show_edits(scene.cloud if is_result else None)
        if reset_camera:
            self.compare_button.setEnabled(bool(cameras))
            if not cameras:
                self.compare_button.setChecked(False)
