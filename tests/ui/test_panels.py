"""The docks: training curves, log, queue reordering; and exporting a finished model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QModelIndex, Qt

from splatstudio.io.formats import load_splats, save_splats
from splatstudio.model import paths
from splatstudio.model.settings import write_user_file
from splatstudio.model.splatcloud import SplatCloud
from splatstudio.pipeline.events import Eval, LogLine, Preview, Progress
from splatstudio.ui.log_panel import MAX_LINES
from splatstudio.ui.theme import log_colors


def test_curves_buffer_train_figures_and_repaint_on_a_timer(window, qtbot):
    curves = window.curves_panel
    curves.clear()
    for iteration in range(0, 3000, 10):
        figures = {"iteration": iteration, "loss": 1.0 / (1 + iteration), "psnr": 10 + iteration / 300,
                   "num_gaussians": 1000 + iteration, "sec_per_iter": 0.3, "eta_sec": 100.0}
        curves._on_progress("train", Progress("train", iteration / 3000, "training", figures))
    curves._on_progress("features", Progress("features", 0.5, "extracting", {"iteration": 5, "loss": 9.0}))
    curves._on_progress("train", Progress("train", 1.0, "training", {"iteration": 3000, "loss": 0.001}))
    curves._on_event("train", Eval("train", 3000, 21.5, 0.8))
    assert len(curves.data["loss"][0]) == 301 and len(curves.data["psnr"][0]) == 300
    assert curves.evals == ([3000.0], [21.5])
    assert curves.curves["loss"].xData is None or len(curves.curves["loss"].xData) < 301  # not painted yet
    qtbot.waitUntil(lambda: curves.curves["loss"].xData is not None and len(curves.curves["loss"].xData) == 301,
                    timeout=2_000)
    assert list(curves.eval_points.yData) == [21.5]


def test_log_highlights_levels_follows_the_tail_and_caps_lines(window, qtbot):
    log = window.log_panel
    log.view.clear()
    log.append_lines([LogLine("plain"), LogLine("warning: careful", "warning"), LogLine("error: broken", "error")])
    document = log.view.document()
    colors = [document.findBlockByNumber(i).begin().fragment().charFormat().foreground().color().name()
              for i in range(3)]
    assert colors[1] == log_colors()["warning"] and colors[2] == log_colors()["error"] and colors[0] != colors[2]
    log.append_lines([LogLine(f"line {i}") for i in range(MAX_LINES + 500)])
    assert document.blockCount() <= MAX_LINES
    bar = log.view.verticalScrollBar()
    assert bar.value() == bar.maximum()  # followed the tail
    bar.setValue(0)  # the person scrolled up: new lines must not pull the view down
    log.append_lines([LogLine("more")])
    assert bar.value() == 0
    log.search.setText("line 1234")
    log._on_search_requested()
    assert log.view.textCursor().selectedText() == "line 1234"


def test_the_log_keeps_following_its_end_after_the_panel_is_resized(window, qtbot):
    """Issue 25, item 5: after the dock was made smaller, new lines no longer scrolled into view."""
    window.resize(1280, 800)
    window.docks["log"].raise_()
    qtbot.waitUntil(lambda: window.log_panel.isVisible())
    log = window.log_panel
    bar = log.view.verticalScrollBar()
    log.append_lines([LogLine(f"line {i}") for i in range(300)])
    assert bar.value() == bar.maximum() > 0
    for height in (120, 300, 90):
        window.resizeDocks([window.docks["log"]], [height], Qt.Orientation.Vertical)
        qtbot.wait(50)
        log.append_lines([LogLine(f"after {height}")])
        qtbot.wait(10)
        assert bar.value() == bar.maximum(), height
    bar.setValue(10)  # the person scrolls up: a resize and new lines leave the view where they put it
    window.resizeDocks([window.docks["log"]], [200], Qt.Orientation.Vertical)
    log.append_lines([LogLine("more")])
    qtbot.wait(10)
    assert bar.value() == 10
    bar.setValue(bar.maximum())  # back at the end: it follows again
    log.append_lines([LogLine("and more")])
    assert bar.value() == bar.maximum()


def test_the_panels_show_the_project_that_is_shown(window, qtbot, make_project, tmp_path):
    """Issue 25, item 5: the log mixed the previous project's lines with the new one's, and a finished
    project showed an empty log and empty curves."""
    from splatstudio.pipeline.train import CurveHistory

    first, second = make_project("First"), make_project("Second")
    for folder, word in ((first, "alpha"), (second, "beta")):
        (Path(folder) / "logs").mkdir(exist_ok=True)
        (Path(folder) / "logs" / "features.log").write_text(f"=== Feature extraction ===\n{word} features\n")
        history = CurveHistory(Path(folder) / "logs" / "train-curves.jsonl", resume=False, log=print)
        for iteration in range(10, 110, 10):
            history.add(iteration, loss=1.0 / iteration, psnr=15.0 + iteration / 100, num_gaussians=500)
        history.add(100, eval_psnr=18.0 if word == "alpha" else 19.0)
        history.close()
    window.open_project(first)
    qtbot.waitUntil(lambda: "alpha features" in window.log_panel.text(), timeout=5_000)
    qtbot.waitUntil(lambda: window.curves_panel.evals == ([100.0], [18.0]), timeout=5_000)
    assert len(window.curves_panel.data["loss"][0]) == 10
    window.open_project(second)
    qtbot.waitUntil(lambda: "beta features" in window.log_panel.text(), timeout=5_000)
    assert "alpha" not in window.log_panel.text()
    qtbot.waitUntil(lambda: window.curves_panel.evals == ([100.0], [19.0]), timeout=5_000)
    assert window.log_panel.current_log == Path(second) / "logs" / "features.log"


def test_queue_panel_reorders_and_removes_waiting_runs(window, qtbot, make_project):
    window.apply_settings(window.settings.updated({"max_concurrent_runs": 1}))
    folders = [make_project(name) for name in ("Q1", "Q2", "Q3")]
    for folder in folders:
        window.open_project(folder)
        window.project_page.until.setCurrentIndex(0)
        window.project_page.resume()
    panel = window.queue_panel
    assert [panel.waiting.item(i).text() for i in range(panel.waiting.count())] == ["Q2", "Q3"]
    panel.waiting.setCurrentRow(1)
    panel.up.click()
    assert [str(e.folder) for e in window.queue.waiting] == [folders[2], folders[1]]
    assert panel.waiting.currentItem().text() == "Q3"
    panel.remove.click()
    assert [str(e.folder) for e in window.queue.waiting] == [folders[1]]
    assert panel.active.count() == 1 and panel.active.item(0).text().startswith("Q1")


def test_queue_panel_reorders_by_drag(window, qtbot, make_project):
    window.apply_settings(window.settings.updated({"max_concurrent_runs": 1}))
    folders = [make_project(name) for name in ("D1", "D2", "D3", "D4")]
    for folder in folders:
        window.open_project(folder)
        window.project_page.until.setCurrentIndex(0)
        window.project_page.resume()
    panel = window.queue_panel
    model = panel.waiting.model()
    # An internal-move drop moves the row in the list's model (what QListWidget does on a drop);
    # the queue must follow the list's new order once the move has settled.
    assert model.moveRow(QModelIndex(), 2, QModelIndex(), 0)
    qtbot.waitUntil(lambda: [str(e.folder) for e in window.queue.waiting] == [folders[3], folders[1], folders[2]],
                    timeout=2_000)
    assert [panel.waiting.item(i).text() for i in range(panel.waiting.count())] == ["D4", "D2", "D3"]


def random_cloud(count: int) -> SplatCloud:
    rng = np.random.default_rng(0)
    return SplatCloud(positions=rng.normal(size=(count, 3)).astype(np.float32),
                      scales=np.full((count, 3), -3.0, np.float32),
                      rotations=np.tile(np.array([1, 0, 0, 0], np.float32), (count, 1)),
                      opacities=np.zeros(count, np.float32),
                      sh_dc=rng.normal(size=(count, 3)).astype(np.float32))


def test_export_converts_the_model_in_a_worker(window, qtbot, tmp_path):
    count = 50
    cloud = random_cloud(count)
    source = tmp_path / "point_cloud.ply"
    save_splats(cloud, source)
    messages: list[str] = []
    window.project_page.sig_message.connect(messages.append)
    target = tmp_path / "scene.splat"
    window.project_page.export(source, str(target))
    qtbot.waitUntil(lambda: len(messages) == 2, timeout=10_000)
    assert messages[-1] == f"exported 50 splats to {target}"
    assert len(load_splats(target)) == count


def test_export_dialog_previews_size_and_count_then_writes(window, qtbot, make_project, tmp_path, artifacts):
    folder = Path(make_project("Exported"))
    cloud = random_cloud(400)
    cloud.opacities[:100] = -6.0  # alpha 0.0025
    save_splats(cloud, folder / "output" / "point_cloud.ply")
    window.open_project(str(folder))
    messages: list[str] = []
    window.project_page.sig_message.connect(messages.append)
    dialog = window.project_page.open_export_dialog()
    assert not dialog.raw_choice.isEnabled()  # no trainer output in this project, only the result
    qtbot.waitUntil(lambda: dialog.export_button.isEnabled(), timeout=10_000)
    assert dialog.summary.text().startswith("400 of 400 splats")
    dialog.format.setCurrentIndex(dialog.format.findData(".splat"))
    dialog.min_opacity.setValue(0.1)
    qtbot.waitUntil(lambda: dialog.export_button.isEnabled(), timeout=10_000)
    assert dialog.summary.text() == "300 of 400 splats · 9.6 kB as .splat"
    temporary = dialog.preview.path
    dialog.crop.setChecked(True)
    for axis in range(3):
        dialog.crop_min[axis].setValue(0.0)
        dialog.crop_max[axis].setValue(5.0)
    qtbot.waitUntil(lambda: dialog.export_button.isEnabled() and dialog.preview.path != temporary, timeout=10_000)
    assert not temporary.exists()  # superseded previews are removed
    dialog.grab().save(str(artifacts / "export-dialog.png"))
    inside = (cloud.positions[100:] >= 0).all(axis=1).sum()
    assert dialog.summary.text().startswith(f"{inside} of 400 splats")
    dialog.crop_max[0].setValue(-1.0)  # an empty box is explained, not exported
    qtbot.waitUntil(lambda: "below its maximum" in dialog.summary.text(), timeout=5_000)
    assert not dialog.export_button.isEnabled()
    dialog.crop.setChecked(False)
    qtbot.waitUntil(lambda: dialog.export_button.isEnabled(), timeout=10_000)
    target = tmp_path / "chosen"
    dialog.export_to(str(target))
    qtbot.waitUntil(lambda: bool(messages) and messages[-1].startswith("exported"), timeout=10_000)
    out = tmp_path / "chosen.splat"
    assert len(load_splats(out)) == 300 and out.stat().st_size == 32 * 300
    assert messages[-1] == f"exported 300 splats to {out} (9.6 kB)"
    assert not dialog.isVisible()


def test_a_finished_model_opens_in_the_embedded_viewer(window, qtbot, make_project, artifacts):
    from splatstudio.render import viewer
    folder = make_project("Viewed")
    save_splats(random_cloud(200), Path(folder) / "output" / "point_cloud.ply")
    window.open_project(folder)
    page = window.project_page
    assert page.export_button.isEnabled()
    assert isinstance(page._viewer, viewer.SplatCanvas)
    holder = page.viewer_area.currentWidget()
    assert holder is page._viewer_holder and page._viewer.native.parent() is holder
    assert holder.testAttribute(Qt.WidgetAttribute.WA_NativeWindow)  # composed with OpenGL on its own
    qtbot.waitUntil(lambda: page._viewer.stats.splats_total == 200, timeout=20_000)
    qtbot.wait(500)
    window.grab().save(str(artifacts / "project-with-viewer.png"))

    # training previews replace the model; of several arriving during a load, only the newest is loaded
    for count in (120, 80):  # (live preview is on by default)
        preview = Path(folder) / f"preview-{count}.ply"
        save_splats(random_cloud(count), preview)
        page._on_event("train", Preview("train", count, str(preview)))
    qtbot.waitUntil(lambda: page._viewer.stats.splats_total == 80 and not page._model_loading, timeout=20_000)
    off = window.settings.updated({"live_preview": False})  # what Preferences' OK does: the file, then the window
    write_user_file(paths.user_settings_file(), off)
    window.apply_settings(off)
    page._on_event("train", Preview("train", 120, str(Path(folder) / "preview-120.ply")))
    assert not page._model_loading  # with live preview off, training previews leave the view alone


def test_curves_are_readable_at_the_default_layout(window, qtbot, artifacts):
    """Issue 25, item 5: in the default bottom dock the four plots, two by two, were strips ~15 px tall.
    In a wide, low dock they stand in one row, each the dock's height."""
    window.resize(1280, 800)
    window.docks["curves"].raise_()
    qtbot.waitUntil(lambda: window.curves_panel.isVisible())
    panel = window.curves_panel
    qtbot.wait(100)
    assert panel.width() > 2.5 * panel.height()  # the default layout: the bottom dock
    assert panel._columns == 4
    heights = [plot.vb.sceneBoundingRect().height() for plot in panel.plots]
    assert min(heights) >= 0.5 * panel.height(), (heights, panel.height())
    window.grab().save(str(artifacts / "training-curves.png"))
    window.docks["log"].raise_()
    assert window.log_panel.height() >= 150  # the log, in the same dock, shows lines, not a strip
