"""What the project page offers to do with a result (`ResultTools`): Export…, Clean up… and Edit… (the buttons
under the report), the clean-up and hand-edit panels they open, and what those keep with the project
(``edits.json``: the clean-up's strength and the edit list, applied on export).

The page tells the tools which project is open (`project`), which viewer shows it (`viewer`) and when its
result or a training preview was loaded (`show_cleanup`, `show_edits`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QStyle, QWidget

from splatstudio.model import humanize
from splatstudio.model.project import Project, ProjectError, result_ply
from splatstudio.ui.cleanup_panel import CleanupPanel
from splatstudio.ui.edit_panel import EditPanel
from splatstudio.ui.export_dialog import ExportDialog
from splatstudio.ui.workers import Workers


class ResultTools(QObject):
    """The buttons (``export_button``, ``cleanup_button``, ``edit_button``) and panels (``cleanup``, ``edit``)
    of a page; `page` parents the dialogs and holds the undo/redo keys."""

    sig_message = Signal(str)
    """A sentence for the status bar."""

    def __init__(self, workers: Workers, page: QWidget):
        super().__init__(page)
        self.workers = workers
        self.page = page
        self.project: Project | None = None
        self.viewer: Any = None  # the page's SplatCanvas, once embedded
        style = page.style()
        self.export_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_DialogSaveButton), "Export…")
        self.export_button.setToolTip("Export the Gaussians (.ply, .splat, .spz, compressed .ply…) with a crop, "
                                      "an opacity threshold and an SH degree of your choice")
        self.export_button.clicked.connect(self.open_export_dialog)
        self.cleanup_button = QPushButton("Clean up…")
        self.cleanup_button.setObjectName("cleanupButton")
        self.cleanup_button.setCheckable(True)
        self.cleanup_button.setToolTip("Remove floaters and junk with one strength, previewed in the 3D view")
        self.edit_button = QPushButton("Edit…")
        self.edit_button.setObjectName("editButton")
        self.edit_button.setCheckable(True)
        self.edit_button.setEnabled(False)
        self.edit_button.setToolTip("Select and delete splats by hand, level the scene, set its origin and scale "
                                    "(undo with Ctrl+Z; kept with the project and applied on export)")
        self.cleanup = CleanupPanel(workers)
        self.cleanup.sig_marks.connect(self._on_marks)
        self.cleanup.sig_strength_changed.connect(self._on_cleanup_strength)
        self.cleanup.hide()  # until asked for (Clean up…), or the project keeps a clean-up
        self.cleanup_button.toggled.connect(self.cleanup.setVisible)
        self.cleanup.sig_enabled.connect(self.cleanup_button.setEnabled)
        self.edit = EditPanel()
        self.edit.sig_save.connect(self._on_edit_list)
        self.edit.hide()  # until asked for (Edit…); saved deletions show in the view all the same
        self.edit_button.toggled.connect(self._on_edit_toggled)
        for keys, slot in ((QKeySequence.StandardKey.Undo, self._on_undo), ("Ctrl+Shift+Z", self._on_redo),
                           ("Ctrl+Y", self._on_redo)):
            shortcut = QShortcut(QKeySequence(keys), page)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)

    def buttons(self) -> QHBoxLayout:
        """The row of buttons under the report."""
        row = QHBoxLayout()
        for button in (self.export_button, self.cleanup_button, self.edit_button):
            row.addWidget(button)
        row.addStretch(1)
        return row

    def reset(self) -> None:
        """Another project opens: nothing to clean or edit until its result is shown."""
        self.cleanup.set_model(None, None, 0.0)
        self.cleanup_button.setChecked(False)
        self.edit_button.setChecked(False)
        self.edit.set_model(None, None)
        self.edit_button.setEnabled(False)

    # ------------------------------------------------------------------ a model was shown
    def show_cleanup(self, scene: Any, cameras: list, is_result: bool) -> None:
        """The clean-up of the shown model: the result's (with the photos' ``cameras`` it scores against and the
        strength kept with the project), none for a training preview."""
        if not is_result or self.project is None:
            self.cleanup.set_model(None, None, 0.0)
            return
        from splatstudio.render.camera import cleanup_views

        kept = self.project.cleanup_strength()
        self.cleanup.set_model(scene.cloud, cleanup_views(cameras) if cameras else None, kept)
        if kept > 0:
            self.cleanup_button.setChecked(True)  # a kept clean-up shows itself

    def show_edits(self, cloud: Any) -> None:
        """The hand edits of the shown result (``cloud``; None: a training preview, nothing to edit)."""
        if cloud is None or self.project is None:
            self.edit_button.setChecked(False)
            self.edit.set_model(None, None)
            self.edit_button.setEnabled(False)
            return
        try:
            stored, problem = self.project.read_edits().get("edit_list"), ""
        except ProjectError as exc:
            stored, problem = None, str(exc)
        self.edit.set_model(self.viewer, cloud, stored, problem)
        self.edit_button.setEnabled(True)

    # ------------------------------------------------------------------ export
    def open_export_dialog(self) -> ExportDialog | None:
        """The export dialog for this project's result (filtered and raw when both exist)."""
        if self.project is None:
            return None
        shown = self.project.shown_result()
        try:  # the trainer's own output, unless a re-run is making a new one while the previous result shows
            raw = result_ply(self.project.folder, raw=True) if shown is None or not shown[2] else None
        except ProjectError:
            raw = None
        if raw is None and shown is None:
            self.sig_message.emit("nothing to export yet: run the project first")
            return None
        edits = self.edit.export_edits() if shown is not None and self.viewer is not None \
            and self.viewer.scene is not None and self.edit.cloud is self.viewer.scene.cloud else None
        dialog = ExportDialog(shown[0] if shown else None, raw, self.project.name, self.workers, self.page,
                              cleanup=self._cleanup_for_export(shown),
                              edits={shown[0]: edits} if edits is not None else None)
        dialog.sig_exported.connect(
            lambda path, count, size: self.sig_message.emit(f"exported {count:,} splats to {path} "
                                                            f"({humanize.format_size(size)})"))
        dialog.open()
        return dialog

    def _cleanup_for_export(self, shown) -> tuple[float, object, dict[Path, object]] | None:
        """The clean-up kept with the project, with the photos' cameras of the shown result, and the mask the
        panel already made of the shown model at that strength (the export then need not score it again)."""
        strength = self.project.cleanup_strength() if self.project is not None else 0.0
        if strength <= 0 or shown is None:
            return None
        from splatstudio.render.camera import cleanup_views_from

        known = {}
        scene = self.viewer.scene if self.viewer is not None else None
        if self.cleanup.mask is not None and self.cleanup.strength == strength and scene is not None \
                and self.cleanup.model is scene.cloud:  # the panel holds only the result's model (not previews)
            known[shown[0]] = self.cleanup.mask
        return strength, cleanup_views_from(shown[1])[0], known

    def export(self, source: Path, target: str) -> None:
        """Convert ``source`` to ``target`` (format from the extension) in a worker."""
        from splatstudio.io.formats import convert

        self.sig_message.emit(f"exporting {Path(target).name}…")
        self.workers.submit(lambda: convert(source, target),
                            lambda result: self.sig_message.emit(f"exported {result.written:,} splats to {target}"),
                            lambda message, _t: self.sig_message.emit(f"export failed: {message}"))

    # ------------------------------------------------------------------ the panels' signals
    def _on_marks(self, marked, hide: bool) -> None:
        """The clean-up's preview: what it removes tinted (or hidden) in the 3D view."""
        viewer = self.viewer
        scene = viewer.scene if viewer is not None else None
        if scene is not None and (marked is None or len(marked) == len(scene)):
            viewer.mark(marked, hide)

    def _on_cleanup_strength(self, strength: float) -> None:
        """Kept with the project (``edits.json``), and applied when it is exported."""
        if self.project is None:
            return
        try:
            edits = self.project.read_edits()
        except ProjectError as exc:  # damaged: not overwritten behind the user's back (the edit panel says so)
            self.sig_message.emit(f"the clean-up could not be kept: {exc}")
            return
        if edits.get("cleanup", 0.0) != strength:
            try:
                self.project.set_edits({**edits, "cleanup": strength})
            except OSError as exc:
                self.sig_message.emit(f"the clean-up could not be kept: {exc.strerror or exc}")

    def _on_edit_list(self, edit_list) -> None:
        """The hand edits, kept with the project (``edits.json``, atomically) and applied when it is exported."""
        if self.project is None:
            return
        try:
            self.project.save_edit_list(edit_list)
        except OSError as exc:
            self.sig_message.emit(f"the edits could not be kept: {exc.strerror or exc}")

    def _on_edit_toggled(self, on: bool) -> None:
        self.edit.setVisible(on)
        self.edit.set_active(on)
        if on and self.viewer is not None:
            self.viewer.native.setFocus()  # the edit keys (M L B, Delete, H...) go to the view

    def _on_undo(self) -> None:
        if self.edit.session is not None:
            self.edit.undo()

    def _on_redo(self) -> None:
        if self.edit.session is not None:
            self.edit.redo()
