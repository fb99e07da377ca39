"""Runs from the GUI on a tiny generated scene: a full SfM run (with the event-loop stall measured and
screenshots), cancel then resume, a stage killed from outside, and two projects queued one at a time."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from _ui_helpers import TINY, drop_paths
from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor, QImage

from splatstudio.model.project import STAGES, Project
from splatstudio.ui.run_status import DetailsDialog
from splatstudio.ui.theme import STATE_COLORS

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 240_000


class StallMeter:
    """A 10 ms timer recording the largest gap between its ticks (how long the event loop stalled), and
    how much CPU time the GUI thread itself used in that gap (the part our code is responsible for; the
    rest is the machine not scheduling the thread)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.worst_cpu = 0.0
        self.ticks = 0
        self.started = False
        self._last: float | None = None
        self._last_cpu = 0.0
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._on_tick)

    def start(self) -> None:
        if self.started:
            return
        self.started = True
        self._last, self._last_cpu = time.perf_counter(), time.thread_time()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def _on_tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        if self._last is not None and now - self._last > self.worst:
            self.worst, self.worst_cpu = now - self._last, cpu - self._last_cpu
        self._last, self._last_cpu = now, cpu
        self.ticks += 1


def stage_state(window, stage: str) -> str:
    return window.project_page.items[stage].text(1)


def set_until(window, stage: str) -> None:
    page = window.project_page
    page.until.setCurrentIndex(page.until.findData(stage))


def test_full_run_from_a_drop_reaches_done_without_stalling_the_gui(window, qtbot, tiny_photos, artifacts):
    with qtbot.waitSignal(window.new_page.sig_checked, timeout=60_000):
        assert drop_paths(window, [tiny_photos])
    assert len(window.new_page.accepted_sources()) == 16
    window.new_page.name_edit.setText("Tiny scene")
    window.new_page.advanced.update(TINY)  # a few hundred training iterations instead of the preset's
    meter = StallMeter()
    curves: list = []
    window.queue.sig_run_started.connect(
        lambda _f, run: run.sig_progress.connect(lambda s, e: curves.append(e) if s == "train" else None))
    # measured while the stages stream their output: from the first progress line (the project page has
    # opened, its 3D view created) to the end of training (then the result loads)
    window.queue.sig_run_started.connect(
        lambda _f, run: run.sig_progress.connect(lambda *_: meter.start()))
    window.queue.sig_run_started.connect(
        lambda _f, run: run.sig_stage_finished.connect(lambda stage, _s: meter.stop() if stage == "train" else None))
    titles: list[str] = []  # the window title as training begins: progress weighted by expected stage time
    window.queue.sig_run_started.connect(lambda _f, run: run.sig_stage_started.connect(
        lambda stage: titles.append(window.windowTitle()) if stage == "train" else None))
    with qtbot.waitSignal(window.queue.sig_run_finished, timeout=RUN_TIMEOUT) as finished:
        window.new_page.create_run_button.click()
    meter.stop()
    folder, outcome = finished.args
    assert outcome.status == "done", outcome
    # 4 of 7 stages were done, but at 300 iterations they are ~40 % of the time (issue 25, item 2: 58 %)
    assert titles and 30 <= int(titles[0].split(" — ")[1].split("%")[0]) <= 45, titles
    load = os.getloadavg()[0]
    report = (f"worst event-loop stall while the stages streamed output: {meter.worst * 1000:.1f} ms over {meter.ticks} ticks, "
              f"GUI-thread CPU in that gap {meter.worst_cpu * 1000:.1f} ms, load average {load:.1f} on "
              f"{os.cpu_count()} cores")
    print("\n" + report)
    assert meter.ticks > 100
    assert meter.worst_cpu < 0.050, report  # our own work on the GUI thread never blocks it for long
    # The wall-clock stall (printed above) also counts the time the OS gives the stage processes and
    # whatever else the machine runs: a speed figure, so benchmarks/gui_stall.py measures it, not this test
    # (it failed here at 108 ms with 0.6 ms of our CPU, load 3 on 2 cores).

    page = window.project_page
    assert window.pages.currentWidget() is page
    for stage in STAGES:
        assert stage_state(window, stage) == "done"
        assert page.items[stage].foreground(1).color() == QColor(STATE_COLORS["done"])
        assert page.bars[stage].value() == 1000
        assert page.items[stage].text(3) != ""  # elapsed
    assert "Registered photos: <b>16</b> of 16 (14 trained on, 2 held out to measure the quality)" in page.report.text()
    assert "Quality: <b>" in page.report.text() and "held-out PSNR" in page.report.text()  # in words, then dB
    assert len(curves) >= 10 and curves[-1].figures["iteration"] == 300  # training streamed its curve
    assert not page.failure.isVisible()
    assert window.windowTitle() == "Tiny scene — SplatStudio"
    assert "Feature extraction" in window.log_panel.text() or "Processed file" in window.log_panel.text()
    # the result shows in the 3D view (loaded in a worker, drawn in full quality)
    qtbot.waitUntil(lambda: page._viewer is not None and page._viewer.stats.splats_total > 100, timeout=30_000)
    assert len(page._viewer.training_cameras) == 16  # the photos' cameras, the view starting at the first
    # issue 25, item 7: which photo's viewpoint it is, and how to move (it said nothing of either)
    qtbot.waitUntil(lambda: page.view_place.text().startswith("Viewing from photo 1 of 16: "), timeout=10_000)
    assert "drag to orbit" in page.view_hint.text() and page.view_hint.isVisible()
    page._viewer.next_camera()
    assert page.view_place.text().startswith("Viewing from photo 2 of 16: ")
    page._viewer.reset_view()
    assert page.view_place.text() == ""
    # issue 25, item 3: the photo beside the render from its viewpoint, the held-out ones first
    compare = page.compare
    assert page.compare_button.isEnabled() and "Compare the render with the photos" in page.report.text()
    page.report.linkActivated.emit("#compare")
    assert page.compare_button.isChecked() and compare.isVisible()
    assert page.view_place.text().startswith("Viewing from photo 1 of 16: ")
    qtbot.waitUntil(lambda: not compare.photo_view.pixmap().isNull(), timeout=10_000)
    assert compare.caption.text().startswith("Photo 1 of 16: ") and "held out" in compare.caption.text()
    assert page._viewer.wait_until_idle(30.0)
    qtbot.wait(200)
    window.grab().save(str(artifacts / "compare-with-photo.png"))
    # issue 23, item 4: each held-out view measured by the trainer's own code, worst first, its PSNR the
    # training's (the trainer's figure is the mean over the same views)
    assert compare.measure_button.isEnabled()
    compare.measure_button.click()
    qtbot.waitUntil(lambda: compare.views.count() == 2, timeout=120_000)
    measured = sorted(compare.measures.values(), key=lambda view: view.psnr)
    train_psnr = Project(folder).stage_record("train").figures["test_psnr"]
    assert abs(sum(view.psnr for view in measured) / 2 - train_psnr) < 0.1, (measured, train_psnr)
    assert compare.views.item(0).text().startswith(f"{measured[0].psnr:.2f} dB")
    compare.mode.setCurrentIndex(compare.mode.findData("difference"))
    compare._on_view_chosen(compare.views.item(1))
    assert page.view_place.text().endswith(measured[1].name) and f"{measured[1].psnr:.2f} dB" in compare.caption.text()
    qtbot.waitUntil(lambda: not compare.photo_view.pixmap().isNull(), timeout=10_000)
    compare.mode.setCurrentIndex(compare.mode.findData("photo"))
    page._viewer.jump_to_camera(5)
    assert compare.caption.text().startswith("Photo 6 of 16: ") and "used in training" in compare.caption.text()
    page._viewer.reset_view()
    assert "Step to a photo's viewpoint" in compare.caption.text() and compare.photo_view.pixmap().isNull()
    page.compare_button.setChecked(False)
    assert page._viewer.wait_until_idle(30.0)
    qtbot.wait(200)
    window.grab().save(str(artifacts / "finished-project.png"))

    window.show_library()
    qtbot.waitUntil(lambda: (window.library_page.row_for(folder) or {}).get("status") == "done", timeout=10_000)
    row = window.library_page.row_for(folder)
    assert row["image_count"] == 16 and row["processing_seconds"] > 0 and row["gaussian_count"] > 100
    assert row["status_text"] == Project(folder).describe_status() == "done"
    # the card's thumbnail becomes a render of the result, made by the real viewer in its own process
    rendered = Path(folder) / "output" / "thumbnail.png"
    qtbot.waitUntil(rendered.is_file, timeout=60_000)
    qtbot.waitUntil(lambda: window.library_page._thumbs_requested.get(folder) == str(rendered)
                    and folder in window.library_page.model.thumbs, timeout=10_000)
    image = QImage(str(rendered))
    assert (image.width(), image.height()) == (256, 192)
    centre = image.pixelColor(128, 96)
    assert centre != image.pixelColor(0, 0) or centre.lightness() > 10  # not an empty frame
    window.grab().save(str(artifacts / "library.png"))

    # issue 25, item 5: a finished project opened again shows its curves and its log (both were empty)
    live = {key: list(xs) for key, (xs, _ys) in window.curves_panel.data.items()}
    window.curves_panel.clear()
    window.log_panel.view.clear()
    window.open_project(folder)
    qtbot.waitUntil(lambda: len(window.curves_panel.data["loss"][0]) >= len(live["loss"]), timeout=10_000)
    for key, (xs, _ys) in window.curves_panel.data.items():  # every point the live curves got (and those
        assert set(live[key]) <= set(xs), key  # the live stream skipped: it sends at most 10 a second)
    assert live["loss"][-1] == 300 and live["eval_psnr"]  # held-out evaluations too
    qtbot.waitUntil(lambda: "the logs of its last run" in window.log_panel.text(), timeout=10_000)
    text = window.log_panel.text()
    assert text.index("=== Feature extraction") < text.index("=== Gaussian Splatting training") \
        < text.index("=== .splat conversion")


def test_cancel_mid_stage_then_resume_completes(window, qtbot, make_project, artifacts):
    folder = make_project("Cancel me")
    window.open_project(folder)
    set_until(window, "matching")
    page = window.project_page
    shot: list[bool] = []

    def on_progress(stage, event):
        if stage == "matching" and event.fraction > 0 and not shot:
            shot.append(True)
            window.grab().save(str(artifacts / "running-project.png"))
            assert window.windowTitle().endswith("% — SplatStudio")
            page.cancel_button.click()

    def hook(_folder, run):
        run.sig_progress.connect(on_progress)

    window.queue.sig_run_started.connect(hook)
    assert not page.resume_button.isEnabled()  # a new project has nothing to resume
    with qtbot.waitSignal(window.queue.sig_run_finished, timeout=RUN_TIMEOUT) as finished:
        page.reconstruct_button.click()
    outcome = finished.args[1]
    assert (outcome.status, outcome.stage) == ("cancelled", "matching")
    assert stage_state(window, "features") == "done" and stage_state(window, "matching") == "cancelled"
    assert page.resume_button.isEnabled() and not page.cancel_button.isEnabled()
    assert "cancelled at Feature matching" in page.status_label.text()

    window.queue.sig_run_started.disconnect(hook)
    with qtbot.waitSignal(window.queue.sig_run_finished, timeout=RUN_TIMEOUT) as finished:
        page.resume_button.click()
    assert finished.args[1].status == "done"
    assert stage_state(window, "features") == "done" and stage_state(window, "matching") == "done"


def test_stage_killed_from_outside_shows_failed_with_its_log(window, qtbot, make_project):
    folder = make_project("Killed")
    window.open_project(folder)
    set_until(window, "features")
    killed: list[int] = []

    def on_progress(stage, event):
        run = window.queue.active.get(folder)
        if stage == "features" and event.fraction > 0 and not killed and run is not None and run.current:
            killed.append(run.current.process.processId())
            os.kill(killed[0], signal.SIGKILL)

    window.queue.sig_run_started.connect(lambda _f, run: run.sig_progress.connect(on_progress))
    with qtbot.waitSignal(window.queue.sig_run_finished, timeout=RUN_TIMEOUT) as finished:
        window.project_page.resume()
    assert killed
    outcome = finished.args[1]
    assert (outcome.status, outcome.stage) == ("failed", "features")
    page = window.project_page
    assert stage_state(window, "features") == "failed"
    assert page.failure.isVisible()
    assert "Failed at Feature extraction" in page.failure.title.text()
    assert "killed" in page.failure.message.text()
    qtbot.waitUntil(lambda: page.failure.log.toPlainText().strip() != "", timeout=10_000)
    assert window.log_panel.text().strip() != ""
    assert page.resume_button.isEnabled()
    page.failure.sig_details_requested.emit()  # the "Details…" button
    details = page.findChild(DetailsDialog)
    assert details is not None and details.isVisible() and "no traceback" in details.trace.toPlainText()
    qtbot.waitUntil(lambda: "Feature extraction" in details.log.toPlainText(), timeout=10_000)
    details.close()

    # reopened later, the project tells the same story from its records (a killed process is "interrupted")
    window.show_library()
    window.open_project(folder)
    assert page.failure.isVisible() and "Interrupted at Feature extraction" in page.failure.title.text()
    qtbot.waitUntil(lambda: page.failure.log.toPlainText().strip() != "", timeout=10_000)

    with qtbot.waitSignal(window.queue.sig_run_finished, timeout=RUN_TIMEOUT) as finished:
        page.retry_from("features")  # what the stage row's "Retry from this stage" does
    assert finished.args[1].status == "done" and stage_state(window, "features") == "done"
    assert not page.failure.isVisible()


def test_two_queued_projects_run_one_after_the_other(window, qtbot, make_project):
    window.apply_settings(window.settings.updated({"max_concurrent_runs": 1}))
    first, second = make_project("First"), make_project("Second")
    order: list[tuple[str, str]] = []
    window.queue.sig_run_started.connect(lambda folder, _run: order.append(("start", folder)))
    window.queue.sig_run_finished.connect(lambda folder, _outcome: order.append(("end", folder)))
    for folder in (first, second):
        window.open_project(folder)
        set_until(window, "features")
        window.project_page.resume()
    assert list(window.queue.active) == [first]
    assert [str(e.folder) for e in window.queue.waiting] == [second]
    assert window.queue_panel.waiting.count() == 1 and window.queue_panel.active.count() == 1
    assert "queued (position 1)" in window.project_page.status_label.text()
    window.show_library()
    qtbot.waitUntil(lambda: window.library_page.row_for(second) is not None, timeout=10_000)
    assert window.library_page.model.status_text(window.library_page.row_for(second)) == "queued"
    qtbot.waitUntil(lambda: len(order) == 4, timeout=RUN_TIMEOUT)
    assert order == [("start", first), ("end", first), ("start", second), ("end", second)]
    assert Project(first).stage_record("features").status == "done"
    assert Project(second).stage_record("features").status == "done"


def test_the_time_left_is_smoothed_and_shows_its_range(window, make_project):
    """Issue 25, item 2: the time left swung between 9:40 and 16:59 within two minutes, as the trainer's own
    figure did. The stage list shows their smoothed value and, while they disagree, the range."""
    from splatstudio.pipeline.events import Progress

    window.open_project(make_project("Timed"))
    page = window.project_page
    page._on_stage_started("train")
    for step in range(30):
        eta = 580.0 if step % 2 else 1019.0
        page._on_progress("train", Progress("train", step / 100, f"iteration {step}", {"eta_sec": eta}))
    left = page.items["train"].text(4)
    figure, spread = left.split(" (")
    minutes, seconds = map(int, figure.split(":"))
    assert 12 * 60 <= minutes * 60 + seconds <= 15 * 60, left  # between the two, not either
    low, high = spread.rstrip(")").split("–")
    assert low.startswith("9:") and high.startswith("16:"), left
    assert page.items["features"].text(4) == ""  # not running: no time left


def test_the_report_says_which_pairs_were_matched_and_why_photos_were_left_out():
    """Issue 20, item 3: what SfM chose and diagnosed reaches the report in words."""
    from splatstudio.model.project import DONE, StageRecord
    from splatstudio.ui.run_status import run_report

    records = {
        "matching": StageRecord("matching", DONE, duration=3.0, figures={
            "matcher_reason": "23 photos: each is matched with the 5 that look most like it, not all 253 pairs"}),
        "mapping": StageRecord("mapping", DONE, duration=5.0, figures={
            "registered": 21, "total": 23, "dropped": ["IMG_07.jpg", "IMG_08.jpg"],
            "diagnosis": {"cause": "2 groups of photos that share no features", "photos": {},
                          "advice": "take more photos between IMG_06.jpg and IMG_07.jpg"}}),
    }
    report = run_report(records)
    assert "Registered photos: <b>21</b> of 23" in report
    assert "Left out: IMG_07.jpg, IMG_08.jpg" in report and "share no features" in report
    assert "take more photos between IMG_06.jpg and IMG_07.jpg" in report
    assert "each is matched with the 5 that look most like it, not all 253 pairs" in report
