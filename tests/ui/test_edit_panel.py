"""Editing on the project page (issue 23, items 2 and 3), in the real window: a rectangle drawn on the 3D
view and Delete leave exactly those splats out of the export; the edits are kept with the project (written
atomically) and come back with it; Ctrl+Z undoes; a damaged edits file is said, not overwritten, until the
person discards it."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from _ui_helpers import write_cameras
from dataset_builders import junk_scene, ring_views
from PIL import Image
from PySide6 import QtCore, QtGui, QtWidgets

from splatstudio.io.formats import load_splats, save_splats
from splatstudio.model.project import RESULT_PLY, TRAIN_CAMERAS
from splatstudio.render.camera import Intrinsics, Pose

# vispy's Qt backend still calls QMouseEvent.pos(), deprecated in Qt 6 (as tests/gl/conftest.py notes)
pytestmark = pytest.mark.filterwarnings("ignore:Function.*QMouseEvent.pos.*:DeprecationWarning")


def _mouse(widget, kind, pos):
    button = QtCore.Qt.MouseButton.LeftButton
    held = button if kind != QtCore.QEvent.Type.MouseButtonRelease else QtCore.Qt.MouseButton.NoButton
    QtWidgets.QApplication.sendEvent(widget, QtGui.QMouseEvent(
        kind, QtCore.QPointF(*pos), QtCore.QPointF(widget.mapToGlobal(QtCore.QPoint(*pos))), button, held,
        QtCore.Qt.KeyboardModifier.NoModifier))


def _drag(widget, a, b) -> None:
    _mouse(widget, QtCore.QEvent.Type.MouseButtonPress, a)
    time.sleep(0.012)  # vispy drops a move within 10 ms of the last
    _mouse(widget, QtCore.QEvent.Type.MouseMove, ((a[0] + b[0]) // 2, (a[1] + b[1]) // 2))
    _mouse(widget, QtCore.QEvent.Type.MouseButtonRelease, b)


def _open(window, qtbot, make_project, name="Edit me"):
    folder = Path(make_project(name))
    cloud, _parts = junk_scene()
    save_splats(cloud, folder / RESULT_PLY)
    write_cameras(folder / TRAIN_CAMERAS, ring_views())
    window.open_project(str(folder))
    page = window.project_page
    qtbot.waitUntil(lambda: page._viewer.scene is not None and len(page._viewer.scene) == len(cloud), timeout=20_000)
    qtbot.waitUntil(lambda: page.edit_button.isEnabled(), timeout=5_000)
    return folder, page, load_splats(folder / RESULT_PLY)


def test_a_rectangle_and_delete_on_the_page_leave_those_splats_out_of_the_export(window, qtbot, make_project,
                                                                                 artifacts):
    folder, page, cloud = _open(window, qtbot, make_project)
    viewer, panel = page._viewer, page.edit
    assert not panel.isVisible()
    page.edit_button.click()  # Edit…
    assert panel.isVisible() and viewer.interaction is panel.tools and panel.tools.tool == "rectangle"
    width, height = viewer.size
    viewer.set_camera(pose=Pose.look_at(np.array([0.0, -4.0, 0.0]), np.zeros(3), np.array([0.0, 0.0, 1.0])),
                      intrinsics=Intrinsics.from_fov_y(width, height, 50.0))
    intr, pose = viewer.intrinsics(), viewer.pose
    cam = cloud.positions.astype(np.float64) @ pose.R.T + pose.t
    u, v = intr.fx * cam[:, 0] / cam[:, 2] + intr.cx, intr.fy * cam[:, 1] / cam[:, 2] + intr.cy
    x0, y0, x1, y1 = width // 2 - 30, height // 2 - 25, width // 2 + 10, height // 2 + 20
    inside = (cam[:, 2] > viewer.near) & (u >= x0) & (u <= x1) & (v >= y0) & (v <= y1)
    assert 50 < inside.sum() < len(cloud) // 2

    _drag(viewer.native, (x0, y0), (x1, y1))
    assert np.array_equal(panel.session.selection, inside)
    viewer.wait_until_idle(30.0)
    window.grab().save(str(artifacts / "edit-selection.png"))
    Image.fromarray(viewer.render_image()).save(str(artifacts / "edit-selection-view.png"))
    qtbot.keyClick(viewer.native, QtCore.Qt.Key.Key_Delete)
    assert np.array_equal(panel.session.deleted, inside)
    saved = json.loads((folder / "edits.json").read_text())["edit_list"]
    assert saved["splats"] == len(cloud) and saved["applied"][0]["count"] == int(inside.sum())
    assert not list(folder.glob(".edits.json.*"))  # written under a temporary name, then renamed

    dialog = page.open_export_dialog()
    qtbot.waitUntil(lambda: "after your edits removed" in dialog.summary.text(), timeout=30_000)
    target = folder.parent / "edited.ply"
    with qtbot.waitSignal(dialog.sig_exported, timeout=30_000):
        dialog.export_to(str(target))
    assert np.array_equal(load_splats(target).positions, cloud.positions[~inside])

    # Ctrl+Z anywhere on the page (its shortcut; the view's own keys are the GL tests') undoes the delete; the
    # undone edit is kept for redo
    with warnings.catch_warnings():  # Xvfb has no window manager to activate the window; shortcuts need it
        warnings.simplefilter("ignore", DeprecationWarning)
        QtWidgets.QApplication.setActiveWindow(window)
    page.stage_list.setFocus()
    qtbot.keyClick(page.stage_list, QtCore.Qt.Key.Key_Z, QtCore.Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not panel.session.deleted.any(), timeout=5_000)
    saved = json.loads((folder / "edits.json").read_text())["edit_list"]
    assert saved["applied"] == [] and len(saved["undone"]) == 1
    panel.redo()
    assert np.array_equal(panel.session.deleted, inside)

    before = viewer.scene
    window.open_project(str(folder))  # the edits come back with the project, and the view leaves them out
    qtbot.waitUntil(lambda: viewer.scene is not before and panel.session is not None
                    and viewer.scene.cloud is panel.cloud, timeout=20_000)
    assert np.array_equal(panel.session.deleted, inside) and np.array_equal(viewer.scene.hidden, inside)
    assert panel.session.next_undo() == f"delete the selection ({int(inside.sum()):,} splats)"


def test_a_damaged_edits_file_is_said_and_kept_until_discarded(window, qtbot, make_project):
    folder = Path(make_project("Damaged"))
    cloud, _parts = junk_scene()
    save_splats(cloud, folder / RESULT_PLY)
    (folder / "edits.json").write_text('{"cleanup": 0, "edit_list": {"format": 1,')
    window.open_project(str(folder))
    page = window.project_page
    qtbot.waitUntil(lambda: page.edit_button.isEnabled(), timeout=20_000)
    page.edit_button.click()
    panel = page.edit
    assert panel.problem_box.isVisible() and "is damaged: not valid JSON" in panel.problem_label.text()
    assert panel.session is None and not panel.action_buttons["delete"].isEnabled()
    assert (folder / "edits.json").read_text().endswith('"format": 1,')  # not overwritten behind the user's back
    panel.discard_button.click()
    assert panel.session is not None and not panel.problem_box.isVisible()
    assert json.loads((folder / "edits.json").read_text()) == {}
