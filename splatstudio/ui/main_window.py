"""The main window: Library / New project / Project pages in a stack, the Log, Training curves, System
and Queue docks (remembered with QSettings), menus with shortcuts, photo drops, About, and a quit that
asks before cancelling active runs and waits for them without blocking."""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import QByteArray, QEvent, QSettings, Qt, QTimer, qVersion
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMainWindow, QMessageBox, QStackedWidget, QStyle, QWidget

from splatstudio import __version__
from splatstudio.ingest.datasets import detect_dataset, import_dataset
from splatstudio.model.library import Library
from splatstudio.model.project import STAGE_TITLES, TRAIN_CURVES, Project, ProjectError
from splatstudio.model.run_slots import RunSlots
from splatstudio.model.settings import Settings
from splatstudio.pipeline.outcome import RunOutcome
from splatstudio.pipeline.plan import PlanError, plan_run
from splatstudio.pipeline.train import load_curves
from splatstudio.services.runs import ProjectRun, RunQueue
from splatstudio.services.system import SystemSampler
from splatstudio.ui.curves_panel import CurvesPanel
from splatstudio.ui.library_page import LibraryPage
from splatstudio.ui.log_panel import LogPanel, read_saved_logs
from splatstudio.ui.new_project import NewProjectPage
from splatstudio.ui.preferences import PreferencesDialog
from splatstudio.ui.project_page import ProjectPage
from splatstudio.ui.queue_panel import QueuePanel
from splatstudio.ui.system_panel import SystemPanel
from splatstudio.ui.workers import Workers

APP_TITLE = "SplatStudio"
STATE_VERSION = 1


def version_text() -> str:
    """The versions the About box lists (distribution metadata only: nothing heavy is imported)."""
    lines = [f"SplatStudio {__version__}", f"Qt {qVersion()} / PySide6 {pyside_version}",
             f"Python {platform.python_version()} ({platform.system()} {platform.machine()})"]
    for name in ("numpy", "pycolmap", "torch"):
        try:
            lines.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            lines.append(f"{name}: not installed")
    return "\n".join(lines)


def local_paths(urls) -> list[str]:
    return [url.toLocalFile() for url in urls if url.isLocalFile()]


class MainWindow(QMainWindow):
    """Owns the run queue, the workers and the system sampler; the pages and docks share them."""

    def __init__(self, library: Library, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.library = library
        self.settings = settings
        self.quitting = False
        self._quit_allowed = False
        self.workers = Workers(2, self)
        # the library's run slots: max_concurrent_runs holds for the window and terminal runs together
        # the executor setting: a Ray cluster runs the stages, and the queue holds no more runs than it can
        self.queue = RunQueue(settings.max_concurrent_runs, parent=self, slots=RunSlots(library.folder),
                              executor=settings.executor)
        self.sampler = SystemSampler(settings.gpu_check_interval, self)
        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self.resize(1280, 820)

        self.library_page = LibraryPage(library, self.queue, self.workers)
        self.new_page = NewProjectPage(library, self.workers, settings)
        self.project_page = ProjectPage(self.queue, self.workers, settings)
        self.pages = QStackedWidget()
        for page in (self.library_page, self.new_page, self.project_page):
            self.pages.addWidget(page)
            page.sig_message.connect(self.show_message)
        self.setCentralWidget(self.pages)

        self.log_panel = LogPanel()
        self.curves_panel = CurvesPanel()
        self.system_panel = SystemPanel(self.sampler)
        self.queue_panel = QueuePanel(self.queue)
        self.docks = {
            "log": self._add_dock("Log", self.log_panel, Qt.DockWidgetArea.BottomDockWidgetArea),
            "curves": self._add_dock("Training curves", self.curves_panel, Qt.DockWidgetArea.BottomDockWidgetArea),
            "system": self._add_dock("System", self.system_panel, Qt.DockWidgetArea.RightDockWidgetArea),
            "queue": self._add_dock("Queue", self.queue_panel, Qt.DockWidgetArea.RightDockWidgetArea),
        }
        self.tabifyDockWidget(self.docks["log"], self.docks["curves"])
        self.docks["log"].raise_()
        self.resizeDocks([self.docks["log"]], [240], Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["system"]], [280], Qt.Orientation.Horizontal)
        self.actions_by_name: dict[str, QAction] = {}
        self._make_menus()
        self._connect()
        self._restore_state()
        # the 3D view's CPU compositor loads now, in the background, rather than mid-run
        QTimer.singleShot(0, self._prepare_viewer)
        self.sampler.start()
        self.show_library()

    # ------------------------------------------------------------------ construction
    def _prepare_viewer(self) -> None:
        try:
            from splatstudio.render.glinfo import warm_up_compositor_if_software

            warm_up_compositor_if_software()
        except ImportError:  # no render package: the project page says the 3D view is unavailable
            pass

    def _add_dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.replace(" ", "") + "Dock")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, name: str, text: str, slot, shortcuts: list[QKeySequence] | None = None,
                icon: QStyle.StandardPixmap | None = None) -> QAction:
        action = QAction(text, self)
        if icon is not None:
            action.setIcon(self.style().standardIcon(icon))
        if shortcuts:
            action.setShortcuts(shortcuts)
        action.triggered.connect(slot)
        self.addAction(action)
        self.actions_by_name[name] = action
        return action

    def _make_menus(self) -> None:
        sp = QStyle.StandardPixmap
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self._action("new", "&New project…", self.choose_photos,
                                         [QKeySequence("Ctrl+N")], sp.SP_FileDialogNewFolder))
        file_menu.addAction(self._action("new_from_folder", "New project from a &folder…", self.choose_photo_folder,
                                         [QKeySequence("Ctrl+Shift+N")]))
        file_menu.addAction(self._action("open", "&Open project folder…", self.choose_project,
                                         [QKeySequence("Ctrl+O")], sp.SP_DialogOpenButton))
        file_menu.addAction(self._action("open_dataset", "Open &dataset…", self.choose_dataset,
                                         [QKeySequence("Ctrl+Shift+O")]))
        file_menu.addSeparator()
        file_menu.addAction(self._action("preferences", "&Preferences…", self.show_preferences,
                                         [QKeySequence("Ctrl+,")]))
        file_menu.addSeparator()
        file_menu.addAction(self._action("quit", "&Quit", self.close, [QKeySequence("Ctrl+Q")]))
        run_menu = bar.addMenu("&Run")
        run_menu.addAction(self._action("reconstruct", "&Reconstruct", self.reconstruct,
                                        [QKeySequence("Ctrl+R")], sp.SP_MediaPlay))
        run_menu.addAction(self._action("resume", "Re&sume", self.project_page.resume, None, sp.SP_MediaSkipForward))
        run_menu.addAction(self._action("cancel", "&Cancel", self.cancel,
                                        [QKeySequence("Ctrl+.")], sp.SP_MediaStop))  # not Esc: it clears fields
        view_menu = bar.addMenu("&View")
        view_menu.addAction(self._action("library", "&Library", self.show_library, [QKeySequence("Ctrl+L")],
                                         sp.SP_DirHomeIcon))
        view_menu.addSeparator()
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self._action("about", "&About SplatStudio", self.show_about, [QKeySequence("F1")]))

    def _connect(self) -> None:
        self.library_page.sig_open_requested.connect(self.open_project)
        self.library_page.sig_new_requested.connect(self.choose_photos)
        self.new_page.sig_project_created.connect(self._on_project_created)
        self.new_page.sig_cancel_requested.connect(self.show_library)
        self.project_page.sig_back_requested.connect(self.show_library)
        self.project_page.sig_title_changed.connect(self._on_project_title_changed)
        self.queue.sig_run_started.connect(self._on_run_started)
        self.queue.sig_run_finished.connect(self._on_run_finished)
        self.queue.sig_run_refused.connect(lambda folder, reason: self.show_message(f"{Path(folder).name}: {reason}"))

    # ------------------------------------------------------------------ pages
    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 10_000)

    def show_library(self) -> None:
        self.pages.setCurrentWidget(self.library_page)
        self.setWindowTitle(APP_TITLE)
        self.library_page.refresh()

    def show_new_project(self, sources: list[str]) -> None:
        if self.pages.currentWidget() is self.new_page and self.new_page.sources:
            self.new_page.add_sources(sources)
        else:
            self.new_page.start(sources)
        self.pages.setCurrentWidget(self.new_page)
        self.setWindowTitle(f"New project — {APP_TITLE}")

    def open_project(self, folder: str) -> None:
        try:
            self.project_page.show_project(folder)
        except ProjectError as exc:
            self.show_message(str(exc))
            return
        self.pages.setCurrentWidget(self.project_page)
        self.project_page.refresh_title()
        self._show_panels(self.project_page.project)

    def choose_photos(self) -> None:
        dialog = QFileDialog(self, "Photos or videos for a new project", str(Path.home()),
                             "Photos and videos (*.jpg *.jpeg *.png *.tif *.tiff *.webp *.heic *.heif *.JPG *.JPEG "
                             "*.PNG *.HEIC *.mp4 *.mov *.m4v *.mkv *.webm *.avi *.MP4 *.MOV);;All files (*)")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
        dialog.filesSelected.connect(lambda files: self.show_new_project(list(files)) if files else None)
        dialog.open()

    def choose_photo_folder(self) -> None:
        """A folder of photos (and its subfolders) for a new project, named after the folder."""
        dialog = QFileDialog(self, "A folder of photos for a new project", str(Path.home()))
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.fileSelected.connect(lambda folder: self.show_new_project([folder]) if folder else None)
        dialog.open()

    def choose_project(self) -> None:
        dialog = QFileDialog(self, "Open a project folder", str(self.library.folder))
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.fileSelected.connect(self._on_project_folder_chosen)
        dialog.open()

    def _on_project_folder_chosen(self, folder: str) -> None:
        try:
            Project(folder)
        except ProjectError as exc:
            if detect_dataset(folder) is not None:  # not a project, but a dataset we can open as one
                self.open_dataset(folder)
            else:
                self.show_message(str(exc))
            return
        self.open_project(folder)

    def choose_dataset(self) -> None:
        dialog = QFileDialog(self, "Open a COLMAP, trainer-output or nerfstudio folder", str(Path.home()))
        dialog.setObjectName("datasetDialog")
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.fileSelected.connect(self.open_dataset)
        dialog.open()

    def open_dataset(self, path: str) -> None:
        """Import the dataset at `path` as a new project (in a worker), then open it."""
        found = detect_dataset(path)
        if found is None:
            self.show_message(f"{path}: not a COLMAP folder, a reference-trainer output or a nerfstudio dataset")
            return
        self.show_message(f"opening {found.description}…")
        settings = self.new_page.base_settings
        self.workers.submit(lambda progress: import_dataset(self.library, found.path, settings=settings,
                                                            progress=progress),
                            lambda project: self._on_dataset_opened(project),
                            lambda message, _t: self._on_dataset_failed(path, message),
                            lambda fraction, text: self.show_message(f"opening dataset: {text} "
                                                                     f"({fraction * 100:.0f}%)"))

    def _on_dataset_opened(self, project: Project) -> None:
        try:
            left = ", ".join(STAGE_TITLES[s] for s in plan_run(project).stages) or "nothing"
        except PlanError as exc:
            left = str(exc)
        self.show_message(f"opened {project.name} — left to run: {left}")
        self._on_project_created(str(project.folder), False)

    def _on_dataset_failed(self, path: str, message: str) -> None:
        self.show_message(f"could not open {Path(path).name}: {message}")
        box = QMessageBox(QMessageBox.Icon.Warning, "Could not open the dataset", message,
                          QMessageBox.StandardButton.Ok, self)
        box.setObjectName("datasetError")
        box.open()

    def _on_project_created(self, folder: str, reconstruct: bool) -> None:
        self.library_page.refresh()
        self.open_project(folder)
        if reconstruct:
            self.project_page.resume()

    def _on_project_title_changed(self, title: str) -> None:
        if self.pages.currentWidget() is self.project_page:
            self.setWindowTitle(f"{title} — {APP_TITLE}")

    # ------------------------------------------------------------------ runs
    def reconstruct(self) -> None:
        if self.pages.currentWidget() is self.project_page:
            self.project_page.reconstruct()
        elif self.pages.currentWidget() is self.library_page and self.library_page.selected_folder():
            self.open_project(self.library_page.selected_folder())
            self.project_page.resume()

    def cancel(self) -> None:
        if self.pages.currentWidget() is self.project_page:
            self.project_page.cancel()
        elif self.pages.currentWidget() is self.new_page:
            self.show_library()

    def _show_panels(self, project: Project) -> None:
        """The Log and Training curves panels show ``project``: its run as it goes, over what its stages
        saved (read in workers; a later project shown meanwhile wins)."""
        folder = str(project.folder)
        run = self.queue.active.get(folder)
        if run is not None:
            self.log_panel.follow(run)
            self.curves_panel.follow(run)
        else:
            self.log_panel.show_saved(folder, project.name, None, None)  # emptied until they are read

            def show_logs(found) -> None:
                if self.log_panel.folder == folder and folder not in self.queue.active:
                    self.log_panel.show_saved(folder, project.name, *found)

            self.workers.submit(lambda: read_saved_logs(folder), show_logs)
        if run is None:
            self.curves_panel.follow(None)
            self.curves_panel.clear()
            self.curves_panel.folder = folder
        curves = project.path(*TRAIN_CURVES.split("/"))
        self.workers.submit(lambda: load_curves(curves),
                            lambda saved: self.curves_panel.show_saved(folder, saved)
                            if self.curves_panel.folder == folder else None)

    def _on_run_started(self, folder: str, run: ProjectRun) -> None:
        """Panels follow the shown project's run, or the newest run when no project is shown."""
        if self.pages.currentWidget() is not self.project_page or folder == self.project_page.folder:
            self._show_panels(run.project)
        self.show_message(f"{run.project.name}: started ({run.plan.reason})")

    def _on_run_finished(self, folder: str, outcome: RunOutcome) -> None:
        try:
            name = Project(folder).name
        except ProjectError:
            name = Path(folder).name
        self.show_message(f"{name}: {outcome.status}" + (f" at {outcome.stage}" if outcome.status != "done" else ""))
        if self.quitting and not self.queue.active:
            self._quit_allowed = True
            self.close()

    # ------------------------------------------------------------------ dialogs
    def show_about(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, "About SplatStudio",
                          "SplatStudio turns photos into 3D Gaussian Splatting scenes.", parent=self)
        box.setObjectName("aboutBox")
        box.setInformativeText(version_text())
        box.open()

    def show_preferences(self) -> None:
        dialog = PreferencesDialog(self.settings, self.library.folder, self)
        dialog.setObjectName("preferences")
        dialog.sig_settings_saved.connect(self.apply_settings)
        dialog.open()

    def apply_settings(self, settings: Settings) -> None:
        """Use new preferences now where they apply now (concurrency, sampling, new projects, live preview)."""
        self.settings = settings
        self.queue.set_max_concurrent(settings.max_concurrent_runs)
        self.queue.set_executor(settings.executor)
        self.sampler.set_interval(settings.gpu_check_interval)
        self.new_page.base_settings = settings
        self.project_page.app_settings = settings  # live preview, for every project
        self.show_message("preferences saved")

    # ------------------------------------------------------------------ drops
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and local_paths(event.mimeData().urls()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = local_paths(event.mimeData().urls())
        if paths:
            event.acceptProposedAction()
            if len(paths) == 1 and detect_dataset(paths[0]) is not None:
                self.open_dataset(paths[0])  # a COLMAP / trainer / nerfstudio folder: skip what it has
            else:
                self.show_new_project(paths)

    # ------------------------------------------------------------------ state and quitting
    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.ActivationChange and self.isActiveWindow():
            self.library_page.refresh()
        super().changeEvent(event)

    def _restore_state(self) -> None:
        store = QSettings()
        geometry, state = store.value("window/geometry"), store.value("window/state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        if isinstance(state, QByteArray):
            self.restoreState(state, STATE_VERSION)

    def save_state(self) -> None:
        store = QSettings()
        store.setValue("window/geometry", self.saveGeometry())
        store.setValue("window/state", self.saveState(STATE_VERSION))
        store.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.queue.active and not self._quit_allowed:
            event.ignore()
            if not self.quitting:
                self._ask_to_quit()
            return
        self.save_state()
        self.sampler.stop()
        self.library_page.renderer.stop()
        self.workers.pool.clear()
        event.accept()

    def _ask_to_quit(self) -> None:
        count = len(self.queue.active)
        box = QMessageBox(QMessageBox.Icon.Question, "Quit SplatStudio",
                          f"{count} project(s) are reconstructing. Quit and cancel them?\n"
                          "They stop at a safe point and can be resumed later.",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setObjectName("quitConfirmation")
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.finished.connect(lambda result: self._begin_quit() if result == QMessageBox.StandardButton.Yes else None)
        box.open()

    def _begin_quit(self) -> None:
        """Cancel every run; the window closes when the last process has stopped (see _on_run_finished)."""
        self.quitting = True
        self.show_message("stopping the runs… the window closes when they have stopped")
        self.queue.cancel_all()
        if not self.queue.active:
            self._quit_allowed = True
            self.close()
