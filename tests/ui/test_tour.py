"""The README's screenshots of the clean-up and the edit mode, taken by the screenshot tour's own steps
(``benchmarks/screenshot_tour.py``: `cleanup_step`, `edit_step`, `grab`) on a small finished project in the
real window: the clean-up's preview tints what goes, a rectangle in the edit mode tints what it selects, and
the pictures say so. The tour itself runs the same steps on a trained project to make ``resources/tour``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from _ui_helpers import write_cameras
from dataset_builders import junk_scene, ring_views
from PySide6.QtWidgets import QApplication

from splatstudio.io.formats import save_splats
from splatstudio.model.project import RESULT_PLY, TRAIN_CAMERAS
from splatstudio.render.camera import Intrinsics, Pose

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import screenshot_tour  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Function.*QMouseEvent.pos.*:DeprecationWarning")


def _view_pixels(window, image) -> np.ndarray:
    """The 3D view's part of a grabbed window image, as (H, W, 3) uint8."""
    from PySide6.QtCore import QPoint

    native = window.project_page._viewer.native
    corner = native.mapTo(window, QPoint(0, 0))
    part = image.copy(corner.x(), corner.y(), native.width(), native.height()).convertToFormat(
        image.Format.Format_RGB888)
    data = np.frombuffer(part.constBits(), np.uint8, part.sizeInBytes()).reshape(part.height(), part.bytesPerLine())
    return data[:, :3 * part.width()].reshape(part.height(), part.width(), 3).copy()


def test_the_tour_steps_show_the_clean_up_and_the_selection(window, qtbot, make_project, artifacts):
    folder = Path(make_project("Tour"))
    cloud, _parts = junk_scene()
    save_splats(cloud, folder / RESULT_PLY)
    write_cameras(folder / TRAIN_CAMERAS, ring_views())
    window.resize(1280, 800)
    window.open_project(str(folder))
    page = window.project_page
    qtbot.waitUntil(lambda: page._viewer.scene is not None and len(page._viewer.scene) == len(cloud), timeout=20_000)
    qtbot.waitUntil(lambda: page.edit_button.isEnabled() and page.cleanup_button.isEnabled(), timeout=10_000)
    viewer = page._viewer
    width, height = viewer.size
    viewer.set_camera(pose=Pose.look_at(np.array([0.0, -4.0, 0.0]), np.zeros(3), np.array([0.0, 0.0, 1.0])),
                      intrinsics=Intrinsics.from_fov_y(width, height, 50.0))
    assert viewer.wait_until_idle(30.0)
    app = QApplication.instance()
    plain = _view_pixels(window, screenshot_tour.grab(window))

    screenshot_tour.cleanup_step(app, page, strength=50)
    assert page.cleanup.isVisible() and page.cleanup.summary.text().startswith("Removes ")
    assert viewer.scene.marked is not None and viewer.scene.marked.sum() == page.cleanup.mask.sum() > 0
    image = screenshot_tour.grab(window)
    image.save(str(artifacts / "tour-cleanup.png"))
    cleaned = _view_pixels(window, image).astype(int)
    magenta = (cleaned[..., 0] > cleaned[..., 1] + 60) & (cleaned[..., 2] > cleaned[..., 1] + 40)
    was = plain.astype(int)
    assert magenta.sum() > 50 and magenta.sum() > 5 * ((was[..., 0] > was[..., 1] + 60)
                                                       & (was[..., 2] > was[..., 1] + 40)).sum()

    screenshot_tour.edit_step(app, page)
    assert not page.cleanup.isVisible() and page.edit.isVisible()
    selected = page.edit.session.selected_count
    assert 0 < selected < len(cloud) and f"{selected:,} of" in page.edit.count_label.text()
    image = screenshot_tour.grab(window)
    image.save(str(artifacts / "tour-edit.png"))
    shown = _view_pixels(window, image).astype(int)
    amber = (shown[..., 0] > 150) & (shown[..., 1] > 90) & (shown[..., 2] < shown[..., 1] - 60)  # SELECT_TINT
    assert amber.sum() > 50
    ys, xs = np.nonzero(amber)  # inside the rectangle the step drew (the middle of the view)
    scale = shown.shape[1] / width
    assert 0.3 * width * scale <= np.median(xs) <= 0.7 * width * scale
    page.edit.action("select_none")
    page.edit_button.setChecked(False)
