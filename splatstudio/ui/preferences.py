"""The settings form (every :data:`SPECS` entry, grouped, validated as you type) and the Preferences
dialog that saves it to the user settings file.

The same :class:`SettingsForm` edits a single project's settings from the new-project page
("Advanced…"). A setting whose minimum means something else shows that instead ("auto", "off"); the scene
detail is a list of its steps (:class:`StepsCombo`), with the time per iteration and the memory each implies
once an estimate for the photos is known.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from splatstudio.model import paths, programs
from splatstudio.model.humanize import format_memory_mb, format_sec_per_iter
from splatstudio.model.settings import PROGRAM_KEYS, SPECS, Settings, SettingsError, Spec, coerce
from splatstudio.pipeline.cluster import parse_executor, probe

PATH_KEYS = set(PROGRAM_KEYS)
"""Text settings that name a file: they get a Browse button."""

LIBRARY_KEY = "library/folder"
"""QSettings key of the library folder chosen in Preferences (used from the next start)."""

INT_LIMIT = 2_147_483_647


class _Field:
    """One setting's editor: a widget, how to read its raw value, and the label that shows its error."""

    def __init__(self, spec: Spec, widget: QWidget, read: Callable[[], Any], write: Callable[[Any], None]):
        self.spec = spec
        self.widget = widget
        self.read = read
        self.write = write
        self.error = QLabel()
        self.error.setObjectName(f"error_{spec.key}")
        self.error.setStyleSheet("color: #d64541")
        self.error.setWordWrap(True)
        self.error.hide()


def _typed_number(spin: QSpinBox | QDoubleSpinBox) -> int | float | str:
    """The number typed in a spin box (in the locale's notation), before the box clamps it; the minimum when
    the box shows its special text ("auto"); the raw text when it is not a number yet, so that validation
    can say what is wrong."""
    special = spin.specialValueText()
    if special and spin.text().strip().lower() == special.lower():
        return spin.minimum()
    text = spin.cleanText()
    value, ok = spin.locale().toInt(text) if isinstance(spin, QSpinBox) else spin.locale().toDouble(text)
    return value if ok else text


class StepsCombo(QComboBox):
    """A whole-number setting with :attr:`Spec.steps` as a list of them (the minimum shows the special
    text); a value that is not a step (``--set scene_detail=123456``) gets an item of its own, so it is
    kept. :meth:`set_estimate` adds to each step the time per iteration and the memory it implies."""

    def __init__(self, spec: Spec, parent: QWidget | None = None):
        super().__init__(parent)
        self.spec = spec
        self._costs: dict[int, tuple[float, float]] = {}
        self._auto = 0
        for value in spec.steps or ():
            self.addItem(self._text(value), value)

    def value(self) -> int:
        return int(self.currentData())

    def values(self) -> tuple[int, ...]:
        """Every value offered (the steps and a value of its own, if any), in order."""
        return tuple(int(self.itemData(i)) for i in range(self.count()))

    def set_value(self, value: int) -> None:
        """Select ``value``, adding it in order when it is not offered yet (in place of an earlier value that
        is not a step: one such value stays offered)."""
        value = int(value)
        index = self.findData(value)
        if index < 0:
            steps = self.spec.steps or ()
            for i in reversed(range(self.count())):
                if self.itemData(i) not in steps:
                    self.removeItem(i)
            index = sum(1 for v in self.values() if v < value)
            self.insertItem(index, self._text(value), value)
        self.setCurrentIndex(index)

    def set_estimate(self, estimate: Mapping[str, Any] | None) -> None:
        """Show the seconds per iteration and the memory of each value from a training estimate's
        ``detail_steps`` (:func:`~splatstudio.pipeline.train.estimate_training`); None shows the values only.
        Made with the setting at its minimum, the estimate also tells what that ("auto") comes to."""
        self._costs = {int(step["max_gaussians"]): (float(step["sec_per_iter"]), float(step["memory_mb"]))
                       for step in (estimate or {}).get("detail_steps", [])}
        self._auto = int((estimate or {}).get("max_gaussians") or 0)
        for i in range(self.count()):
            self.setItemText(i, self._text(int(self.itemData(i))))

    def _text(self, value: int) -> str:
        name = self.spec.special if self.spec.special and value == self.spec.minimum else f"{value:,}"
        if value not in self._costs:
            return name
        if value == self.spec.minimum and self._auto:
            name = f"{name} ({self._auto:,})"
        sec_per_iter, memory = self._costs[value]
        return f"{name} — {format_sec_per_iter(sec_per_iter)} s/iteration, {format_memory_mb(memory)}"


class SettingsForm(QWidget):
    """Tabs of setting groups; each change runs :func:`coerce` and shows the error beside the field."""

    sig_validity_changed = Signal(bool)
    """Whether every field (and the settings as a whole) is valid now."""

    def __init__(self, settings: Settings, keys: set[str] | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self._base = settings
        self.fields: dict[str, _Field] = {}
        self._valid = True
        self.tabs = QTabWidget()
        self.overall_error = QLabel()
        self.overall_error.setObjectName("overallError")
        self.overall_error.setStyleSheet("color: #d64541")
        self.overall_error.setWordWrap(True)
        self.overall_error.hide()
        # a tab per group; in each, the settings most people change, then an Advanced box for the rest
        forms: dict[tuple[str, bool], QFormLayout] = {}
        pages: dict[str, QVBoxLayout] = {}
        shown = [spec for spec in SPECS if keys is None or spec.key in keys]
        for spec in sorted(shown, key=lambda spec: spec.advanced):  # stable: the groups keep their order
            if spec.group not in pages:
                page = QWidget()
                pages[spec.group] = QVBoxLayout(page)
                scroll = QScrollArea()
                scroll.setWidgetResizable(True)
                scroll.setWidget(page)
                self.tabs.addTab(scroll, spec.group)
            place = (spec.group, spec.advanced)
            if place not in forms:
                box = QGroupBox("Advanced") if spec.advanced else QWidget()
                box.setObjectName(f"{'advanced' if spec.advanced else 'basic'}:{spec.group}")
                forms[place] = QFormLayout(box)
                pages[spec.group].addWidget(box)
            field = self._make_field(spec)
            self.fields[spec.key] = field
            field.write(settings.values[spec.key])
            label = QLabel(spec.label)
            label.setToolTip(f"{spec.help}\n\n({spec.key})")  # the name `--set` and the settings file use
            field.widget.setToolTip(spec.help)
            column = QVBoxLayout()
            column.setSpacing(1)
            column.addWidget(field.widget)
            column.addWidget(field.error)
            forms[place].addRow(label, column)
        for page_layout in pages.values():
            page_layout.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)
        layout.addWidget(self.overall_error)
        self.validate()

    # ------------------------------------------------------------------ widgets by kind
    def _make_field(self, spec: Spec) -> _Field:
        if spec.kind is bool:
            box = QCheckBox()
            box.toggled.connect(self.validate)
            return _Field(spec, box, box.isChecked, box.setChecked)
        if spec.steps is not None:
            steps = StepsCombo(spec)
            steps.currentIndexChanged.connect(self.validate)
            return _Field(spec, steps, steps.value, steps.set_value)
        if spec.choices is not None:
            combo = QComboBox()
            combo.addItems(list(spec.choices))
            combo.currentTextChanged.connect(self.validate)
            return _Field(spec, combo, combo.currentText, combo.setCurrentText)
        if spec.kind in (int, float):
            spin: QSpinBox | QDoubleSpinBox
            if spec.kind is int:
                spin = QSpinBox()
                spin.setRange(int(spec.minimum if spec.minimum is not None else -INT_LIMIT),
                              int(spec.maximum if spec.maximum is not None else INT_LIMIT))
            else:
                spin = QDoubleSpinBox()
                spin.setDecimals(3)
                spin.setRange(spec.minimum if spec.minimum is not None else -1e12,
                              spec.maximum if spec.maximum is not None else 1e12)
            if spec.special:
                spin.setSpecialValueText(spec.special)  # shown at the minimum, which reads back as it
            spin.setKeyboardTracking(True)
            spin.lineEdit().textChanged.connect(self.validate)
            spin.valueChanged.connect(self.validate)
            # the typed text is what gets validated: an out-of-range entry shows its error before the
            # spin box would silently clamp it
            return _Field(spec, spin, lambda: _typed_number(spin), spin.setValue)
        edit = QLineEdit()
        edit.textChanged.connect(self.validate)
        if spec.kind is list:
            return _Field(spec, edit, edit.text, lambda value: edit.setText(", ".join(value)))
        if spec.key in PATH_KEYS:
            return self._path_field(spec, edit)
        return _Field(spec, edit, edit.text, edit.setText)

    def _path_field(self, spec: Spec, edit: QLineEdit) -> _Field:
        holder = QWidget()
        row = QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(edit, 1)
        browse = QPushButton("Browse…")
        browse.clicked.connect(lambda: self._on_browse_requested(edit, spec))
        row.addWidget(browse)
        edit.setPlaceholderText("built-in" if spec.key != "trainer_python" else "SplatStudio's own Python")
        return _Field(spec, holder, edit.text, edit.setText)

    def _on_browse_requested(self, edit: QLineEdit, spec: Spec) -> None:
        path, _ = QFileDialog.getOpenFileName(self, spec.help, edit.text())
        if path:
            edit.setText(path)

    # ------------------------------------------------------------------ values
    def raw_values(self) -> dict[str, Any]:
        return {key: field.read() for key, field in self.fields.items()}

    def validate(self) -> bool:
        """Check every field with :func:`coerce`, then the whole set; show errors; emit on change."""
        valid = True
        for key, field in self.fields.items():
            try:
                coerce(key, field.read(), "this field")
            except SettingsError as exc:
                field.error.setText(str(exc).replace(f"setting {key} (this field): ", ""))
                field.error.show()
                valid = False
            else:
                field.error.hide()
        self.overall_error.hide()
        if valid:
            try:
                self.settings()
            except SettingsError as exc:
                self.overall_error.setText(str(exc))
                self.overall_error.show()
                valid = False
        if valid != self._valid:
            self._valid = valid
            self.sig_validity_changed.emit(valid)
        return valid

    @property
    def valid(self) -> bool:
        return self._valid

    def settings(self) -> Settings:
        """The settings the form shows (raises :class:`SettingsError` when a field is invalid)."""
        return self._base.updated(self.raw_values(), "preferences")

    def set_estimate(self, estimate: Mapping[str, Any] | None) -> None:
        """Show a training estimate's figures in the fields that list steps (see :class:`StepsCombo`)."""
        for field in self.fields.values():
            if isinstance(field.widget, StepsCombo):
                field.widget.set_estimate(estimate)

    def restore_defaults(self) -> None:
        for field in self.fields.values():
            spec = field.spec
            field.write(list(spec.default) if isinstance(spec.default, list) else spec.default)
        self.validate()


class ClusterCheck(QWidget):
    """A line saying where stages run: for a Ray cluster, whether it is reachable and what it offers (nodes,
    CPUs, GPUs, memory, runs at once), asked in a worker thread (:func:`cluster.probe` takes seconds, 30 for
    an address where nothing answers); "Check" asks again for the executor the form shows now. A plain
    daemon thread, not a pool: closing the window never waits for a cluster's answer."""

    sig_answer = Signal(int, str)
    """(which check, the line), from the thread that asked; delivered on the GUI thread."""

    def __init__(self, executor: Callable[[], str], parent: QWidget | None = None):
        super().__init__(parent)
        self._executor = executor
        self._asked = 0
        self.sig_answer.connect(self._show)
        self.line = QLabel()
        self.line.setObjectName("clusterStatus")
        self.line.setWordWrap(True)
        self.line.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.button = QPushButton("Check")
        self.button.setObjectName("clusterCheck")
        self.button.setToolTip("Ask the cluster the executor setting names whether it can be reached and what "
                               "it offers")
        self.button.clicked.connect(self.check)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Stages run on"))
        row.addWidget(self.line, 1)
        row.addWidget(self.button)

    @property
    def checking(self) -> bool:
        return not self.button.isEnabled()

    def check(self) -> None:
        value = self._executor()
        try:
            address = parse_executor(value)
        except SettingsError:
            address = None
        self._asked += 1
        if address is None:  # this computer, or a value the form marks as wrong: said at once
            self._show(self._asked, probe(value))
            return
        self.line.setText(f"{address}: checking…")
        self.button.setEnabled(False)
        threading.Thread(target=self._ask, args=(self._asked, value), name="cluster-check", daemon=True).start()

    def _ask(self, asked: int, value: str) -> None:
        try:
            line = probe(value)
        except Exception as exc:  # the answer must come back, whatever happened
            line = f"{value}: cannot be checked ({exc})"
        try:
            self.sig_answer.emit(asked, line)
        except RuntimeError:  # the dialog is gone
            pass

    def _show(self, asked: int, line: str) -> None:
        if asked != self._asked:  # a later check is under way
            return
        self.line.setText(line)
        self.button.setEnabled(True)


class PreferencesDialog(QDialog):
    """Every setting plus the library location; OK saves the user file and applies what applies now."""

    sig_settings_saved = Signal(object)
    """The new :class:`Settings` after OK."""

    def __init__(self, settings: Settings, library_folder: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.resize(720, 560)
        self.form = SettingsForm(settings)
        self.library_edit = QLineEdit(str(QSettings().value(LIBRARY_KEY, str(library_folder))))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._on_library_browse_requested)
        library_row = QHBoxLayout()
        library_row.addWidget(QLabel("Library location"))
        library_row.addWidget(self.library_edit, 1)
        library_row.addWidget(browse)
        note = QLabel("A new library location is used from the next start.")
        note.setEnabled(False)
        executor = self.form.fields["executor"]
        self.cluster = ClusterCheck(lambda: str(executor.read()), self)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
                                        | QDialogButtonBox.StandardButton.RestoreDefaults)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(
            self.form.restore_defaults)
        self.form.sig_validity_changed.connect(self.ok_button.setEnabled)
        self.ok_button.setEnabled(self.form.valid)
        layout = QVBoxLayout(self)
        layout.addWidget(self.form, 1)
        layout.addLayout(library_row)
        layout.addWidget(note)
        layout.addWidget(self.cluster)
        layout.addWidget(self.buttons)
        self.cluster.check()  # what the saved executor offers (in a worker thread)

    def _on_library_browse_requested(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Library location", self.library_edit.text())
        if folder:
            self.library_edit.setText(folder)

    def accept(self) -> None:
        if not self.form.validate():
            return
        settings = self.form.settings()
        programs.save_user_settings(paths.user_settings_file(), settings)
        QSettings().setValue(LIBRARY_KEY, self.library_edit.text().strip())
        self.sig_settings_saved.emit(settings)
        super().accept()
