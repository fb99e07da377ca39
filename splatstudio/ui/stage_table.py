"""The project page's stage table (`StageTable`): one row per stage with its state, a progress bar, the
time it has worked and the time left; a right click offers to retry from that stage or open its log (the
page decides, through `sig_menu_requested`). The states themselves are `run_status.StageState`.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHeaderView, QProgressBar, QTreeWidget, QTreeWidgetItem, QWidget

from splatstudio.model.eta import format_left
from splatstudio.model.humanize import format_duration
from splatstudio.model.project import RUNNING, STAGE_TITLES, STAGES
from splatstudio.ui.run_status import WAITING, StageState, state_icon
from splatstudio.ui.theme import STATE_COLORS

COLUMNS = ["Stage", "State", "Progress", "Elapsed", "Left"]


class StageTable(QTreeWidget):
    """Every stage of `STAGES`, in order; ``items`` and ``bars`` by stage name."""

    sig_menu_requested = Signal(str, QPoint)
    """A right click on a stage's row: the stage and the global position for a menu."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("stageList")
        self.setHeaderLabels(COLUMNS)
        self.setRootIsDecorated(False)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._on_menu_requested)
        self.items: dict[str, QTreeWidgetItem] = {}
        self.bars: dict[str, QProgressBar] = {}
        for stage in STAGES:
            item = QTreeWidgetItem([STAGE_TITLES[stage], WAITING, "", "", ""])
            item.setData(0, Qt.ItemDataRole.UserRole, stage)
            self.addTopLevelItem(item)
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setMaximumHeight(18)
            self.setItemWidget(item, 2, bar)
            self.items[stage], self.bars[stage] = item, bar
        header_view = self.header()  # every column visible at the default layout: the bars take
        header_view.setStretchLastSection(False)  # what the names, states and times leave
        for column in range(len(COLUMNS)):
            header_view.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header_view.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        rows = self.sizeHintForRow(0) * len(STAGES) + self.header().sizeHint().height()
        self.setFixedHeight(rows + 6)

    def _on_menu_requested(self, pos: QPoint) -> None:
        item = self.itemAt(pos)
        if item is not None:
            self.sig_menu_requested.emit(item.data(0, Qt.ItemDataRole.UserRole), self.viewport().mapToGlobal(pos))

    def show_state(self, stage: str, state: StageState) -> None:
        """Show `state` in `stage`'s row: its state (icon and colour), progress, message or note, times."""
        item, bar = self.items[stage], self.bars[stage]
        item.setText(1, state.state)
        item.setIcon(0, state_icon(state.state))
        item.setForeground(1, QColor(STATE_COLORS.get(state.state, "#8a8f98")))
        item.setToolTip(2, state.message)
        bar.setValue(int(state.fraction * 1000))
        text = state.message if state.state == RUNNING else state.note
        percent = f"{state.fraction * 100:.0f}%"
        full = percent + (f" {text}" if text else "")
        # a running stage's message where the bar has room for it (it changes ten times a second); a stopped
        # stage's note ("resumes from iteration 834 of 2,000") always, the whole of it in the tooltip
        fits = bar.fontMetrics().horizontalAdvance(full) <= bar.width() - 8
        bar.setFormat(full if fits or state.state != RUNNING else percent)
        bar.setToolTip(text)
        elapsed, left = state.elapsed(), state.remaining()
        item.setText(3, format_duration(elapsed) if elapsed is not None else "")
        item.setText(4, format_left(left))
