"""Editing the result by hand on the project page (issue 23, items 2 and 3): the viewer's edit mode.

Select with a tool in the 3D view (rectangle M, lasso L, brush B; V navigates), by value (opacity, size,
colour, over histograms, with a live count) or by a box or sphere in the scene; delete, hide, isolate, show
all, invert; undo and redo (Ctrl+Z, Ctrl+Shift+Z, Ctrl+Y) for as long as the project is open. Level the
scene from the photos' cameras or a ground plane through three picked points, put the origin at a picked
point, set the scale from two picked points and their typed distance, measure between two points.

The edits are an :class:`~splatstudio.model.edits.EditSession` over the shown result; every change of them
is handed to the page to keep in ``edits.json`` (``sig_save``, written atomically) and applied by every
export. The view shows them: deleted and hidden splats are not drawn, selected ones are tinted yellow (with
their centres as points at once, before the tinted full frame is composited), and a levelled, moved or
scaled scene shows its frame (axes at the origin, a grid on the ground) and orbits around its up.

The tabs (by value, region, orient and scale) and the scale dialog are `edit_widgets`; the overlays' line
geometry is `render.overlays`, the tools in the view `render.edit_tools`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from splatstudio.model.edits import EditsError, EditSession, StaleEdits, model_fingerprint
from splatstudio.model.transform import (
    UP,
    TransformError,
    distance_between,
    level_from_ground,
    level_from_up,
    origin_at,
    scale_between,
)
from splatstudio.render.edit_tools import PICK_COLOR, SELECTED_POINT_COLOR, EditTools
from splatstudio.render.overlays import frame_lines, region_lines
from splatstudio.ui.edit_widgets import OrientTab, RegionTab, ScaleDialog, ValuesTab

TOOL_WORDS = {"navigate": "Navigate (V)", "rectangle": "Rectangle (M)", "lasso": "Lasso (L)", "brush": "Brush (B)"}
MODES = (("replace", "New selection"), ("add", "Add (Shift)"), ("subtract", "Remove (Ctrl)"))
PICKS = {"ground": 3, "origin": 1, "scale": 2, "measure": 2, "colour": 1, "region": 1}
PICK_PROMPTS = {
    "ground": "Click three points on the ground ({n} of 3).",
    "origin": "Click the point to become the origin.",
    "scale": "Click the two ends of something whose length you know ({n} of 2).",
    "measure": "Click the two points to measure between ({n} of 2).",
    "colour": "Click a splat of the colour to select.",
    "region": "Click the point to centre the region on.",
}
COUNT_SETTLE_MS = 80
PREVIEW_POINTS = 20_000
"""Selected centres drawn as points at once, before the tinted full frame is composited (llvmpipe draws 600k
points in 300 ms, 30k in about 15, on a loaded 2-core machine: evenly spaced through the selection, 20k show
its extent)."""


class EditPanel(QGroupBox):
    """The edit mode's controls; :meth:`set_model` gives it the shown result and the viewer, :meth:`set_active`
    turns the tools in the view on and off. Listener of :class:`~splatstudio.render.edit_tools.EditTools`."""

    sig_save = Signal(object)
    """The edit list to keep with the project (``EditSession.to_json``), or None to forget it."""
    sig_changed = Signal()
    """The deletions or the transform changed (exports follow them)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Edit the splats", parent)
        self.setObjectName("editPanel")
        self.viewer: Any = None
        self.cloud: Any = None
        self.session: EditSession | None = None
        self.tools: EditTools | None = None
        self.problem = ""
        self.scale_dialog: ScaleDialog | None = None
        self.last_distance: float | None = None
        self._cameras: list = []
        self._initial_up: np.ndarray | None = None
        self._picks: list[np.ndarray] = []
        self._purpose: str | None = None
        self._shown_transform = np.eye(4)
        self._active = False
        self._build()
        self.setEnabled(False)

    # ------------------------------------------------------------------ layout
    def _button(self, text: str, action: str, tip: str = "") -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(f"edit_{action}")
        button.setProperty("action", action)
        button.setToolTip(tip)
        button.clicked.connect(self._on_button)
        return button

    def _build(self) -> None:
        self.status = QLabel("Choose a tool and drag in the 3D view; right-drag turns the view.")
        self.status.setObjectName("editStatus")
        self.status.setWordWrap(True)
        self.problem_label = QLabel()
        self.problem_label.setWordWrap(True)
        self.problem_label.setObjectName("editProblem")
        self.discard_button = self._button("Discard the saved edits", "discard",
                                           "Start with no edits (the saved list is replaced)")
        problem_row = QHBoxLayout()
        problem_row.addWidget(self.problem_label, 1)
        problem_row.addWidget(self.discard_button)
        self.problem_box = QWidget()
        self.problem_box.setLayout(problem_row)
        self.problem_box.hide()
        tool_row = self._build_tools()
        self.count_label = QLabel()
        self.count_label.setObjectName("editCount")
        select_row = QHBoxLayout()
        for text, action, tip in (("All", "select_all", "Select every visible splat (Ctrl+A)"),
                                  ("None", "select_none", "Select nothing (Ctrl+D)"),
                                  ("Invert", "invert", "Select what is not selected (Ctrl+I)")):
            select_row.addWidget(self._button(text, action, tip))
        select_row.addWidget(self.count_label, 1)

        edit_row = QHBoxLayout()
        self.action_buttons = {}
        for text, action, tip in (("Delete", "delete", "Leave the selected splats out of the view and of every "
                                                       "export (Delete)"),
                                  ("Hide", "hide", "Stop drawing the selection while editing (H); exports keep it"),
                                  ("Isolate", "isolate", "Show only the selection (I)"),
                                  ("Show all", "unhide", "Show the hidden splats again (U)"),
                                  ("Undo", "undo", "Ctrl+Z"), ("Redo", "redo", "Ctrl+Shift+Z or Ctrl+Y")):
            self.action_buttons[action] = self._button(text, action, tip)
            edit_row.addWidget(self.action_buttons[action])

        self.by_value, self.region = ValuesTab(self._button), RegionTab(self._button)
        self.orient = OrientTab(self._button)
        self.level_button = self.orient.level_button
        self.transform_label, self.measure_label = self.orient.transform_label, self.orient.measure_label
        self.tabs = QTabWidget()
        for tab, title in ((self.by_value, "By value"), (self.region, "Region"), (self.orient, "Orient && scale")):
            self.tabs.addTab(tab, title)
        self.by_value.sig_changed.connect(self._schedule_counts)
        self.region.sig_changed.connect(self._schedule_counts)
        self.tabs.currentChanged.connect(self._on_tab)

        layout = QVBoxLayout(self)
        layout.addWidget(self.problem_box)
        layout.addLayout(tool_row)
        layout.addLayout(select_row)
        layout.addLayout(edit_row)
        layout.addWidget(self.tabs)
        layout.addWidget(self.status)
        self._count_timer = QTimer(self)
        self._count_timer.setSingleShot(True)
        self._count_timer.setInterval(COUNT_SETTLE_MS)
        self._count_timer.timeout.connect(self._update_counts)

    def _build_tools(self) -> QHBoxLayout:
        """The tools of the view (one checked), the brush's radius and what a shape does to the selection."""
        self.tool_group = QButtonGroup(self)
        self.tool_group.setExclusive(True)
        tool_row = QHBoxLayout()
        self.tool_buttons: dict[str, QToolButton] = {}
        for tool, words in TOOL_WORDS.items():
            button = QToolButton()
            button.setText(words)
            button.setCheckable(True)
            button.setObjectName(f"tool_{tool}")
            button.setProperty("tool", tool)
            self.tool_group.addButton(button)
            self.tool_buttons[tool] = button
            tool_row.addWidget(button)
        self.tool_group.buttonClicked.connect(self._on_tool_clicked)
        self.brush = QSpinBox(minimum=2, maximum=300, value=25, suffix=" px")
        self.brush.setToolTip("The brush's radius ([ and ] in the view)")
        self.brush.valueChanged.connect(self._on_brush)
        self.mode = QComboBox()
        for key, words in MODES:
            self.mode.addItem(words, key)
        self.mode.setToolTip("What a shape does to the selection (Shift adds, Ctrl removes whatever is chosen here)")
        self.mode.currentIndexChanged.connect(self._on_mode)
        tool_row.addWidget(QLabel("radius"))
        tool_row.addWidget(self.brush)
        tool_row.addWidget(self.mode)
        tool_row.addStretch(1)
        return tool_row

    # ------------------------------------------------------------------ model
    def set_model(self, viewer: Any, cloud: Any, stored: dict | None = None, problem: str = "") -> None:
        """The result the viewer shows (``cloud``; None: none, or a training preview) with the saved edit list
        (``stored``, None: none) or why the saved edits cannot be read (``problem``)."""
        if self.tools is not None:
            self.tools.uninstall()
            self.tools = None
        self._end_pick()
        self._clear_overlays()
        self.viewer, self.cloud, self.session = viewer, cloud, None
        self.by_value.forget()
        self.last_distance = None
        self.measure_label.clear()
        self._shown_transform = np.eye(4)
        if cloud is None or viewer is None:
            self.problem = ""
            self.problem_box.hide()
            self.setEnabled(False)
            return
        self._cameras = list(viewer.training_cameras)
        self._initial_up = np.asarray(viewer.orbit.up, dtype=np.float64).copy()
        fingerprint = model_fingerprint(cloud)
        self.problem = problem
        if not problem and stored is not None:
            try:
                self.session = EditSession.from_json(stored, len(cloud), fingerprint)
            except StaleEdits as exc:
                self.problem = f"The saved edits do not fit this result: {exc}. They are not applied."
            except EditsError as exc:
                self.problem = f"The saved edits cannot be read: {exc}. They are not applied."
        elif problem:
            self.problem = f"{problem}. The saved edits are not applied."
        if self.session is None and not self.problem:
            self.session = EditSession(len(cloud), fingerprint)
        self.problem_label.setText(self.problem)
        self.problem_box.setVisible(bool(self.problem))
        self.setEnabled(True)
        self.orient.set_cameras(bool(self._cameras))
        self._fit_region()
        self._refresh(saved=False)
        if self._active:
            self.set_active(True)

    @property
    def has_edits(self) -> bool:
        return self.session is not None and not self.session.is_empty()

    def export_edits(self) -> tuple[np.ndarray | None, Any] | None:
        """(the deleted splats, the transform) for exports; None when the edits change nothing (or are stale)."""
        s = self.session
        if s is None or (not s.deleted.any() and s.transform.is_identity()):
            return None
        return (s.deleted.copy() if s.deleted.any() else None), (None if s.transform.is_identity() else s.transform)

    def set_active(self, on: bool) -> None:
        """Edit mode on (the tools take the view's left button) or off (the view navigates again)."""
        self._active = on
        if not on or self.session is None or self.viewer is None:
            if self.tools is not None:
                self.tools.uninstall()
                self.tools = None
            self._end_pick()
            self._draw_region()
            return
        if self.tools is None:
            self.tools = EditTools(self.viewer, self, tool="rectangle", brush_radius=self.brush.value())
            self.tools.mode = self.mode.currentData()
            self.viewer.interaction = self.tools
        self.tool_buttons[self.tools.tool].setChecked(True)
        self._draw_region()

    # ------------------------------------------------------------------ the tools' listener
    def tool_selected(self, mask: np.ndarray, mode: str, label: str) -> None:
        if self.session is None:
            return
        if self.session.select(mask, mode, label):
            self._refresh(saved=False)

    def point_picked(self, position: np.ndarray | None) -> None:
        if self._purpose is None:
            return
        if position is None:
            self.status.setText("Nothing under the cursor there: click on a splat of the scene (Esc cancels).")
            return
        self._picks.append(np.asarray(position, dtype=np.float64))
        self._draw_picks()
        if len(self._picks) < PICKS[self._purpose]:
            self.status.setText(PICK_PROMPTS[self._purpose].format(n=len(self._picks) + 1))
            return
        purpose, picks = self._purpose, list(self._picks)
        self._purpose = None
        if self.tools is not None:
            self.tools.stop_pick()
        self._finish_pick(purpose, picks)

    def action(self, name: str) -> bool:
        """A key or button of the edit mode (see ``render/edit_tools.py``); True when it was one."""
        if name.startswith("tool:"):
            button = self.tool_buttons.get(name[5:])
            if button is not None:
                button.setChecked(True)
            return True
        if name == "brush_radius":
            if self.tools is not None:
                self.brush.setValue(round(self.tools.brush_radius))
            return True
        if name == "cancel_pick":
            self._end_pick()
            self.status.setText("Cancelled.")
            return True
        handler = getattr(self, f"_do_{name}", None)
        if handler is None:
            return False
        handler()
        return True

    # ------------------------------------------------------------------ actions
    def undo(self) -> str | None:
        if self.session is None:
            return None
        done = self.session.undo()
        self.status.setText(f"Undone: {done}." if done else "Nothing to undo.")
        if done:
            self._refresh(saved=True)
        return done

    def redo(self) -> str | None:
        if self.session is None:
            return None
        done = self.session.redo()
        self.status.setText(f"Redone: {done}." if done else "Nothing to redo.")
        if done:
            self._refresh(saved=True)
        return done

    def _do_undo(self) -> None:
        self.undo()

    def _do_redo(self) -> None:
        self.redo()

    def _edit(self, edit: Any, nothing: str) -> None:
        if edit is None:
            self.status.setText(nothing)
            return
        self.status.setText(edit.describe()[0].upper() + edit.describe()[1:] + ".")
        self._refresh(saved=True)

    def _do_delete(self) -> None:
        if self.session is not None:
            self._edit(self.session.delete_selection(), "Nothing is selected to delete.")

    def _do_hide(self) -> None:
        if self.session is not None:
            self._edit(self.session.hide_selection(), "Nothing is selected to hide.")

    def _do_isolate(self) -> None:
        if self.session is not None:
            self._edit(self.session.isolate(), "Select what to keep in view first.")

    def _do_unhide(self) -> None:
        if self.session is not None:
            self._edit(self.session.unhide_all(), "Nothing is hidden.")

    def _select_step(self, changed: bool) -> None:
        if changed:
            self._refresh(saved=False)

    def _do_select_all(self) -> None:
        if self.session is not None:
            self._select_step(self.session.select_all())

    def _do_select_none(self) -> None:
        if self.session is not None:
            self._select_step(self.session.select_none())

    def _do_invert(self) -> None:
        if self.session is not None:
            self._select_step(self.session.invert())

    def _do_select_values(self) -> None:
        mask = self.value_mask()
        if self.session is not None and mask is not None:
            self._select_step(self.session.select(mask, self.mode.currentData(), "select by value"))

    def _do_select_region(self) -> None:
        mask = self.region_mask()
        if self.session is not None and mask is not None:
            self._select_step(self.session.select(mask, self.mode.currentData(), "select a region"))

    def _do_fit_region(self) -> None:
        self._fit_region()

    def _do_discard(self) -> None:
        """Forget the saved edits that cannot be used, and start afresh."""
        if self.cloud is None:
            return
        self.problem = ""
        self.problem_box.hide()
        self.session = EditSession(len(self.cloud), model_fingerprint(self.cloud))
        self.sig_save.emit(None)
        self._refresh(saved=False)
        self.status.setText("The saved edits were discarded.")

    def _do_level(self) -> None:
        if self.session is None or not self._cameras:
            return
        from splatstudio.render.camera import average_up

        up_model = average_up([c.pose for c in self._cameras])
        self._transform(level_from_up(self.session.transform.apply_direction(up_model)), "level from the cameras")

    def _do_reset_transform(self) -> None:
        if self.session is not None:
            self._edit(self.session.reset_transform(), "The scene has its own orientation and scale already.")

    def _do_ground(self) -> None:
        self._start_pick("ground")

    def _do_origin(self) -> None:
        self._start_pick("origin")

    def _do_scale(self) -> None:
        self._start_pick("scale")

    def _do_measure(self) -> None:
        self._start_pick("measure")

    def _do_pick_colour(self) -> None:
        self._start_pick("colour")

    def _do_pick_region(self) -> None:
        self._start_pick("region")

    def _transform(self, transform: Any, label: str, unit: str | None = None) -> None:
        assert self.session is not None
        self._edit(self.session.apply_transform(transform, label, unit), "That changes nothing.")

    # ------------------------------------------------------------------ picks
    def _start_pick(self, purpose: str) -> None:
        if self.session is None or self.viewer is None:
            return
        if self.tools is None:
            self.set_active(True)
        self._purpose, self._picks = purpose, []
        self._draw_picks()
        assert self.tools is not None
        self.tools.start_pick(PICKS[purpose])
        self.status.setText(PICK_PROMPTS[purpose].format(n=1) + " Esc cancels.")

    def _end_pick(self) -> None:
        self._purpose, self._picks = None, []
        if self.tools is not None:
            self.tools.stop_pick()
        if self.viewer is not None:
            self.viewer.set_overlay("edit-picks", None)
            self.viewer.set_overlay("edit-pick-lines", None)

    def _finish_pick(self, purpose: str, picks: list[np.ndarray]) -> None:
        assert self.session is not None
        world = [self.session.transform.apply(p) for p in picks]
        try:
            if purpose == "ground":
                self._transform(level_from_ground(*world, up_hint=self._world_up_hint()), "level on the ground")
            elif purpose == "origin":
                self._transform(origin_at(world[0]), "set the origin")
            elif purpose == "scale":
                self.ask_scale(picks)
                return
            elif purpose == "measure":
                self.last_distance = distance_between(*world)
                unit = self.session.unit or "units (no scale set)"
                self.measure_label.setText(f"Distance: {self.last_distance:.6g} {unit}")
                self.status.setText(self.measure_label.text() + ".")
                return  # the two points and their line stay in view until the next pick
            elif purpose == "colour":
                self.by_value.pick_color(self.cloud.colors_rgb()[self._nearest(picks[0])])
                self._schedule_counts()
                self.status.setText("Colour picked.")
            elif purpose == "region":
                self.region.centre_on(world[0])
                self.status.setText("The region is centred on the picked point.")
        except TransformError as exc:
            self.status.setText(f"{exc}.")
        if self.viewer is not None:
            self.viewer.set_overlay("edit-picks", None)
            self.viewer.set_overlay("edit-pick-lines", None)

    def _nearest(self, position: np.ndarray) -> int:
        d = np.asarray(self.cloud.positions, dtype=np.float64) - position
        return int(np.argmin(np.einsum("ij,ij->i", d, d)))

    def _world_up_hint(self) -> np.ndarray:
        """Which side of a ground plane is up: the photos' up, else the view's, in the edited frame."""
        from splatstudio.render.camera import average_up

        up = average_up([c.pose for c in self._cameras]) if self._cameras else self.viewer.pose.up
        assert self.session is not None
        return self.session.transform.apply_direction(up)

    def ask_scale(self, picks: list[np.ndarray]) -> ScaleDialog:
        """The dialog asking the distance between the two picked points (``scale_dialog``, window-modal)."""
        assert self.session is not None
        now = distance_between(picks[0], picks[1], self.session.transform)
        dialog = ScaleDialog(now, self.session.unit, self)
        self.scale_dialog = dialog
        self._scale_picks = picks
        dialog.accepted.connect(self._on_scale_accepted)
        dialog.rejected.connect(self._on_scale_rejected)
        dialog.open()
        return dialog

    def _on_scale_accepted(self) -> None:
        dialog, self.scale_dialog = self.scale_dialog, None
        if dialog is None:
            return
        self.set_scale(self._scale_picks, dialog.distance.value(), dialog.unit.currentData())

    def _on_scale_rejected(self) -> None:
        self.scale_dialog = None
        self._end_pick()
        self.status.setText("The scale is unchanged.")

    def set_scale(self, picks: list[np.ndarray], distance: float, unit: str) -> bool:
        """Scale the scene so that the two picked points (model coordinates) are ``distance`` ``unit`` apart;
        False (and why, in the status line) when that cannot be."""
        self._end_pick()
        if self.session is None:
            return False
        world = [self.session.transform.apply(p) for p in picks]
        try:
            scale = scale_between(world[0], world[1], distance)
        except TransformError as exc:
            self.status.setText(f"The scale is unchanged: {exc}.")
            return False
        self._transform(scale, f"set the scale: {distance:g} {unit} between two points", unit)
        return True

    # ------------------------------------------------------------------ value and region masks
    def value_mask(self) -> np.ndarray | None:
        """The splats the "By value" criteria take (None when none is chosen)."""
        return self.by_value.mask(self.cloud, self.session)

    def region_mask(self) -> np.ndarray | None:
        return self.region.mask(self.cloud, self.session)

    def _fit_region(self) -> None:
        scene = self.viewer.scene if self.viewer is not None else None
        if scene is None or self.session is None:
            return
        self.region.fit(scene, self.session)
        self._schedule_counts()

    def _schedule_counts(self, *_args: Any) -> None:
        self._count_timer.start()

    def _update_counts(self) -> None:
        if self.session is None:
            return
        visible = self.session.visible
        if self.tabs.currentIndex() == 0:
            self.by_value.show_count(self.value_mask(), visible)
        elif self.tabs.currentIndex() == 1:
            mask = self.region_mask()
            if mask is not None:
                self.region.region_count.setText(f"{int(np.count_nonzero(mask & visible)):,} visible splats inside")
            self._draw_region()

    def _on_tab(self, _index: int) -> None:
        self._draw_region()
        self._schedule_counts()

    # ------------------------------------------------------------------ widgets
    def _on_button(self) -> None:
        self.action(str(self.sender().property("action")))

    def _on_tool_clicked(self, button) -> None:
        if self.tools is None:
            self.set_active(True)
        if self.tools is not None:
            self.tools.set_tool(str(button.property("tool")))

    def _on_brush(self, value: int) -> None:
        if self.tools is not None and round(self.tools.brush_radius) != value:
            self.tools.set_brush_radius(value)

    def _on_mode(self, _index: int) -> None:
        if self.tools is not None:
            self.tools.mode = self.mode.currentData()

    # ------------------------------------------------------------------ the view
    def _refresh(self, saved: bool) -> None:
        """Show the session's state in the view and the labels; ``saved``: the edits changed (keep them)."""
        s = self.session
        viewer = self.viewer
        on_result = viewer is not None and viewer.scene is not None and viewer.scene.cloud is self.cloud
        if s is None:
            self.count_label.setText("")
            self.transform_label.setText("")
            if on_result:
                viewer.show_edits(None, None)
            self._clear_overlays()
            for button in self.action_buttons.values():
                button.setEnabled(False)
            return
        self.count_label.setText(f"{s.selected_count:,} of {int(s.visible.sum()):,} visible splats selected")
        for name in ("delete", "hide", "isolate"):
            self.action_buttons[name].setEnabled(s.selected_count > 0)
        self.action_buttons["unhide"].setEnabled(bool(s.hidden.any()))
        self.action_buttons["undo"].setEnabled(s.can_undo)
        self.action_buttons["undo"].setToolTip(f"Undo {s.next_undo()} (Ctrl+Z)" if s.can_undo else "Ctrl+Z")
        self.action_buttons["redo"].setEnabled(s.can_redo)
        self.action_buttons["redo"].setToolTip(f"Redo {s.next_redo()} (Ctrl+Shift+Z)" if s.can_redo
                                               else "Ctrl+Shift+Z or Ctrl+Y")
        self.transform_label.setText(s.summary() + ".")
        if on_result:
            gone = s.deleted | s.hidden
            viewer.show_edits(gone if gone.any() else None, s.selection if s.selection.any() else None)
            selected = np.flatnonzero(s.selection)
            if len(selected) > PREVIEW_POINTS:  # its extent at once; the tinted frame follows with every splat
                selected = selected[:: math.ceil(len(selected) / PREVIEW_POINTS)]
            viewer.set_overlay("edit-selection", viewer.scene.positions if len(selected) else None,
                               SELECTED_POINT_COLOR, mode="points", size=2.0, indices=selected)
            self._show_transform()
        if saved:
            self.sig_save.emit(s.to_json())
            self.sig_changed.emit()
        self._schedule_counts()

    def _show_transform(self) -> None:
        """A levelled, moved or scaled scene: its frame drawn, and the view orbiting around its up."""
        s, viewer = self.session, self.viewer
        assert s is not None and viewer is not None
        matrix = s.transform.matrix
        if np.array_equal(matrix, self._shown_transform):
            return
        if self.by_value.values is not None and not np.isclose(
                np.cbrt(np.linalg.det(self._shown_transform[:3, :3])), s.transform.scale):
            self.by_value.values = None  # the size histogram is in the edited frame's units: made again when shown
        self._shown_transform = matrix
        if s.transform.is_identity(1e-12):
            viewer.set_overlay("edit-frame", None)
            if self._initial_up is not None:
                viewer.set_up(self._initial_up)
            return
        inverse = s.transform.inverse()
        viewer.set_up(inverse.apply_direction(UP))
        points, colors = frame_lines(float(viewer.scene.radius) * s.transform.scale)  # in the edited frame's units
        viewer.set_overlay("edit-frame", inverse.apply(points), colors, mode="lines")

    def _draw_picks(self) -> None:
        if self.viewer is None:
            return
        if not self._picks:
            self.viewer.set_overlay("edit-picks", None)
            self.viewer.set_overlay("edit-pick-lines", None)
            return
        pts = np.asarray(self._picks)
        self.viewer.set_overlay("edit-picks", pts, PICK_COLOR, mode="points", size=9.0)
        self.viewer.set_overlay("edit-pick-lines", pts if len(pts) > 1 else None, PICK_COLOR,
                                mode="line_loop" if len(pts) == 3 else "line_strip")

    def _draw_region(self) -> None:
        viewer = self.viewer
        if viewer is None:
            return
        if not (self._active and self.session is not None and self.tabs.currentIndex() == 1):
            viewer.set_overlay("edit-region", None)
            return
        viewer.set_overlay("edit-region", region_lines(*self.region.in_model(self.session)), (0.3, 0.9, 0.4, 1.0),
                           mode="lines")

    def _clear_overlays(self) -> None:
        if self.viewer is None:
            return
        for name in ("edit-selection", "edit-frame", "edit-picks", "edit-pick-lines", "edit-region"):
            self.viewer.set_overlay(name, None)
