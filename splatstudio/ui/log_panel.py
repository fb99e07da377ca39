"""Log panel: the shown project's log — its run's lines as they come, appended in batches, or the saved logs
of its stages when it is not running — with warnings and errors highlighted."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QColor, QDesktopServices, QGuiApplication, QTextCharFormat, QTextCursor, QTextDocument
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from splatstudio.model.project import STAGES
from splatstudio.pipeline.events import LogLine, log_level
from splatstudio.services.runs import ProjectRun
from splatstudio.ui.theme import log_colors
from splatstudio.ui.workers import SignalLinks

MAX_LINES = 20_000
SAVED_TAIL_BYTES = 64_000  # of each stage's saved log shown for a project that is not running


def read_saved_logs(folder: Path | str) -> tuple[list[LogLine], Path | None]:
    """Worker: the saved logs of a project's stages in stage order (the end of each long one), and the path of
    the last one, for a project shown while it is not running."""
    lines: list[LogLine] = []
    last = None
    for stage in STAGES:
        path = Path(folder) / "logs" / f"{stage}.log"
        try:
            with open(path, "rb") as handle:
                size = handle.seek(0, 2)
                handle.seek(max(0, size - SAVED_TAIL_BYTES))
                data = handle.read()
        except OSError:
            continue
        last = path
        text = data.decode("utf-8", errors="replace").splitlines()
        if size > SAVED_TAIL_BYTES:  # the first line is cut
            text[0] = f"… (the start of this log is in {path})"
        lines.extend(LogLine(line, log_level(line)) for line in text)
    return lines[-MAX_LINES:], last


class LogPanel(QWidget):
    """Follows the tail unless scrolled up; search, copy, and a button opening the stage's full log."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.current_log: Path | None = None
        self.folder: str | None = None
        """The project whose log is shown."""
        self._links = SignalLinks()
        self._at_end = True  # follow the newest line: until scrolled up, and again once scrolled to the end
        self.view = QPlainTextEdit(readOnly=True)
        self.view.setObjectName("logView")
        self.view.setMaximumBlockCount(MAX_LINES)
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        font = self.view.font()
        font.setFamily("monospace")
        self.view.setFont(font)
        bar = self.view.verticalScrollBar()
        bar.valueChanged.connect(self._on_scrolled)
        bar.rangeChanged.connect(self._on_range_changed)
        self.search = QLineEdit(placeholderText="Search the log (Enter: next match)")
        self.search.setClearButtonEnabled(True)
        self.search.returnPressed.connect(self._on_search_requested)
        style = self.style()
        copy = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_FileDialogDetailedView), "Copy")
        copy.setToolTip("Copy the selection, or the whole log when nothing is selected")
        copy.clicked.connect(self.copy)
        self.open_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_DialogOpenButton), "Open full log")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self._on_open_requested)
        clear = QPushButton("Clear")
        clear.clicked.connect(self.view.clear)
        bar = QHBoxLayout()
        bar.addWidget(self.search, 1)
        for button in (copy, self.open_button, clear):
            bar.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(self.view)

    # ------------------------------------------------------------------ following a run
    def follow(self, run: ProjectRun | None) -> None:
        """Show ``run``'s log: its lines so far, then each as it comes (None: stop following)."""
        self._links.clear()
        if run is None:
            return
        self.view.clear()
        self._at_end = True
        self.folder = str(run.project.folder)
        self.append_text(f"— {run.project.name}: {run.plan.reason} —", "info")
        self.append_lines(list(run.log_lines))
        stage = run.current_stage
        self.set_log_file(run.project.log_path(stage) if stage else None)
        self._links.connect(run.sig_stage_started, self._on_stage_started)
        self._links.connect(run.sig_log_lines, self._on_log_lines)

    def show_saved(self, folder: str, name: str, lines: list[LogLine] | None, last_log: Path | None) -> None:
        """Show the saved logs of a project that is not running (from :func:`read_saved_logs`; None: empty
        while they are read)."""
        self._links.clear()
        self.view.clear()
        self._at_end = True
        self.folder = folder
        self.set_log_file(last_log)
        if lines is None:
            return
        self.append_text(f"— {name}: the logs of its last run —" if lines else f"— {name}: no stage has run yet —")
        self.append_lines(lines)

    def set_log_file(self, path: Path | None) -> None:
        self.current_log = path
        self.open_button.setEnabled(path is not None)

    def _on_stage_started(self, stage: str) -> None:
        run = self.sender()
        if isinstance(run, ProjectRun):
            self.set_log_file(run.project.log_path(stage))

    def _on_log_lines(self, _stage: str, lines: list[LogLine]) -> None:
        self.append_lines(lines)

    # ------------------------------------------------------------------ text
    def append_text(self, text: str, level: str = "info") -> None:
        self.append_lines([LogLine(line, level) for line in text.splitlines() or [""]])

    def append_lines(self, lines: list[LogLine]) -> None:
        """Append a batch in one edit block; the view stays at the end if it was there (_on_range_changed)."""
        if not lines:
            return
        colors = log_colors()
        plain = QTextCharFormat()
        formats = {level: _format(color) for level, color in colors.items()}
        cursor = QTextCursor(self.view.document())
        cursor.beginEditBlock()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        empty = self.view.document().isEmpty()
        for index, line in enumerate(lines):
            if not (empty and index == 0):
                cursor.insertBlock()
            cursor.insertText(line.text, formats.get(line.level, plain))
        cursor.endEditBlock()

    def _on_scrolled(self, value: int) -> None:
        self._at_end = value >= self.view.verticalScrollBar().maximum() - 2

    def _on_range_changed(self, _minimum: int, maximum: int) -> None:
        """New lines or a new panel size: a view that followed the end still does (only the person scrolling
        up stops it, not a resize that moves the end away from the old scroll position)."""
        if self._at_end:
            self.view.verticalScrollBar().setValue(maximum)

    def text(self) -> str:
        return self.view.toPlainText()

    def copy(self) -> None:
        selected = self.view.textCursor().selectedText().replace("\u2029", "\n")
        QGuiApplication.clipboard().setText(selected or self.view.toPlainText())

    def _on_search_requested(self) -> None:
        needle = self.search.text()
        if not needle:
            return
        if not self.view.find(needle):
            self.view.moveCursor(QTextCursor.MoveOperation.Start)
            self.view.find(needle, QTextDocument.FindFlag(0))

    def _on_open_requested(self) -> None:
        if self.current_log is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.current_log)))


def _format(color: str) -> QTextCharFormat:
    fmt = QTextCharFormat()
    fmt.setForeground(QColor(color))
    return fmt
