"""Log panel: the followed run's log lines, appended in batches, warnings and errors highlighted."""

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

from splatstudio.pipeline.events import LogLine
from splatstudio.services.runs import ProjectRun
from splatstudio.ui.theme import log_colors
from splatstudio.ui.workers import SignalLinks

MAX_LINES = 20_000


class LogPanel(QWidget):
    """Follows the tail unless scrolled up; search, copy, and a button opening the stage's full log."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.current_log: Path | None = None
        self._links = SignalLinks()
        self.view = QPlainTextEdit(readOnly=True)
        self.view.setObjectName("logView")
        self.view.setMaximumBlockCount(MAX_LINES)
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        font = self.view.font()
        font.setFamily("monospace")
        self.view.setFont(font)
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
        """Show the log lines of ``run`` from now on (None: stop following)."""
        self._links.clear()
        if run is None:
            return
        self.append_text(f"— {run.project.name}: {run.plan.reason} —", "info")
        self._links.connect(run.sig_stage_started, self._on_stage_started)
        self._links.connect(run.sig_log_lines, self._on_log_lines)

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
        """Append a batch in one edit block, keeping the view at the bottom only if it was there."""
        if not lines:
            return
        bar = self.view.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 2
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
        if at_bottom:
            bar.setValue(bar.maximum())

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
