"""New project by drag and drop: the grid, the badges with their reasons, removing photos, creating."""

from __future__ import annotations

from pathlib import Path

from _ui_helpers import BAD_FILES, drop_paths, mixed_folder
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QMessageBox

from splatstudio.model.project import Project
from splatstudio.model.settings import PRESETS
from splatstudio.ui.new_project import REASON_ROLE, SOURCE_ROLE
from splatstudio.ui.preferences import SettingsForm


def test_drop_shows_badges_with_reasons_and_creates_the_project(window, qtbot, tiny_photos, tmp_path):
    folder = mixed_folder(tmp_path / "drop", tiny_photos, good_count=3)
    page = window.new_page
    with qtbot.waitSignal(page.sig_checked, timeout=30_000):
        assert drop_paths(window, [folder])
    assert window.pages.currentWidget() is page
    items = {Path(item.data(SOURCE_ROLE)).name: item for item in page.items()}
    assert len(items) == 3 + len(BAD_FILES)
    for name, reason in BAD_FILES.items():
        assert items[name].data(REASON_ROLE) is not None, name
        assert reason in items[name].data(REASON_ROLE), (name, items[name].data(REASON_ROLE))
        assert reason in items[name].text() and reason in items[name].toolTip()
    good = [name for name, item in items.items() if item.data(REASON_ROLE) is None]
    assert len(good) == 3 and all("320×240" in items[name].text() for name in good)
    assert not items[good[0]].icon().isNull()
    assert "3 photo(s) will be imported, 4 file(s) rejected" == page.summary.text()
    assert page.name_edit.text() == "drop"

    # remove one photo with the Delete key
    page.grid.setFocus()
    page.grid.clearSelection()
    items[good[0]].setSelected(True)
    qtbot.keyClick(page.grid, Qt.Key.Key_Delete)
    assert len(page.accepted_sources()) == 2

    page.preset.setCurrentText("Fast preview")
    page.name_edit.setText("Dropped")
    with qtbot.waitSignal(page.sig_project_created, timeout=30_000) as created:
        page.create_button.click()
    project_folder, reconstruct = created.args
    assert reconstruct is False
    assert window.pages.currentWidget() is window.project_page
    project = Project(project_folder)
    assert project.name == "Dropped" and len(project.image_names()) == 2
    fast = next(p for p in PRESETS if p.name == "Fast preview").values
    assert {k: project.settings.values[k] for k in fast} == fast
    assert project.settings.min_image_size == 200  # the preferences still apply under the preset
    assert window.windowTitle() == "Dropped — SplatStudio"
    window.show_library()
    qtbot.waitUntil(lambda: window.library_page.row_for(project_folder) is not None, timeout=10_000)
    assert window.library_page.row_for(project_folder)["image_count"] == 2


def test_drop_is_refused_without_local_files(window):
    from PySide6.QtCore import QMimeData
    from PySide6.QtGui import QDragEnterEvent
    from PySide6.QtWidgets import QApplication

    data = QMimeData()
    data.setText("just text")
    enter = QDragEnterEvent(window.rect().center(), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    enter.ignore()
    QApplication.sendEvent(window, enter)
    assert not enter.isAccepted()


def test_advanced_settings_apply_to_the_new_project_only(window, qtbot, tiny_photos):
    page = window.new_page
    with qtbot.waitSignal(page.sig_checked, timeout=30_000):
        window.show_new_project([str(p) for p in sorted(tiny_photos.glob("*.jpg"))[:2]])
    assert page.name_edit.text() == "IMG_0001"
    page._on_advanced_requested()
    dialog = next(d for d in page.findChildren(QDialog) if d.isVisible())
    form = dialog.findChild(SettingsForm)
    form.fields["max_features"].write(1024)
    form.fields["original_resolution"].write(True)
    with qtbot.waitSignal(page.sig_checked, timeout=30_000):  # the photos are checked again
        dialog.accept()
    assert page.settings().max_features == 1024 and page.original.isChecked()
    assert page.settings().iterations == 7000  # the preset is untouched
    assert window.settings.max_features == 2048  # the preferences are untouched


def test_dropping_a_colmap_folder_opens_it_as_a_project_that_skips_sfm(window, qtbot, tmp_path):
    from dataset_builders import render_photos, write_colmap_folder

    photos = render_photos(tmp_path / "render", count=6)
    dataset = write_colmap_folder(tmp_path / "garden", photos)
    assert drop_paths(window, [dataset])
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.project_page, timeout=30_000)
    page = window.project_page
    assert Path(page.folder).name.startswith("garden")
    for stage in ("features", "matching", "mapping", "undistort"):
        assert page.items[stage].text(1) == "done"
    assert page.items["train"].text(1) != "done"
    assert "left to run: Gaussian Splatting training" in window.statusBar().currentMessage()


def test_a_broken_dataset_is_explained_and_leaves_no_project(window, qtbot, tmp_path):
    from dataset_builders import render_photos, write_colmap_folder

    photos = render_photos(tmp_path / "render", count=4)
    dataset = write_colmap_folder(tmp_path / "broken", photos)
    victim = sorted((dataset / "images").iterdir())[0]
    victim.unlink()  # the model names a photo that is not there
    before = sorted(p.name for p in window.library.folder.iterdir())
    window.open_dataset(str(dataset))
    qtbot.waitUntil(lambda: window.findChild(QMessageBox, "datasetError") is not None, timeout=30_000)
    box = window.findChild(QMessageBox, "datasetError")
    assert victim.name in box.text()
    box.close()
    assert sorted(p.name for p in window.library.folder.iterdir()) == before
