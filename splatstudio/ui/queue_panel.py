"""Queue panel: the runs in progress (the window's, and those of the library started from a terminal) and
the waiting ones; reorder waiting runs by drag or with the up/down buttons, remove them, or cancel a
running one of the window."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from splatstudio.model.project import STAGE_TITLES
from splatstudio.model.run_slots import SlotHolder
from splatstudio.services.runs import RunQueue

FOLDER_ROLE = Qt.ItemDataRole.UserRole
WAITING_TITLE = "Waiting (drag to reorder)"


def elsewhere_item(holder: SlotHolder) -> QListWidgetItem:
    """A run another process holds: listed, but not selectable (it is cancelled where it runs)."""
    since = time.strftime("%H:%M", time.localtime(holder.started))
    stage = STAGE_TITLES.get(holder.stage or "", "starting")
    item = QListWidgetItem(f"{holder.project} — {stage} · {holder.where}, since {since}")
    item.setFlags(Qt.ItemFlag.ItemIsEnabled)
    item.setToolTip(f"Started {holder.where} at {since}; cancel it there (Ctrl+C)")
    return item


class QueuePanel(QWidget):
    """A view of a :class:`RunQueue`; every change goes through the queue and comes back by ``sig_changed``."""

    def __init__(self, queue: RunQueue, parent: QWidget | None = None):
        super().__init__(parent)
        self.queue = queue
        self.active = QListWidget()
        self.active.setObjectName("activeRuns")
        self.active.setMaximumHeight(90)
        self.waiting = QListWidget()
        self.waiting.setObjectName("waitingRuns")
        self.waiting.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.waiting.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.waiting.model().rowsMoved.connect(lambda *_: QTimer.singleShot(0, self._on_rows_dragged))
        style = self.style()
        self.up = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_ArrowUp), "")
        self.up.setToolTip("Move the selected run earlier")
        self.up.clicked.connect(lambda: self._move_selected(-1))
        self.down = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_ArrowDown), "")
        self.down.setToolTip("Move the selected run later")
        self.down.clicked.connect(lambda: self._move_selected(+1))
        self.remove = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_DialogDiscardButton), "Remove")
        self.remove.setToolTip("Take the selected waiting run off the queue")
        self.remove.clicked.connect(self._on_remove_requested)
        self.stop = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_BrowserStop), "Cancel")
        self.stop.setToolTip("Cancel the selected running project (it can be resumed)")
        self.stop.clicked.connect(self._on_stop_requested)
        buttons = QHBoxLayout()
        for button in (self.up, self.down, self.remove, self.stop):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(QLabel("Running"))
        layout.addWidget(self.active)
        self.waiting_title = QLabel(WAITING_TITLE)
        layout.addWidget(self.waiting_title)
        layout.addWidget(self.waiting)
        layout.addLayout(buttons)
        queue.sig_changed.connect(self.refresh)
        queue.sig_run_started.connect(self._on_run_started)
        self.refresh()

    def refresh(self) -> None:
        self.active.clear()
        for folder, run in self.queue.active.items():
            stage = STAGE_TITLES.get(run.current_stage or "", "starting")
            item = QListWidgetItem(f"{run.project.name} — {stage}")
            item.setData(FOLDER_ROLE, folder)
            self.active.addItem(item)
        for holder in self.queue.elsewhere:
            self.active.addItem(elsewhere_item(holder))
        note = self.queue.waiting_note  # runs from a terminal hold every slot, the cluster has not answered...
        self.waiting_title.setText(WAITING_TITLE + (f" — {note}" if note else ""))
        selected = self._selected_folder()
        self.waiting.clear()
        for entry in self.queue.waiting:
            item = QListWidgetItem(entry.name)
            item.setData(FOLDER_ROLE, str(entry.folder))
            self.waiting.addItem(item)
            if str(entry.folder) == selected:
                item.setSelected(True)
                self.waiting.setCurrentItem(item)

    def _on_run_started(self, _folder: str, run) -> None:
        run.sig_stage_started.connect(lambda _stage: self.refresh())

    def _selected_folder(self) -> str | None:
        item = self.waiting.currentItem()
        return item.data(FOLDER_ROLE) if item is not None else None

    def _move_selected(self, step: int) -> None:
        folder = self._selected_folder()
        index = self.queue.position(folder) if folder else None
        if index is not None:
            self.queue.move(folder, max(0, index + step))

    def _on_rows_dragged(self) -> None:
        for index in range(self.waiting.count()):
            self.queue.move(self.waiting.item(index).data(FOLDER_ROLE), index)

    def _on_remove_requested(self) -> None:
        folder = self._selected_folder()
        if folder:
            self.queue.remove(folder)

    def _on_stop_requested(self) -> None:
        item = self.active.currentItem()
        if item is not None and item.data(FOLDER_ROLE):  # not a run of another process
            self.queue.remove(item.data(FOLDER_ROLE))
