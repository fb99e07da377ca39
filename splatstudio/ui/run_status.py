"""What the project page says about a run: each stage's state and time left (:class:`StageState`), the
run's report in words, the failure panel and its details dialog. Widgets and plain functions; the page
(``ui/project_page.py``) arranges them and follows the run."""

from __future__ import annotations

import functools
import html
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QIcon, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from splatstudio.model import humanize
from splatstudio.model.eta import FinishEstimate
from splatstudio.model.project import FAILED, RUNNING, STAGE_TITLES, STAGES, StageRecord
from splatstudio.ui.library_page import format_duration
from splatstudio.ui.theme import STATE_COLORS

WAITING = "waiting"
LOG_TAIL_BYTES = 64_000


@dataclass
class StageState:
    """What the stage list shows for one stage."""

    state: str = WAITING
    fraction: float = 0.0
    started: float | None = None  # time.monotonic() when it started in the followed run
    duration: float | None = None  # seconds, from the record once it ended
    finish: FinishEstimate = field(default_factory=FinishEstimate)  # the time left, smoothed
    message: str = ""
    note: str = ""  # shown on the bar of a stage that is not running ("resumes from iteration 834 of 2,000")

    def elapsed(self) -> float | None:
        if self.state == RUNNING and self.started is not None:
            return time.monotonic() - self.started
        return self.duration

    def observe(self, fraction: float, eta: float | None) -> None:
        """A progress reading: the stage's own time left (``eta``) or, without one, what its pace implies."""
        self.fraction = fraction
        elapsed = self.elapsed()
        if eta is None and elapsed is not None and fraction >= 0.02:
            eta = elapsed / fraction * (1.0 - fraction)
        if eta is not None:
            self.finish.add(time.monotonic(), eta)

    def remaining(self) -> tuple[float, float, float] | None:
        """(estimate, low, high) seconds left while running (:class:`FinishEstimate`)."""
        return self.finish.left(time.monotonic()) if self.state == RUNNING else None


def monotonic_at(iso: str | None) -> float:
    """The ``time.monotonic()`` reading of an ISO timestamp from a record (now when missing or unreadable)."""
    try:
        ago = (datetime.now(timezone.utc) - datetime.fromisoformat(iso or "")).total_seconds()
    except (TypeError, ValueError):
        ago = 0.0
    return time.monotonic() - max(0.0, ago)


@functools.cache
def state_icon(state: str) -> QIcon:
    """A small filled circle in the state's colour."""
    pixmap = QPixmap(14, 14)
    pixmap.fill(QColor(STATE_COLORS.get(state, "#8a8f98")))
    return QIcon(pixmap)


def read_log_tail(path: Path, size: int = LOG_TAIL_BYTES) -> str:
    """Worker: the end of a log file (or a sentence saying there is none)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - size))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"


def kept_result_words(kept: dict[str, Any]) -> str:
    """The sentence under the report while a re-run recomputes the result the viewer still shows."""
    when = ""
    try:
        when = " of " + datetime.fromisoformat(kept.get("finished") or "").astimezone().strftime("%d %b %H:%M")
    except (TypeError, ValueError):
        pass
    count = f", {kept['gaussians']:,} Gaussians" if isinstance(kept.get("gaussians"), int) else ""
    return (f"<i>The 3D view and Export show the previous result{when}{count}: it is kept until this run's "
            "new result replaces it.</i>")


def run_report(records: dict[str, StageRecord]) -> str:
    """HTML summary of a project's stages: times, registered photos, held-out PSNR, Gaussians."""
    rows = []
    for stage in STAGES:
        record = records.get(stage)
        if record is not None and record.duration is not None:
            rows.append(f"<tr><td>{STAGE_TITLES[stage]}</td><td align='right'>{format_duration(record.duration)}"
                        f"</td><td>{record.status}</td></tr>")
    facts = []
    mapping = records.get("mapping")
    train = records.get("train")
    if mapping and mapping.figures.get("registered") is not None:
        line = f"Registered photos: <b>{mapping.figures['registered']}</b> of {mapping.figures.get('total', '?')}"
        held_out = train.figures.get("held_out_views") if train else None
        if held_out:
            line += (f" ({train.figures.get('train_views', '?')} trained on, {held_out} held out to measure "
                     "the quality)")
        facts.append(line)
        diagnosis = mapping.figures.get("diagnosis")
        if isinstance(diagnosis, dict) and diagnosis.get("cause"):  # photos left out: why, and what to do
            left = ", ".join(html.escape(str(name)) for name in mapping.figures.get("dropped", [])[:8])
            facts.append(f"<span style='color:#d89a2b'>Left out: {left}</span> — {html.escape(diagnosis['cause'])}."
                         f" <b>What to try:</b> {html.escape(str(diagnosis.get('advice', '')))}")
    matching = records.get("matching")
    if matching and matching.figures.get("matcher_reason"):
        facts.append(f"Photo pairs matched: {html.escape(str(matching.figures['matcher_reason']))}")
    if train and train.figures.get("test_psnr") is not None:
        rating, meaning = humanize.quality_words(float(train.figures["test_psnr"]))
        facts.append(f"Quality: <b>{rating}</b> — held-out PSNR {train.figures['test_psnr']:.2f} dB: {meaning}")
    if train and train.figures.get("num_gaussians") is not None:
        facts.append(f"Gaussians: <b>{train.figures['num_gaussians']:,}</b>")
    total = sum(r.duration for r in records.values() if r.duration)
    if total:
        facts.append(f"Total processing time: <b>{format_duration(total)}</b>")
    if not rows:
        return "No stage has run yet."
    return ("<table cellspacing='6'>" + "".join(rows) + "</table>" + "<br>".join(facts))


class FailurePanel(QFrame):
    """The stage that failed, the plain message, what to try, the log's end, and Details…."""

    sig_details_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("failurePanel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("#failurePanel { border: 1px solid #d64541; border-radius: 4px; }")
        self.title = QLabel()
        self.title.setObjectName("failureTitle")
        self.message = QLabel(wordWrap=True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hint = QLabel(wordWrap=True)
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setObjectName("failureLog")
        self.log.setMaximumHeight(130)
        self.log.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        details = QPushButton("Details…")
        details.clicked.connect(self.sig_details_requested.emit)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(details)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.message)
        layout.addWidget(self.hint)
        layout.addWidget(self.log)

    def show_failure(self, state: str, stage: str, message: str, hint: str) -> None:
        word = "Failed" if state == FAILED else state.capitalize()
        self.title.setText(f"<b style='color:#d64541'>{word} at {STAGE_TITLES.get(stage, stage)}</b>")
        self.message.setText(message or "the stage ended without saying why (see the log)")
        self.hint.setText(f"<b>What to try:</b> {hint}" if hint else
                          "<b>What to try:</b> read the end of the log below, then Resume or retry the stage.")
        self.log.clear()
        self.show()


class DetailsDialog(QDialog):
    """The traceback of a failed stage and the end of its log, with a button opening the full log."""

    def __init__(self, title: str, trace: str, log_path: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(820, 560)
        self.trace = QPlainTextEdit(trace, readOnly=True)
        self.log = QPlainTextEdit("reading the log…", readOnly=True)
        self.log.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        open_log = buttons.addButton("Open full log", QDialogButtonBox.ButtonRole.ActionRole)
        open_log.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(log_path))))
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Traceback"))
        layout.addWidget(self.trace, 1)
        layout.addWidget(QLabel(f"Log ({log_path})"))
        layout.addWidget(self.log, 2)
        layout.addWidget(buttons)

    def set_log(self, text: str) -> None:
        self.log.setPlainText(text)
        self.log.moveCursor(self.log.textCursor().MoveOperation.End)
