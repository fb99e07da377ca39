"""New project by drag and drop: the grid, the badges with their reasons, removing photos, creating."""

from __future__ import annotations

import re
from pathlib import Path

from _ui_helpers import BAD_FILES, drop_paths, mixed_folder
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QMessageBox

from splatstudio.model.project import Project
from splatstudio.model.settings import PRESETS, SPEC_BY_KEY, preset
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

    page.select_preset("Fast preview")
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
    assert page.name_edit.text() == tiny_photos.parent.name  # the folder the photos are in (not "photos"), not IMG_0001
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


def open_advanced(page) -> tuple[QDialog, SettingsForm]:
    page._on_advanced_requested()
    dialog = next(d for d in page.findChildren(QDialog) if d.isVisible())
    return dialog, dialog.findChild(SettingsForm)


def item_texts(combo) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


def test_time_budget_and_scene_detail_rows_agree_with_the_advanced_dialog(window, qtbot):
    page = window.new_page
    window.show_new_project([])
    assert item_texts(page.preset) == [p.name for p in PRESETS] + ["Time budget"]
    assert page.preset.currentText() == "Balanced" and page.minutes.isHidden()
    page.select_preset("budget")
    assert page.minutes.isVisibleTo(page) and page.minutes.value() == 10
    page.minutes.setValue(5)
    settings = page.settings()
    balanced = preset("balanced").values
    assert settings.time_budget_minutes == 5
    assert {k: settings[k] for k in balanced if k != "time_budget_minutes"} == \
        {k: v for k, v in balanced.items() if k != "time_budget_minutes"}
    for item in PRESETS:
        page.select_preset(item.key)
        assert page.settings().time_budget_minutes == 0 and page.minutes.isHidden()
        assert page.settings().iterations == item.values["iterations"]

    # the scene detail: auto by default, every step offered, the choice in settings() and in Advanced…
    assert page.detail.value() == 0 and page.settings().scene_detail == 0
    assert page.detail.values() == SPEC_BY_KEY["scene_detail"].steps
    page.select_preset("fast")  # the presets set the scene detail: Fast's is 50,000, Balanced's auto
    assert page.detail.value() == 50_000
    page.select_preset("budget")
    assert page.detail.value() == 0
    page.detail.set_value(50_000)
    dialog, form = open_advanced(page)
    assert form.fields["scene_detail"].read() == 50_000 and form.fields["time_budget_minutes"].read() == 5
    form.fields["scene_detail"].write(123_456)  # not a step: kept as an item of its own
    form.fields["time_budget_minutes"].write(20)
    form.fields["max_features"].write(1024)
    dialog.accept()
    assert page.detail.value() == 123_456 and "123,456" in item_texts(page.detail)
    assert page.preset.currentData() == "budget" and page.minutes.value() == 20
    assert page.settings().scene_detail == 123_456 and page.settings().time_budget_minutes == 20
    assert page.advanced == {"max_features": 1024}  # the rows' settings stay in the rows
    # a time budget turned off in Advanced… leaves the Time budget entry; the preset's own values are not pinned
    dialog, form = open_advanced(page)
    form.fields["time_budget_minutes"].write(0)
    dialog.accept()
    assert page.preset.currentText() == "Balanced" and page.settings().time_budget_minutes == 0
    page.select_preset("fast")
    assert page.settings().iterations == 2000 and page.settings().max_features == 1024


def test_presets_show_their_expected_duration_on_this_computer(window, qtbot, tiny_photos):
    page = window.new_page
    with qtbot.waitSignal(page.sig_checked, timeout=30_000):
        window.show_new_project([str(p) for p in sorted(tiny_photos.glob("*.jpg"))[:3]])
    qtbot.waitUntil(lambda: "of training on this computer" in page.estimate_label.text(), timeout=30_000)
    texts = item_texts(page.preset)
    for item, text in zip(PRESETS, texts[:-1], strict=True):
        assert re.fullmatch(rf"{item.name} — (about \d+ min|under a minute) here", text), text
    assert re.fullmatch(r"Time budget — about [\d,]+ iterations here", texts[-1]), texts[-1]
    label = page.estimate_label.text()
    assert page.estimate_label.isVisible()
    assert re.fullmatch(r"About \d+ min of training on this computer: 7,000 iterations, up to [\d,]+ Gaussians, "
                        r"about \d[\d.]* [MG]B of memory \(rough until the first training run on this computer\)",
                        label), label  # no training has run on this (test) machine's speed profile
    details = item_texts(page.detail)
    assert all(re.search(r" — [\d.]+ s/iteration, \d[\d.]* [MG]B$", text) for text in details), details
    assert details[0].startswith("auto (") and details[3].startswith("100,000 — ")
    dialog, form = open_advanced(page)  # the advanced dialog's list shows the same figures
    assert item_texts(form.fields["scene_detail"].widget) == details
    dialog.reject()

    # a change of the scene detail or the preset estimates again
    page.detail.set_value(200_000)
    qtbot.waitUntil(lambda: "up to 200,000 Gaussians" in page.estimate_label.text(), timeout=30_000)
    page.select_preset("budget")
    page.minutes.setValue(5)
    qtbot.waitUntil(lambda: page.estimate_label.text().startswith("About 5 min of training"), timeout=30_000)
    assert "Time budget — about" in page.preset.currentText()


def test_a_reference_trainer_leaves_the_presets_without_an_estimate(window, qtbot, tiny_photos, tmp_path):
    page = window.new_page
    page.base_settings = window.settings.updated({"trainer_path": str(tmp_path / "gaussian-splatting" / "train.py")})
    with qtbot.waitSignal(page.sig_estimated, timeout=30_000):
        with qtbot.waitSignal(page.sig_checked, timeout=30_000):
            window.show_new_project([str(p) for p in sorted(tiny_photos.glob("*.jpg"))[:2]])
    assert item_texts(page.preset) == [p.name for p in PRESETS] + ["Time budget"]
    assert page.estimate_label.isHidden() and page.detail_estimate is None
    assert not any("s/iteration" in text for text in item_texts(page.detail))


def test_a_trainer_that_cannot_estimate_is_explained_in_a_sentence(window, qtbot, tiny_photos, tmp_path):
    page = window.new_page
    page.base_settings = window.settings.updated({"trainer_python": str(tmp_path / "no-such-python")})
    with qtbot.waitSignal(page.sig_estimated, timeout=30_000):
        with qtbot.waitSignal(page.sig_checked, timeout=30_000):
            window.show_new_project([str(p) for p in sorted(tiny_photos.glob("*.jpg"))[:2]])
    text = page.estimate_label.text()
    assert page.estimate_label.isVisible() and "Traceback" not in text
    assert text.startswith("The trainer could not estimate the training time: ") and text.endswith("."), text
    assert "no-such-python" in text
    assert item_texts(page.preset) == [p.name for p in PRESETS] + ["Time budget"]
    assert page.create_run_button.isEnabled()  # an estimate is a help, never a condition


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


def test_a_project_is_named_after_its_photos_folder(tmp_path):
    """Issue 25, item 8: photos picked with File → New project named the project after the first photo."""
    from splatstudio.ui.new_project import suggested_name

    garden = tmp_path / "Garden"
    (garden / "DCIM" / "100APPLE").mkdir(parents=True)
    photo = garden / "DCIM" / "100APPLE" / "IMG_0001.JPG"
    photo.write_bytes(b"")
    (garden / "b.jpg").write_bytes(b"")
    assert suggested_name([str(garden / "b.jpg")]) == "Garden"
    assert suggested_name([str(photo)]) == "Garden"  # up past the camera's own folders
    assert suggested_name([str(garden)]) == "Garden"
    assert suggested_name([]) == "Project"
