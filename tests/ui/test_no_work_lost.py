"""Issue 25, item 1: no work lost to one key. Ctrl+R on a finished project asks before it recomputes and
deletes the result; Esc (clearing the log search) never cancels a run; a cancel asks once the running stage
has worked for a while. The real window under Xvfb."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
from dataset_builders import render_photos, write_trainer_output
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from splatstudio.cli import main as cli
from splatstudio.model.project import RESULT_PLY
from splatstudio.ui import project_page as project_page_module

RUN_TIMEOUT = 240_000


def _button(box: QMessageBox, text: str):
    return next(b for b in box.buttons() if b.text().replace("&", "") == text)


@pytest.fixture()
def finished(library, tmp_path) -> str:
    """A project whose every stage is done (opened from a trained model, filtered and converted)."""
    photos = render_photos(tmp_path / "images", count=2)
    output = write_trainer_output(tmp_path / "model", photos, None, iterations=(30,), gaussians=300, sh_degree=0)
    assert cli(["--library", str(library.folder), "open", str(output), "--name", "Finished", "--run"]) == 0
    return str(library.get("Finished").folder)


def test_reconstruct_on_a_finished_project_asks_and_no_keeps_the_result(window, qtbot, finished):
    window.open_project(finished)
    page = window.project_page
    result = page.project.path(RESULT_PLY)
    window.actions_by_name["reconstruct"].trigger()
    box = page.question
    assert box is not None and box.isVisible() and "again" in box.text()
    kept = page.project.summary()["gaussian_count"]  # the filtered result's
    assert "stays in the 3D view" in box.informativeText() and f"({kept:,} Gaussians)" in box.informativeText()
    assert box.defaultButton().text().replace("&", "") == "No"
    assert not window.queue.is_queued(finished)
    _button(box, "No").click()
    qtbot.waitUntil(lambda: page.question is None)
    qtbot.wait(200)
    assert not window.queue.is_queued(finished) and result.is_file()

    window.actions_by_name["reconstruct"].trigger()
    with qtbot.waitSignal(window.queue.sig_run_refused, timeout=10_000) as refused:
        _button(page.question, "Reconstruct").click()
    assert "no photos" in refused.args[1]  # it was asked to run from the first stage: this one has none


def test_a_rerun_keeps_the_previous_result_until_the_new_one_replaces_it(window, qtbot, finished, make_project):
    folder = Path(finished)  # the finished project gets photos, so that a re-run can start
    photos = Path(make_project("Photos"))
    shutil.copytree(photos / "images", folder / "images", dirs_exist_ok=True)
    shutil.copyfile(photos / "import.json", folder / "import.json")
    window.open_project(finished)
    page = window.project_page
    result = page.project.path(RESULT_PLY)
    before = result.read_bytes()
    gaussians = page.project.summary()["gaussian_count"]
    page.until.setCurrentIndex(page.until.findData("features"))
    window.actions_by_name["reconstruct"].trigger()
    with qtbot.waitSignal(window.queue.sig_run_finished, timeout=RUN_TIMEOUT) as run:
        _button(page.question, "Reconstruct").click()
    assert run.args[1].status == "done"
    project = page.project
    assert not result.exists()  # the stages that made it are cleared for the re-run...
    ply, cameras, kept = project.shown_result()
    assert kept and ply.read_bytes() == before and cameras is not None  # ...but it is kept, whole
    qtbot.waitUntil(lambda: page._viewer._scene is not None and len(page._viewer._scene) == gaussians,
                    timeout=30_000)
    assert "previous result" in page.report.text() and f"{gaussians:,} Gaussians" in page.report.text()
    assert page.export_button.isEnabled()
    dialog = page.open_export_dialog()
    assert dialog is not None and dialog.sources == {"filtered": ply, "raw": None}
    dialog.close()
    assert project.summary()["gaussian_count"] == gaussians  # the library row too


def _run_until_features_started(window, qtbot, make_project):
    folder = make_project("Running")
    window.open_project(folder)
    page = window.project_page
    page.until.setCurrentIndex(page.until.findData("matching"))
    with qtbot.waitSignal(window.queue.sig_run_started, timeout=30_000) as started:
        page.reconstruct_button.click()
    run = started.args[1]
    qtbot.waitUntil(lambda: run.current_stage is not None, timeout=30_000)
    return folder, page, run


def test_esc_in_the_log_search_does_not_cancel_the_run(window, qtbot, make_project):
    folder, page, run = _run_until_features_started(window, qtbot, make_project)
    with warnings.catch_warnings():  # Xvfb has no window manager to activate the window; shortcuts need it
        warnings.simplefilter("ignore", DeprecationWarning)
        QApplication.setActiveWindow(window)
    search = window.log_panel.search
    search.setFocus()
    search.setText("SIFT")
    with qtbot.waitSignal(window.queue.sig_run_finished, timeout=RUN_TIMEOUT) as finished:
        qtbot.keyClick(search, Qt.Key.Key_Escape)
        page.stage_list.setFocus()  # and anywhere else in the window
        qtbot.keyClick(page.stage_list, Qt.Key.Key_Escape)
    assert finished.args[1].status == "done"


def test_a_cancel_asks_once_the_stage_has_worked_a_while(window, qtbot, make_project, monkeypatch):
    monkeypatch.setattr(project_page_module, "CONFIRM_CANCEL_AFTER", 0.0)  # not a minute, in a test
    folder, page, run = _run_until_features_started(window, qtbot, make_project)
    page.cancel_button.click()
    box = page.question
    assert box is not None and "Stop reconstructing" in box.text() and "resumable" in box.informativeText()
    _button(box, "No").click()
    qtbot.waitUntil(lambda: page.question is None)
    assert window.queue.is_queued(folder)
    with qtbot.waitSignal(window.queue.sig_run_finished, timeout=RUN_TIMEOUT) as finished:
        page.cancel_button.click()
        if page.question is not None:  # still the first stage, or already the next: both ask
            _button(page.question, "Stop the run").click()
    assert finished.args[1].status == "cancelled"


def test_a_stopped_training_shows_where_it_resumes_and_exports_nothing(window, qtbot, make_project):
    """Issue 25, item 6: after a cancel the training showed 0 % with no sign that it resumes from its
    checkpoint, and Export stayed enabled with nothing to export. The files a cancelled training leaves:
    its record and the trainer's checkpoint."""
    from splatstudio.model.project import CANCELLED, Project, StageRecord, now_iso

    folder = make_project("Stopped")
    project = Project(folder)
    project.set_settings(project.settings.updated({"iterations": 2000}))
    project.path("train").mkdir()
    project.path("train", "chkpnt834.pth").write_bytes(b"checkpoint")
    project.write_stage_record(StageRecord("train", CANCELLED, started=now_iso(), ended=now_iso(), duration=60.0,
                                           message="cancelled by the user"))
    window.open_project(folder)
    page = window.project_page
    assert page.items["train"].text(1) == "cancelled"
    assert page.bars["train"].value() == 417  # 834 of 2000
    assert "resumes from iteration 834 of 2,000" in page.bars["train"].format()
    assert not page.export_button.isEnabled()
