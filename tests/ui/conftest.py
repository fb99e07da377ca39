"""Fixtures for the desktop-window tests: isolated QSettings and trash, a user settings file that lets
tiny generated photos through, a cached tiny photo set, and the real main window."""

from __future__ import annotations

from pathlib import Path

import pytest
from _ui_helpers import TINY
from PySide6.QtCore import QSettings

from splatstudio.model import paths
from splatstudio.model.images import import_photos
from splatstudio.model.library import Library
from splatstudio.model.sample import generate_sample
from splatstudio.model.settings import Settings, write_user_file

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(autouse=True)
def isolated_qt_state(tmp_path, monkeypatch, isolated_env):
    """QSettings INI files and the freedesktop trash live in the test's own folders."""
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    (tmp_path / "xdg-data").mkdir()  # Qt puts its Trash folder in an existing data folder only
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    write_user_file(paths.user_settings_file(), Settings(TINY))
    yield


@pytest.fixture(scope="session")
def tiny_photos(tmp_path_factory) -> Path:
    """16 generated views at 320x240 (they register reliably), made once per session."""
    return generate_sample(tmp_path_factory.mktemp("tiny") / "photos", 16, 320, 240, seed=1).directory


@pytest.fixture(scope="session")
def imported_template(tiny_photos, tmp_path_factory) -> Path:
    """A project folder with the tiny photos imported, copied by :func:`make_project`."""
    library = Library(tmp_path_factory.mktemp("template-lib"))
    project = library.create_project("Template", Settings(TINY))
    import_photos(project.images_dir, project.path("import.json"), [tiny_photos], Settings(TINY))
    return project.folder


@pytest.fixture
def library(isolated_env) -> Library:
    return Library(paths.default_library_dir())


@pytest.fixture
def make_project(imported_template, library):
    """Copy the imported template into the test's library under a new name (and a new id)."""
    def make(name: str) -> str:
        project = library.duplicate(str(imported_template))
        library.rename(project, name)
        return str(project.folder)

    return make


@pytest.fixture
def window(qtbot, library):
    """The real main window on the test's library; runs are cancelled and workers drained at the end."""
    from splatstudio.ui.app import create_main_window

    main = create_main_window(library)  # not qtbot.addWidget: pytest-qt would close it before this teardown
    main.show()
    qtbot.waitExposed(main)
    yield main
    main.queue.cancel_all()
    qtbot.waitUntil(lambda: not main.queue.active, timeout=30_000)
    qtbot.waitUntil(lambda: main.workers.pool.activeThreadCount() == 0, timeout=30_000)
    main.close()
    main.deleteLater()
    qtbot.wait(10)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
