"""Application entry: ``run_app(library)`` for ``splatstudio gui``; ``create_main_window`` for tests."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QLockFile, QSettings
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from splatstudio.launch import APP_ID, icon_files
from splatstudio.model import paths
from splatstudio.model.library import Library
from splatstudio.model.settings import Settings, SettingsError, load_settings
from splatstudio.services.main_thread_gc import MainThreadCollector
from splatstudio.ui.main_window import APP_TITLE, MainWindow
from splatstudio.ui.preferences import LIBRARY_KEY
from splatstudio.ui.theme import apply_theme

LOCK_NAME = ".splatstudio-gui.lock"


def configure_application(app: QApplication) -> None:
    """Names for QSettings (INI files), the Fusion theme following the system scheme."""
    QCoreApplication.setOrganizationName(APP_TITLE)
    QCoreApplication.setApplicationName(APP_TITLE)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    icons = icon_files()  # resources/icons: the desktop file's icon too
    if icons and app.windowIcon().isNull():
        icon = QIcon()
        for path in icons:
            icon.addFile(str(path))
        app.setWindowIcon(icon)
        app.setDesktopFileName(APP_ID)
    if not app.property("splatstudio_themed"):
        apply_theme(app)
        app.setProperty("splatstudio_themed", True)


def acquire_instance_lock(folder: Path) -> QLockFile | None:
    """The library's single-instance lock, or None when another SplatStudio window holds it."""
    lock = QLockFile(str(folder / LOCK_NAME))
    lock.setStaleLockTime(0)  # a lock left by a crashed process is recognised by its dead PID instead
    return lock if lock.tryLock(100) else None


def effective_settings() -> tuple[Settings, str]:
    """The user's settings, or the defaults and the reason when the settings file is broken."""
    try:
        return load_settings(paths.user_settings_file()), ""
    except SettingsError as exc:
        return Settings(), f"{exc} — using the defaults"


def create_main_window(library: Library, settings: Settings | None = None) -> MainWindow:
    """A configured main window (the QApplication must exist)."""
    app = QApplication.instance()
    assert isinstance(app, QApplication), "create a QApplication first"
    configure_application(app)
    problem = ""
    if settings is None:
        settings, problem = effective_settings()
    window = MainWindow(library, settings)
    if problem:
        window.show_message(problem)
    return window


def _chosen_library(library: Library) -> Library:
    """The library folder picked in Preferences, when the command line asked for the default one."""
    chosen = QSettings().value(LIBRARY_KEY, "")
    if chosen and library.folder == paths.default_library_dir() and Path(chosen) != library.folder:
        return Library(Path(chosen))
    return library


def run_app(library: Library) -> int:
    """Show the main window until it closes; exit status 1 when the library is open elsewhere."""
    app = QApplication.instance() or QApplication(sys.argv)
    configure_application(app)
    library = _chosen_library(library)
    lock = acquire_instance_lock(library.folder)
    if lock is None:
        message = f"SplatStudio is already open on the library {library.folder}."
        print(f"error: {message}", file=sys.stderr)
        QMessageBox.warning(None, APP_TITLE, message)
        return 1
    window = create_main_window(library)
    window.show()
    collector = MainThreadCollector(parent=app)
    collector.start()
    code = app.exec()
    window.workers.pool.waitForDone(10_000)  # the event loop has ended: nothing on screen to block
    collector.stop()  # after the workers: none of them may collect the window's objects
    lock.unlock()
    return code
