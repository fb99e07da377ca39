"""A screenshot tour of the window: import → run → result → compare → clean up → edit → export, one PNG per
step (issues 25 and 23).

    xvfb-run -a -s "-screen 0 1400x1000x24" .venv/bin/python benchmarks/screenshot_tour.py resources/tour

Drives the real window, as a person would, on a generated photo set in a throwaway library and
configuration (nothing of the user's is read or changed): the empty library, the photos dropped on it,
the run while it trains, the finished project with its 3D view, the render blended with a held-out photo
after measuring every held-out view (worst first), the guided clean-up's preview (what goes tinted), a
rectangle selection in the edit mode, the export dialog, and the library with the new project. Training is
short (a few hundred iterations) so the tour takes a few minutes on a CPU. The README shows the images.

The clean-up, edit and compare steps are functions of their own (`cleanup_step`, `edit_step`,
`compare_step`, and `grab` for the picture): ``tests/ui/test_tour.py`` takes those screenshots of a small
finished project in every test run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

STEPS = ("1-library", "2-new-project", "3-training", "4-result", "5-compare", "6-cleanup", "7-edit", "8-export",
         "9-library-with-project")
SIZE = (1280, 800)


def _wait(app, condition: Callable[[], bool], seconds: float, what: str) -> None:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise SystemExit(f"screenshot tour: still waiting after {seconds:.0f} s for {what}")
        app.processEvents()
        time.sleep(0.02)


def _settle(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def grab(window):
    """The window as a person sees it (a QImage). The 3D view is a native OpenGL child, which a grab of the
    window can miss after a resize (it came out black beside the photo): the viewer's own picture of the
    same frame is put in its place."""
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QImage, QPainter

    image = window.grab().toImage()
    viewer = window.project_page._viewer
    if window.pages.currentWidget() is window.project_page and viewer is not None and viewer.scene is not None:
        pixels = np.ascontiguousarray(viewer.render_image()[:, :, :3])
        picture = QImage(pixels.data, pixels.shape[1], pixels.shape[0], 3 * pixels.shape[1],
                         QImage.Format.Format_RGB888)
        native = viewer.native
        corner = native.mapTo(window, QPoint(0, 0))
        painter = QPainter(image)
        painter.drawImage(corner, picture.scaled(native.width(), native.height()))
        painter.end()
    return image


def compare_step(app, page, measure: bool = True) -> None:
    """The render beside the first (held-out) photo; with ``measure``, every held-out view measured by the
    trainer's own code (listed worst first) and the photo blended half and half with the trainer's render."""
    page.compare_button.setChecked(True)
    compare = page.compare
    _wait(app, lambda: not compare.photo_view.pixmap().isNull(), 60, "the photo to compare with")
    if measure and compare.measure_button.isEnabled():
        compare.measure_button.click()
        _wait(app, lambda: compare.views.count() > 0 and compare.process is None, 600, "the photos to be measured")
        compare.mode.setCurrentIndex(compare.mode.findData("blended"))
        compare._on_view_chosen(compare.views.item(0))  # the worst view
        _wait(app, lambda: not compare.photo_view.pixmap().isNull(), 60, "the blended picture")
    _settle(app, 1.0)
    page._viewer.update()  # drawn again at its new, narrower size
    _settle(app, 1.0)
    page._viewer.wait_until_idle(30.0)


def cleanup_step(app, page, strength: int = 50) -> None:
    """The guided clean-up opened at ``strength`` (of 100): what it removes said per detector, and tinted in
    the 3D view."""
    page.compare_button.setChecked(False)
    page.cleanup_button.setChecked(True)
    page.cleanup.slider.setValue(strength)
    _wait(app, lambda: page.cleanup.summary.text().startswith(("Removes", "Off")), 300, "the clean-up's preview")
    _wait(app, lambda: page._viewer.scene.marked is not None or page.cleanup.mask is None, 30, "the tint")
    _settle(app, 0.5)
    page._viewer.wait_until_idle(60.0)


def edit_step(app, page) -> None:
    """The edit mode with a rectangle drawn over the middle of the view: the selected splats tinted, the
    panel counting them; what a kept clean-up removes is hidden (its "Show the result")."""
    page.cleanup.hide_box.setChecked(True)
    page.cleanup_button.setChecked(False)
    page.edit_button.setChecked(True)
    panel = page.edit
    _wait(app, lambda: panel.session is not None, 30, "the edit session")
    viewer = page._viewer
    viewer.wait_until_idle(60.0)
    w, h = viewer.size
    panel.tools.select_shape("rectangle", [(0.38 * w, 0.3 * h), (0.62 * w, 0.7 * h)], "replace")
    _settle(app, 0.5)
    viewer.wait_until_idle(60.0)


def tour(out: Path, work: Path) -> list[Path]:
    # a library, configuration and Qt settings of the tour's own
    os.environ["SPLATSTUDIO_LIBRARY"] = str(work / "library")
    os.environ["SPLATSTUDIO_CONFIG_DIR"] = str(work / "config")
    os.environ["XDG_DATA_HOME"] = str(work / "xdg-data")
    (work / "xdg-data").mkdir(parents=True, exist_ok=True)

    from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    from splatstudio.model import paths
    from splatstudio.model.library import Library
    from splatstudio.model.sample import generate_sample
    from splatstudio.ui.app import create_main_window

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(work / "qsettings"))
    app = QApplication.instance() or QApplication(sys.argv)
    photos = generate_sample(work / "Garden gnome", 16, 480, 360, seed=1).directory
    window = create_main_window(Library(paths.default_library_dir()))
    window.resize(*SIZE)
    window.show()
    _settle(app, 1.0)
    shots: list[Path] = []
    out.mkdir(parents=True, exist_ok=True)

    def shot(step: str) -> None:
        _settle(app, 0.5)
        path = out / f"{step}.png"
        grab(window).save(str(path))
        shots.append(path)
        print(f"wrote {path}")

    shot(STEPS[0])

    data = QMimeData()  # the photos dropped on the window, as from a file manager
    data.setUrls([QUrl.fromLocalFile(str(photos))])
    center, action = window.rect().center(), Qt.DropAction.CopyAction
    QApplication.sendEvent(window, QDragEnterEvent(QPoint(center), action, data, Qt.MouseButton.LeftButton,
                                                   Qt.KeyboardModifier.NoModifier))
    QApplication.sendEvent(window, QDropEvent(QPointF(center), action, data, Qt.MouseButton.LeftButton,
                                              Qt.KeyboardModifier.NoModifier))
    page = window.new_page
    _wait(app, lambda: len(page.accepted_sources()) == 16, 120, "the 16 photos to be checked")
    page.advanced.update({"iterations": 600, "preview_every": 100, "max_features": 2048})
    shot(STEPS[1])

    finished: list = []
    window.queue.sig_run_finished.connect(lambda folder, outcome: finished.append(outcome))
    page.create_run_button.click()
    project_page = window.project_page
    _wait(app, lambda: (project_page.run is not None and project_page.run.current_stage == "train"
                        and project_page.states["train"].fraction > 0.4), 900, "training to be under way")
    shot(STEPS[2])

    _wait(app, lambda: bool(finished), 1800, "the run to finish")
    if finished[0].status != "done":
        raise SystemExit(f"screenshot tour: the run ended {finished[0].status}: {finished[0].message}")
    _wait(app, lambda: project_page._viewer is not None and project_page._viewer.stats.splats_total > 0, 120,
          "the result in the 3D view")
    project_page._viewer.wait_until_idle(30.0)
    shot(STEPS[3])

    compare_step(app, project_page)
    shot(STEPS[4])
    cleanup_step(app, project_page)
    shot(STEPS[5])
    edit_step(app, project_page)
    shot(STEPS[6])
    project_page.edit.action("select_none")
    project_page.edit_button.setChecked(False)

    dialog = project_page.open_export_dialog()
    _wait(app, lambda: dialog is not None and "splats" in dialog.summary.text(), 120, "the export preview")
    _settle(app, 0.5)
    path = out / f"{STEPS[7]}.png"
    dialog.grab().save(str(path))
    shots.append(path)
    print(f"wrote {path}")
    dialog.reject()

    window.show_library()
    _wait(app, lambda: bool(window.library_page.row_for(project_page.folder)), 60, "the library card")
    _settle(app, 3.0)  # the card's thumbnail is rendered in a process of its own
    shot(STEPS[8])
    window.queue.cancel_all()
    window.close()
    return shots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder for the PNGs")
    args = parser.parse_args()
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        parser.error("no screen: run it under xvfb-run (see the usage above)")
    with tempfile.TemporaryDirectory(prefix="splatstudio-tour-") as work:
        tour(args.out.resolve(), Path(work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
