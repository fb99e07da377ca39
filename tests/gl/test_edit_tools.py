"""Selection, deletion, undo and scale in the real viewer (issue 23, items 2 and 3), through real Qt mouse and
key events on the canvas, with the real edit panel as the tools' listener: a rectangle deletes exactly the
splats whose centres it holds and the export lacks exactly those; Ctrl+Z brings them back; the selection is
tinted; two picked points and a typed distance give that distance in the export."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import single_splats
from PySide6 import QtCore, QtGui, QtWidgets

from splatstudio.io.export import ExportOptions, export_splats
from splatstudio.io.formats import load_splats
from splatstudio.render.camera import Intrinsics, Pose
from splatstudio.render.scene import SELECT_TINT

UP = np.array([0.0, 0.0, 1.0])
W, H = 200, 150


def _grid_cloud():
    xs = np.linspace(-1.2, 1.2, 9)
    positions = [[x, 0.0, z] for z in xs for x in xs]
    rng = np.random.default_rng(3)
    return single_splats(positions, rng.uniform(0.2, 0.5, (len(positions), 3)), scale=0.06, opacity=0.95)


def _setup(make_canvas, qapp, cloud):
    from splatstudio.ui.edit_panel import EditPanel

    canvas = make_canvas(W, H)
    canvas.load(cloud)
    canvas.set_camera(pose=Pose.look_at(np.array([0.0, -5.0, 0.0]), np.zeros(3), UP),
                      intrinsics=Intrinsics.from_fov_y(W, H, 50.0))
    panel = EditPanel()
    panel.set_model(canvas, canvas.scene.cloud)
    panel.set_active(True)
    qapp.processEvents()
    return canvas, panel


def _pixels(canvas, points) -> np.ndarray:
    """Where the test expects centres on screen, from the pose and intrinsics (not the tools' own code)."""
    pose, intr = canvas.pose, canvas.intrinsics()
    cam = np.asarray(points, dtype=np.float64) @ pose.R.T + pose.t
    return np.column_stack([intr.fx * cam[:, 0] / cam[:, 2] + intr.cx, intr.fy * cam[:, 1] / cam[:, 2] + intr.cy])


def _mouse(widget, kind, pos, button=QtCore.Qt.MouseButton.LeftButton,
           modifiers=QtCore.Qt.KeyboardModifier.NoModifier):
    held = button if kind != QtCore.QEvent.Type.MouseButtonRelease else QtCore.Qt.MouseButton.NoButton
    event = QtGui.QMouseEvent(kind, QtCore.QPointF(*pos), QtCore.QPointF(widget.mapToGlobal(QtCore.QPoint(*pos))),
                              button, held, modifiers)
    QtWidgets.QApplication.sendEvent(widget, event)


def _drag(widget, points, modifiers=QtCore.Qt.KeyboardModifier.NoModifier) -> None:
    _mouse(widget, QtCore.QEvent.Type.MouseButtonPress, points[0], modifiers=modifiers)
    for p in points[1:]:
        time.sleep(0.012)  # vispy drops a move within 10 ms of the last (a person's hand is slower)
        _mouse(widget, QtCore.QEvent.Type.MouseMove, p, modifiers=modifiers)
    _mouse(widget, QtCore.QEvent.Type.MouseButtonRelease, points[-1], modifiers=modifiers)


def _click(widget, pos) -> None:
    _drag(widget, [pos])


def test_a_rectangle_deletes_exactly_the_splats_inside_and_undo_restores_them(make_canvas, qapp, qtbot, tmp_path):
    cloud = _grid_cloud()
    canvas, panel = _setup(make_canvas, qapp, cloud)
    plain = canvas.render_image()
    x0, y0, x1, y1 = 62, 41, 131, 97
    pixels = _pixels(canvas, cloud.positions)
    inside = (pixels[:, 0] >= x0) & (pixels[:, 0] <= x1) & (pixels[:, 1] >= y0) & (pixels[:, 1] <= y1)
    assert 5 < inside.sum() < len(cloud) - 5

    widget = canvas.native
    _drag(widget, [(x0, y0), (90, 60), (x1, y1)])
    assert np.array_equal(panel.session.selection, inside)
    assert "of 81 visible splats selected" in panel.count_label.text()
    # the selection is tinted yellow in the view: a selected splat's pixel turns towards the tint
    first = int(np.flatnonzero(inside)[0])
    u, v = (int(round(c)) for c in pixels[first])
    tinted = canvas.render_image()
    assert np.array_equal(canvas.scene.selected, inside)
    assert tinted[v, u, 0] > plain[v, u, 0] + 40 and tinted[v, u, 2] < tinted[v, u, 0] - 60
    assert SELECT_TINT[0] > SELECT_TINT[2]

    qtbot.keyClick(widget, QtCore.Qt.Key.Key_Delete)
    assert np.array_equal(panel.session.deleted, inside) and panel.session.selected_count == 0
    gone = canvas.render_image()
    assert gone[v, u].max() < 25  # deleted: not drawn
    saved = []
    panel.sig_save.connect(saved.append)

    removed, transform = panel.export_edits()
    export_splats(cloud, tmp_path / "cut.ply", ExportOptions(remove=removed, transform=transform))
    written = load_splats(tmp_path / "cut.ply")
    assert np.array_equal(written.positions, cloud.positions[~inside])

    ctrl = QtCore.Qt.KeyboardModifier.ControlModifier
    qtbot.keyClick(widget, QtCore.Qt.Key.Key_Z, ctrl)
    assert not panel.session.deleted.any()
    assert np.array_equal(panel.session.selection, inside)  # back, and selected as before the delete
    assert panel.export_edits() is None
    assert saved and saved[-1]["applied"] == [] and saved[-1]["undone"][0]["count"] == int(inside.sum())
    export_splats(cloud, tmp_path / "all.ply", ExportOptions())
    assert len(load_splats(tmp_path / "all.ply")) == len(cloud)
    restored = canvas.render_image()
    assert restored[v, u].max() > 100

    qtbot.keyClick(widget, QtCore.Qt.Key.Key_Z, ctrl | QtCore.Qt.KeyboardModifier.ShiftModifier)  # redo
    assert np.array_equal(panel.session.deleted, inside)
    qtbot.keyClick(widget, QtCore.Qt.Key.Key_Z, ctrl)
    qtbot.keyClick(widget, QtCore.Qt.Key.Key_Y, ctrl)  # redo, the other way
    assert np.array_equal(panel.session.deleted, inside)
    panel.set_active(False)
    assert canvas.interaction is None and canvas.orbit_button == 1


def test_lasso_brush_modifiers_and_edit_keys(make_canvas, qapp, qtbot):
    cloud = _grid_cloud()
    canvas, panel = _setup(make_canvas, qapp, cloud)
    widget = canvas.native
    pixels = _pixels(canvas, cloud.positions)
    qtbot.keyClick(widget, QtCore.Qt.Key.Key_L)
    assert panel.tools.tool == "lasso" and panel.tool_buttons["lasso"].isChecked()
    triangle = [(40, 20), (160, 20), (100, 130)]
    _drag(widget, triangle + [(60, 40)])
    from splatstudio.render.selection import points_in_polygon

    # inside when the centre of the pixel the splat's centre falls in is (the lasso is rasterised)
    lasso = points_in_polygon(np.floor(pixels) + 0.5, np.array(triangle + [(60, 40)], float))
    assert np.array_equal(panel.session.selection, lasso) and lasso.any()

    qtbot.keyClick(widget, QtCore.Qt.Key.Key_B)
    panel.brush.setValue(12)
    row = pixels[np.argsort(np.abs(pixels[:, 1] - 75))[:9]]  # the middle row of splats
    stroke = [(10, int(row[0, 1])), (190, int(row[0, 1]))]
    _drag(widget, stroke, modifiers=QtCore.Qt.KeyboardModifier.ShiftModifier)  # Shift adds
    near = np.abs(np.floor(pixels[:, 1]) + 0.5 - int(row[0, 1])) <= 12
    assert np.array_equal(panel.session.selection, lasso | near)
    _drag(widget, stroke, modifiers=QtCore.Qt.KeyboardModifier.ControlModifier)  # Ctrl takes away
    assert np.array_equal(panel.session.selection, lasso & ~near)

    ctrl = QtCore.Qt.KeyboardModifier.ControlModifier
    qtbot.keyClick(widget, QtCore.Qt.Key.Key_I, ctrl)  # invert
    assert np.array_equal(panel.session.selection, ~(lasso & ~near))
    qtbot.keyClick(widget, QtCore.Qt.Key.Key_H)  # hide
    assert np.array_equal(panel.session.hidden, ~(lasso & ~near))
    assert np.array_equal(canvas.scene.hidden, panel.session.hidden)
    assert panel.export_edits() is None  # hidden splats are still exported
    qtbot.keyClick(widget, QtCore.Qt.Key.Key_A, ctrl)
    assert np.array_equal(panel.session.selection, lasso & ~near)  # only visible splats are selectable
    qtbot.keyClick(widget, QtCore.Qt.Key.Key_U)
    assert not panel.session.hidden.any()
    qtbot.keyClick(widget, QtCore.Qt.Key.Key_D, ctrl)
    assert panel.session.selected_count == 0
    qtbot.keyClick(widget, QtCore.Qt.Key.Key_V)
    yaw = canvas.orbit.yaw
    _drag(widget, [(100, 75), (140, 75)])  # navigate: the left button orbits again
    assert canvas.orbit.yaw != yaw and panel.session.selected_count == 0


def test_set_scale_with_two_picked_points_gives_the_typed_distance_in_the_export(make_canvas, qapp, qtbot, tmp_path):
    cloud = single_splats([[-0.8, 0.0, 0.2], [0.9, 0.0, -0.3], [0.0, 0.0, 0.6]],
                          [[0.9, 0.2, 0.2], [0.2, 0.9, 0.2], [0.2, 0.2, 0.9]], scale=0.12, opacity=0.95)
    canvas, panel = _setup(make_canvas, qapp, cloud)
    widget = canvas.native
    a, b = _pixels(canvas, cloud.positions[:2])
    panel.action("scale")
    assert "ends of something whose length you know (1 of 2)" in panel.status.text()
    _click(widget, (3, 3))  # empty space: nothing picked, said, still picking
    assert "Nothing under the cursor" in panel.status.text() and panel.tools.picking == 2
    _click(widget, tuple(int(round(c)) for c in a))
    assert "(2 of 2)" in panel.status.text()
    _click(widget, tuple(int(round(c)) for c in b))
    dialog = panel.scale_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.distance.setValue(0.0)  # zero: refused in words, nothing changes
    dialog.accept()
    assert "The scale is unchanged: a distance must be more than 0" in panel.status.text()
    assert not panel.session.can_undo

    panel.action("scale")
    _click(widget, tuple(int(round(c)) for c in a))
    _click(widget, tuple(int(round(c)) for c in b))
    dialog = panel.scale_dialog
    dialog.distance.setValue(2.75)
    dialog.unit.setCurrentIndex(dialog.unit.findData("m"))
    dialog.accept()
    assert panel.session.unit == "m" and "scaled x" in panel.transform_label.text()
    removed, transform = panel.export_edits()
    assert removed is None
    export_splats(cloud, tmp_path / "scaled.ply", ExportOptions(transform=transform))
    written = load_splats(tmp_path / "scaled.ply")
    assert np.linalg.norm(written.positions[0] - written.positions[1]) == pytest.approx(2.75, rel=1e-5)
    assert np.allclose(written.scales, cloud.scales + np.log(2.75 / np.linalg.norm(cloud.positions[0]
                                                                                    - cloud.positions[1])), atol=1e-5)
    # measuring between the same points says the typed distance, in its unit
    panel.action("measure")
    _click(widget, tuple(int(round(c)) for c in a))
    _click(widget, tuple(int(round(c)) for c in b))
    assert panel.measure_label.text() == "Distance: 2.75 m"
    # the origin at a picked point, then undo twice: the model's own frame
    panel.action("origin")
    _click(widget, tuple(int(round(c)) for c in a))
    assert np.allclose(panel.session.transform.apply(cloud.positions[0]), 0.0, atol=1e-6)
    assert "edit-frame" in canvas._extra  # the edited frame is drawn
    panel.undo()
    panel.undo()
    assert panel.session.transform.is_identity(1e-9) and "edit-frame" not in canvas._extra


def test_level_from_the_cameras_and_on_a_picked_ground(make_canvas, qapp, tmp_path):
    from splatstudio.render.camera import TrainingCamera

    # a tilted floor of splats and three pillars: level on the floor puts it at y = 0, up -y
    rng = np.random.default_rng(5)
    floor = np.column_stack([rng.uniform(-1, 1, 60), np.zeros(60), rng.uniform(-1, 1, 60)])
    tilt = Pose.look_at(np.zeros(3), np.array([0.0, 0.3, 1.0]), np.array([0.0, -1.0, 0.0])).R.T
    cloud = single_splats(floor @ tilt.T, [[0.5, 0.5, 0.5]] * 60, scale=0.1, opacity=0.95)
    canvas, panel = _setup(make_canvas, qapp, cloud)
    ring = np.linspace(0, 2 * np.pi, 4, endpoint=False)  # around the scene: their average up is +z
    cameras = [TrainingCamera(f"c{i}", Pose.look_at(np.array([3.0 * np.cos(a), 3.0 * np.sin(a), 1.0]), np.zeros(3),
                                                    UP), Intrinsics(80, 60, 70, 70, 40, 30)) for i, a in enumerate(ring)]
    canvas.set_training_cameras(cameras)
    panel.set_model(canvas, canvas.scene.cloud)
    panel.set_active(True)
    assert panel.level_button.isEnabled()
    panel.action("level")  # the cameras' up (+z) becomes -y
    assert np.allclose(panel.session.transform.apply_direction(UP), [0, -1, 0], atol=1e-9)
    assert np.allclose(canvas.orbit.up, UP, atol=1e-9)  # the view orbits around the scene's up
    panel.undo()
    normal, along = tilt @ np.array([0.0, -1.0, 0.0]), tilt @ np.array([0.0, 0.0, 1.0])
    canvas.set_camera(pose=Pose.look_at(3.0 * normal + 1.0 * along, np.zeros(3), along),
                      intrinsics=Intrinsics.from_fov_y(W, H, 60.0))  # looking down at the floor, obliquely
    pixels = _pixels(canvas, cloud.positions)
    chosen = [int(np.argmin(floor[:, 0] + floor[:, 2])), int(np.argmax(floor[:, 0] - floor[:, 2])),
              int(np.argmax(floor[:, 2] - 0.5 * floor[:, 0]))]
    panel.action("ground")
    widget = canvas.native
    picked = {canvas.pick(*np.round(pixels[i])).index for i in chosen}  # floor splats, wherever they overlap
    assert len(picked) == 3
    for i in chosen:
        _click(widget, tuple(int(round(c)) for c in pixels[i]))
    transform = panel.session.transform
    assert not transform.is_identity()
    levelled = transform.apply(cloud.positions)
    assert np.abs(levelled[:, 1]).max() < 0.02  # the whole floor at height 0 (picked centres within a splat)
