"""Preferences: a form built from SPECS, validated as you type, saved to the user file, applied at once."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox

from splatstudio.model import paths
from splatstudio.model.settings import SPECS, read_user_file
from splatstudio.ui.preferences import PreferencesDialog


def open_preferences(window, qtbot) -> PreferencesDialog:
    window.actions_by_name["preferences"].trigger()
    dialog = window.findChild(PreferencesDialog, "preferences")
    assert dialog is not None
    qtbot.waitExposed(dialog)
    return dialog


def type_into(qtbot, edit: QLineEdit, text: str) -> None:
    edit.selectAll()
    qtbot.keyClicks(edit, text)


def test_every_setting_has_a_widget_of_its_kind(window, qtbot):
    dialog = open_preferences(window, qtbot)
    form = dialog.form
    assert set(form.fields) == {spec.key for spec in SPECS}
    assert [form.tabs.tabText(i) for i in range(form.tabs.count())] == list(dict.fromkeys(s.group for s in SPECS))
    iterations = form.fields["iterations"].widget
    assert isinstance(iterations, QSpinBox) and (iterations.minimum(), iterations.maximum()) == (1, 1_000_000)
    assert isinstance(form.fields["outlier_std_threshold"].widget, QDoubleSpinBox)
    assert isinstance(form.fields["camera_model"].widget, QComboBox)
    assert isinstance(form.fields["eval_holdout"].widget, QCheckBox)
    assert isinstance(form.fields["allowed_extensions"].widget, QLineEdit)
    assert form.fields["trainer_path"].widget.findChild(QLineEdit) is not None  # with a Browse… button
    assert form.fields["min_image_size"].read() == 200  # the user file's value
    dialog.reject()


def test_invalid_input_shows_the_error_and_disables_ok(window, qtbot):
    dialog = open_preferences(window, qtbot)
    form = dialog.form
    form.tabs.setCurrentIndex([form.tabs.tabText(i) for i in range(form.tabs.count())].index("Training"))
    spin = form.fields["iterations"].widget
    type_into(qtbot, spin.lineEdit(), "0")
    error = form.fields["iterations"].error
    assert error.isVisible() and "below the minimum 1" in error.text()
    assert not dialog.ok_button.isEnabled()
    type_into(qtbot, spin.lineEdit(), "5000")
    assert not error.isVisible() and dialog.ok_button.isEnabled()

    # a value fine on its own but inconsistent with another setting
    form.fields["densify_from_iter"].write(6000)
    form.fields["densify_until_iter"].write(5000)
    assert not dialog.ok_button.isEnabled()
    assert "densify_until_iter" in form.overall_error.text() and form.overall_error.isVisible()
    form.fields["densify_from_iter"].write(500)
    assert dialog.ok_button.isEnabled()

    extensions = form.fields["allowed_extensions"].widget
    type_into(qtbot, extensions, " , ")
    assert "empty" in form.fields["allowed_extensions"].error.text() and not dialog.ok_button.isEnabled()
    type_into(qtbot, extensions, "jpg, png")
    assert dialog.ok_button.isEnabled()
    dialog.reject()


def test_ok_saves_the_user_file_and_applies_concurrency_at_once(window, qtbot):
    dialog = open_preferences(window, qtbot)
    form = dialog.form
    form.fields["max_concurrent_runs"].write(3)
    form.fields["iterations"].write(1234)
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert not dialog.isVisible()
    saved = read_user_file(paths.user_settings_file())
    assert saved["iterations"] == 1234 and saved["max_concurrent_runs"] == 3 and saved["min_image_size"] == 200
    assert window.queue.max_concurrent == 3
    assert window.new_page.settings().iterations == 7000  # the Balanced preset still decides for new projects
    assert window.settings.iterations == 1234


def test_live_preview_off_in_preferences_reaches_a_project_that_already_exists(window, qtbot, make_project):
    """Issue 22, item 1: the application settings were frozen into each project.json, so turning live preview
    off in Preferences did not reach a project made before (the README said it would)."""
    import json
    from pathlib import Path

    from test_panels import random_cloud

    from splatstudio.io.formats import save_splats
    from splatstudio.model.project import Project
    from splatstudio.pipeline.events import Preview
    from splatstudio.ui.project_page import ProjectPage

    folder = Path(make_project("Made before"))
    meta = json.loads((folder / "project.json").read_text())
    meta["settings"].update(live_preview=True, log_level="DEBUG")  # as an earlier version stored them
    (folder / "project.json").write_text(json.dumps(meta))
    window.open_project(str(folder))
    page: ProjectPage = window.project_page
    dialog = open_preferences(window, qtbot)
    dialog.form.fields["live_preview"].write(False)
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    project = Project(folder)
    assert project.settings.live_preview is False and project.settings.log_level == "INFO"
    preview = folder / "preview.ply"
    save_splats(random_cloud(50), preview)
    page._on_event("train", Preview("train", 100, str(preview)))
    assert not page._model_loading  # the preview is left alone: live preview is off for every project
    project.set_settings(project.settings.updated({"iterations": 999}))
    stored = json.loads((folder / "project.json").read_text())["settings"]
    assert stored["iterations"] == 999 and "live_preview" not in stored and "log_level" not in stored


def test_restore_defaults(window, qtbot):
    dialog = open_preferences(window, qtbot)
    dialog.form.restore_defaults()
    assert dialog.form.fields["min_image_size"].read() == 256
    assert dialog.form.settings().values == {spec.key: spec.default for spec in SPECS}
    dialog.reject()


def test_special_values_show_their_meaning_and_read_back_as_the_minimum(window, qtbot):
    dialog = open_preferences(window, qtbot)
    form = dialog.form
    form.tabs.setCurrentIndex([form.tabs.tabText(i) for i in range(form.tabs.count())].index("Training"))
    budget, interval = form.fields["time_budget_minutes"], form.fields["opacity_reset_interval"]
    assert budget.widget.text() == "off" and budget.read() == 0.0
    assert interval.widget.text() == "auto" and interval.read() == 0 and not interval.error.isVisible()
    type_into(qtbot, interval.widget.lineEdit(), "250")
    assert interval.read() == 250
    type_into(qtbot, interval.widget.lineEdit(), "0")
    assert interval.read() == 0 and dialog.ok_button.isEnabled()
    interval.write(0)
    assert interval.widget.text() == "auto" and interval.read() == 0
    budget.write(12.5)
    assert budget.read() == 12.5
    budget.write(0)
    assert budget.widget.text() == "off" and form.settings().time_budget_minutes == 0 and dialog.ok_button.isEnabled()
    dialog.reject()


def test_scene_detail_is_a_list_of_steps_that_keeps_any_other_value(window, qtbot):
    from splatstudio.model.settings import SPEC_BY_KEY, parse_assignments
    from splatstudio.pipeline.train import estimate_training

    window.apply_settings(window.settings.updated(parse_assignments(["scene_detail=123456"])))  # as --set does
    dialog = open_preferences(window, qtbot)
    detail = dialog.form.fields["scene_detail"]
    combo = detail.widget
    assert isinstance(combo, QComboBox) and detail.read() == 123_456
    texts = [combo.itemText(i) for i in range(combo.count())]
    assert texts == ["auto", "25,000", "50,000", "100,000", "123,456", "200,000", "400,000", "800,000", "1,600,000",
                     "3,200,000"]
    for value in SPEC_BY_KEY["scene_detail"].steps:
        detail.write(value)
        assert detail.read() == value and dialog.form.settings().scene_detail == value
    assert combo.count() == 10  # the value of its own stays offered
    detail.write(777_777)  # another one replaces it
    assert detail.read() == 777_777 and "777,777" in combo.currentText() and combo.findText("123,456") < 0

    # with an estimate for some photos each step shows its time per iteration and memory
    estimate = estimate_training(dialog.form.settings().updated({"scene_detail": 0}), [(4032, 3024)] * 23,
                                 combo.values())
    dialog.form.set_estimate(estimate)
    texts = [combo.itemText(i) for i in range(combo.count())]
    assert texts[0] == f"auto ({estimate['max_gaussians']:,}) — " + texts[0].split(" — ")[1]
    assert all(" s/iteration, " in text for text in texts), texts
    assert detail.read() == 777_777
    dialog.form.set_estimate(None)
    assert combo.itemText(1) == "25,000"

    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert read_user_file(paths.user_settings_file())["scene_detail"] == 777_777
    assert window.settings.scene_detail == 777_777


def test_plain_labels_and_an_advanced_box(window, qtbot, artifacts):
    """Issue 25, item 8: Preferences listed internal names ("Sh degree", "Gpu check interval" without its
    unit); now plain words with units, and the expert settings under Advanced in each tab."""
    from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel

    dialog = open_preferences(window, qtbot)
    form = dialog.form
    labels = {label.text() for label in form.findChildren(QLabel)}
    assert "View-dependent colour (0 = flat, 3 = most)" in labels and "Sh degree" not in labels
    assert "System panel refresh (seconds)" in labels
    for group in dict.fromkeys(spec.group for spec in SPECS):
        box = form.findChild(QGroupBox, f"advanced:{group}")
        expected = {spec.label for spec in SPECS if spec.group == group and spec.advanced}
        if not expected:
            assert box is None
            continue
        layout = box.layout()
        assert isinstance(layout, QFormLayout)
        inside = {layout.itemAt(row, QFormLayout.ItemRole.LabelRole).widget().text() for row in range(layout.rowCount())}
        assert inside == expected
    dialog.grab().save(str(artifacts / "preferences.png"))
    dialog.reject()


def test_preferences_say_where_stages_run_and_check_a_cluster_without_blocking(window, qtbot, monkeypatch):
    """Issue 24: Preferences say whether the executor's cluster is reachable and what it offers, asked in a
    thread (a cluster that does not answer takes seconds: the window goes on meanwhile). The cluster tests
    check the line with a real cluster (tests/cluster/test_ray_executor.py)."""
    import importlib.util
    import socket
    import time

    # Ray Client's own waits, shortened (30 s by default): the line is what is tested
    monkeypatch.setenv("RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S", "1")
    monkeypatch.setenv("RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S", "2")
    dialog = open_preferences(window, qtbot)
    check = dialog.cluster
    assert check.line.objectName() == "clusterStatus" and check.button.objectName() == "clusterCheck"
    assert check.line.text() == "stages run on this computer" and not check.checking  # local: said at once

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"ray://127.0.0.1:{probe.getsockname()[1]}"  # nothing listens there
    dialog.form.fields["executor"].write(address)
    began = time.perf_counter()
    qtbot.mouseClick(check.button, Qt.MouseButton.LeftButton)
    assert time.perf_counter() - began < 0.5  # the click returns at once: the check runs in a thread
    assert check.checking and check.line.text() == f"{address}: checking…"
    qtbot.waitUntil(lambda: not check.checking, timeout=90_000)
    if importlib.util.find_spec("ray") is not None:
        assert check.line.text().startswith(f"{address}: cannot reach {address}"), check.line.text()
        assert "executor=local" in check.line.text()
    else:
        assert "needs Ray, which is not installed here" in check.line.text()

    dialog.form.fields["executor"].write("cluster-please")  # a value the field marks wrong: said at once
    qtbot.mouseClick(check.button, Qt.MouseButton.LeftButton)
    assert "is not local, auto or ray://HOST:PORT" in check.line.text() and not check.checking
    dialog.reject()
