"""The main window itself: docks, shortcuts, remembered layout, About, single instance, theme."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QMessageBox

from splatstudio.ui.app import acquire_instance_lock, create_main_window
from splatstudio.ui.main_window import version_text


def test_docks_menus_and_shortcuts(window):
    assert set(window.docks) == {"log", "curves", "system", "queue"}
    shortcuts = {name: [s.toString() for s in action.shortcuts()] for name, action in window.actions_by_name.items()}
    assert shortcuts["new"] == ["Ctrl+N"] and shortcuts["open"] == ["Ctrl+O"]
    assert shortcuts["new_from_folder"] == ["Ctrl+Shift+N"]  # issue 25, item 8: the file dialog took no folder
    assert shortcuts["reconstruct"] == ["Ctrl+R"] and shortcuts["cancel"] == ["Ctrl+."]  # not Esc: it clears fields
    assert shortcuts["preferences"] == ["Ctrl+,"] and shortcuts["about"] == ["F1"] and shortcuts["quit"] == ["Ctrl+Q"]
    assert QApplication.style().name().lower() == "fusion"
    assert window.pages.currentWidget() is window.library_page
    assert window.windowTitle() == "SplatStudio"


def test_dock_layout_is_remembered(qtbot, library):
    first = create_main_window(library)
    qtbot.addWidget(first)
    first.show()
    qtbot.waitExposed(first)
    first.docks["system"].hide()
    first.close()
    assert QSettings().value("window/state") is not None
    second = create_main_window(library)
    qtbot.addWidget(second)
    second.show()
    qtbot.waitExposed(second)
    assert not second.docks["system"].isVisible()
    assert second.docks["log"].isVisible()
    second.close()


def test_about_lists_versions(window, qtbot):
    text = version_text()
    for name in ("SplatStudio 0.1.0", "Qt ", "PySide6", "Python", "numpy", "pycolmap", "torch"):
        assert name in text
    window.actions_by_name["about"].trigger()
    box = window.findChild(QMessageBox, "aboutBox")
    assert box is not None and box.isVisible() and "PySide6" in box.informativeText()
    box.close()


def test_second_instance_on_the_same_library_is_refused(library):
    lock = acquire_instance_lock(library.folder)
    assert lock is not None
    try:
        assert acquire_instance_lock(library.folder) is None
    finally:
        lock.unlock()
    again = acquire_instance_lock(library.folder)
    assert again is not None
    again.unlock()


def test_system_panel_says_plainly_when_there_is_no_gpu(window, qtbot):
    qtbot.waitUntil(lambda: window.system_panel.gpu_message.text() != "", timeout=10_000)
    if not window.sampler.gpu.message:
        return  # a machine with an NVIDIA GPU shows its bars instead
    assert window.system_panel.gpu_message.text() == "No NVIDIA GPU found — training uses the CPU"  # not NVMLError_…
    assert "CPU" in window.system_panel._bars and "RAM" in window.system_panel._bars


def test_quit_with_an_active_run_asks_then_cancels_and_closes(window, qtbot, make_project):
    folder = make_project("Quitter")
    window.open_project(folder)
    window.project_page.until.setCurrentIndex(0)
    with qtbot.waitSignal(window.queue.sig_run_started, timeout=10_000):
        window.project_page.resume()
    window.actions_by_name["quit"].trigger()
    box = window.findChild(QMessageBox, "quitConfirmation")
    assert box is not None and box.isVisible() and window.isVisible()
    with qtbot.waitSignal(window.queue.sig_run_finished, timeout=30_000) as finished:
        box.button(QMessageBox.StandardButton.Yes).click()
    assert finished.args[1].status == "cancelled"
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=10_000)


def test_theme_follows_the_system_colour_scheme(window, qtbot, artifacts):
    """The platform announces a scheme change with colorSchemeChanged (plain Xvfb never does: emit it)."""
    hints = QGuiApplication.styleHints()
    window_color = lambda: QApplication.palette().color(QPalette.ColorRole.Window)  # noqa: E731
    try:
        hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)
        assert window_color().lightness() < 80
        window.log_panel.append_text("error: shown in the dark palette's error colour", "error")
        qtbot.wait(100)  # widgets repaint with the new palette on the next event-loop turns
        window.grab().save(str(artifacts / "library-dark.png"))
    finally:
        hints.colorSchemeChanged.emit(Qt.ColorScheme.Light)
    assert window_color().lightness() > 180
