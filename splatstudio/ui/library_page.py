"""Library page: every project as a table row with a thumbnail, its status and figures; search, sort,
open, rename, duplicate, reveal in the file manager, and delete (to the trash where there is one).

Refreshes (``Library.refresh``), thumbnails, duplicates and deletes run in workers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QFile,
    QModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import QAction, QColor, QDesktopServices, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QStyle,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from splatstudio.model import humanize
from splatstudio.model.library import Library, LibraryError
from splatstudio.model.project import Project, ProjectError
from splatstudio.services.runs import RunQueue
from splatstudio.services.thumbnails import ThumbnailRenderer, needs_thumbnail, shown_thumbnail, thumbnail_path
from splatstudio.ui.theme import STATE_COLORS
from splatstudio.ui.workers import Workers, pixmap_from_rgb, thumbnail_rgb

COLUMNS = (("name", "Name"), ("status", "Status"), ("created", "Created"), ("image_count", "Photos"),
           ("gaussian_count", "Gaussians"), ("file_size", "Size"), ("processing_seconds", "Processing time"))
SORT_ROLE = Qt.ItemDataRole.UserRole
FOLDER_ROLE = Qt.ItemDataRole.UserRole + 1
THUMB_SIZE = 64
REFRESH_MS = 3000


def format_size(size: int | None) -> str:
    return humanize.format_size(size, empty="—")


def format_duration(seconds: float | None) -> str:
    return humanize.format_duration(seconds, empty="—")


def format_created(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def load_rows(library: Library) -> list[dict[str, Any]]:
    """Worker: refresh the index and add each project's status sentence and first photo."""
    rows = []
    for row in library.refresh():
        try:
            project = Project(row["folder"])
        except ProjectError:
            continue
        names = project.image_names()
        rendered = shown_thumbnail(project.folder)
        rows.append(dict(row, status_text=project.describe_status(),
                         first_photo=str(project.images_dir / names[0]) if names else None,
                         rendered_thumb=str(rendered) if rendered.is_file() else None,
                         wants_render=row["status"] == "done" and needs_thumbnail(project.folder)))
    return rows


def delete_project(library: Library, folder: str) -> str:
    """Worker: move a project to the trash where the platform has one, else delete it."""
    project = Project(folder)
    if project.is_locked():
        raise LibraryError(f"project {project.name!r} is running; stop it before deleting")
    trashed = QFile.moveToTrash(str(project.folder))  # bool, or (bool, path in trash) in some PySide6 releases
    if trashed[0] if isinstance(trashed, tuple) else trashed:
        library.refresh()
        return f"moved {project.name!r} to the trash"
    library.delete(project)
    return f"deleted {project.name!r}"


class LibraryModel(QAbstractTableModel):
    """The rows of :func:`load_rows` plus thumbnails and which projects wait in the queue."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[dict[str, Any]] = []
        self.thumbs: dict[str, QPixmap] = {}
        self.queued: set[str] = set()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section][1]
        return None

    def status_text(self, row: dict[str, Any]) -> str:
        return "queued" if row["folder"] in self.queued else row["status_text"]

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        key = COLUMNS[index.column()][0]
        if role == FOLDER_ROLE:
            return row["folder"]
        if role == SORT_ROLE:
            value = row[key]
            return value if value is not None else -1
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(row, key)
        if role == Qt.ItemDataRole.DecorationRole and key == "name":
            return self.thumbs.get(row["folder"])
        if role == Qt.ItemDataRole.ForegroundRole and key == "status":
            state = "queued" if row["folder"] in self.queued else row["status"]
            color = STATE_COLORS.get(state)
            return QColor(color) if color else None
        if role == Qt.ItemDataRole.ToolTipRole and key == "status" and row.get("error"):
            return row["error"]
        if role == Qt.ItemDataRole.TextAlignmentRole and key not in ("name", "status", "created"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _text(self, row: dict[str, Any], key: str) -> str:
        value = row[key]
        if key == "status":
            return self.status_text(row)
        if key == "created":
            return format_created(value or "")
        if key == "file_size":
            return format_size(value)
        if key == "processing_seconds":
            return format_duration(value)
        if key in ("image_count", "gaussian_count"):
            return "—" if value is None else f"{value:,}"
        return str(value)

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def set_queued(self, folders: set[str]) -> None:
        if folders != self.queued:
            self.queued = folders
            self._changed_column("status")

    def set_thumb(self, folder: str, pixmap: QPixmap) -> None:
        self.thumbs[folder] = pixmap
        for number, row in enumerate(self.rows):
            if row["folder"] == folder:
                index = self.index(number, 0)
                self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def _changed_column(self, key: str) -> None:
        if self.rows:
            column = [k for k, _ in COLUMNS].index(key)
            self.dataChanged.emit(self.index(0, column), self.index(len(self.rows) - 1, column))


class LibraryPage(QWidget):
    """The project table and its actions. Opening a project is a request the main window answers."""

    sig_open_requested = Signal(str)
    """(project folder) — double-click or Open."""
    sig_new_requested = Signal()
    """The "New project…" button."""
    sig_message = Signal(str)
    """A sentence for the status bar (what an action did, or why it could not)."""

    def __init__(self, library: Library, queue: RunQueue, workers: Workers, parent: QWidget | None = None):
        super().__init__(parent)
        self.library = library
        self.queue = queue
        self.workers = workers
        self._refreshing = False
        self._refresh_again = False
        self._thumbs_requested: dict[str, str] = {}  # folder -> image its thumbnail was made from
        self.renderer = ThumbnailRenderer(self)
        self.renderer.sig_ready.connect(self._on_render_ready)
        self.model = LibraryModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)
        self.table = self._make_table()
        self.search = QLineEdit(placeholderText="Search projects")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.proxy.setFilterFixedString)
        self.empty_hint = QLabel("No projects yet. Drop photos or a folder of photos here, or press Ctrl+N.")
        self.empty_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_hint.setEnabled(False)
        self.actions_by_name = self._make_actions()
        bar = QHBoxLayout()
        bar.addWidget(self.search, 1)
        for name in ("new", "open", "rename", "duplicate", "reveal", "delete"):
            button = QToolButton()
            button.setDefaultAction(self.actions_by_name[name])
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            bar.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty_hint)
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self._on_refresh_due)
        self._timer.start()
        queue.sig_changed.connect(self._on_queue_changed)
        queue.sig_run_finished.connect(lambda *_: self.refresh())
        self._update_actions()
        self.refresh()

    def _make_table(self) -> QTableView:
        table = QTableView()
        table.setObjectName("projectTable")
        table.setModel(self.proxy)
        table.setSortingEnabled(True)
        table.sortByColumn(2, Qt.SortOrder.DescendingOrder)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        table.verticalHeader().setDefaultSectionSize(THUMB_SIZE + 8)
        table.verticalHeader().hide()
        table.setAlternatingRowColors(True)
        header = table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        table.doubleClicked.connect(lambda index: self.sig_open_requested.emit(index.data(FOLDER_ROLE)))
        table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        table.customContextMenuRequested.connect(self._on_context_menu_requested)
        table.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())
        return table

    def _make_actions(self) -> dict[str, QAction]:
        style = self.style()
        specs = {
            "new": ("New project…", QStyle.StandardPixmap.SP_FileDialogNewFolder, None, self.sig_new_requested.emit),
            "open": ("Open", QStyle.StandardPixmap.SP_DialogOpenButton, QKeySequence("Return"),
                     self._on_open_triggered),
            "rename": ("Rename…", QStyle.StandardPixmap.SP_FileDialogContentsView, QKeySequence("F2"),
                       self._on_rename_triggered),
            "duplicate": ("Duplicate", QStyle.StandardPixmap.SP_FileLinkIcon, None, self._on_duplicate_triggered),
            "reveal": ("Show in file manager", QStyle.StandardPixmap.SP_DirIcon, None, self._on_reveal_triggered),
            "delete": ("Delete…", QStyle.StandardPixmap.SP_TrashIcon, QKeySequence.StandardKey.Delete,
                       self._on_delete_triggered),
        }
        actions = {}
        for name, (text, icon, shortcut, slot) in specs.items():
            action = QAction(style.standardIcon(icon), text, self)
            if shortcut is not None:
                action.setShortcut(shortcut)
                action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            action.triggered.connect(slot)
            self.table.addAction(action)
            actions[name] = action
        return actions

    # ------------------------------------------------------------------ refresh
    def _on_refresh_due(self) -> None:
        """Timer refreshes only while the page is on screen (no Python work competing with a run)."""
        if self.isVisible():
            self.refresh()

    def refresh(self) -> None:
        """Reload the rows in a worker (a refresh asked for while one runs happens after it)."""
        if self._refreshing:
            self._refresh_again = True
            return
        self._refreshing = True
        self.workers.submit(lambda: load_rows(self.library), self._on_rows_loaded, self._on_refresh_failed)

    def _on_rows_loaded(self, rows: list[dict[str, Any]]) -> None:
        self._refreshing = False
        selected = self.selected_folder()
        self.model.set_rows(rows)
        self.model.queued = {str(e.folder) for e in self.queue.waiting}
        self.empty_hint.setVisible(not rows)
        if selected:
            self.select(selected)
        for row in rows:
            # a render of the result when there is one (made in the background), else the first photo
            folder = row["folder"]
            self._load_thumb(folder, row["rendered_thumb"] or row["first_photo"])
            if row["wants_render"]:
                self.renderer.request(folder)
        self._update_actions()
        if self._refresh_again:
            self._refresh_again = False
            self.refresh()

    def _on_refresh_failed(self, message: str, _trace: str) -> None:
        self._refreshing = False
        self.sig_message.emit(f"could not read the library: {message}")

    def _load_thumb(self, folder: str, image: str | None) -> None:
        if image and self._thumbs_requested.get(folder) != image:
            self._thumbs_requested[folder] = image
            self.workers.submit(lambda: thumbnail_rgb(image, THUMB_SIZE),
                                lambda thumb: self._on_thumb_loaded(folder, thumb))

    def _on_render_ready(self, folder: str) -> None:
        self._thumbs_requested.pop(folder, None)
        self._load_thumb(folder, str(thumbnail_path(folder)))

    def _on_thumb_loaded(self, folder: str, thumb: tuple[int, int, bytes] | None) -> None:
        if thumb is not None:
            self.model.set_thumb(folder, pixmap_from_rgb(thumb))

    def _on_queue_changed(self) -> None:
        self.model.set_queued({str(e.folder) for e in self.queue.waiting})

    # ------------------------------------------------------------------ selection
    def selected_folder(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].data(FOLDER_ROLE) if rows else None

    def select(self, folder: str) -> None:
        for number in range(self.proxy.rowCount()):
            index = self.proxy.index(number, 0)
            if index.data(FOLDER_ROLE) == folder:
                self.table.selectRow(number)
                return

    def row_for(self, folder: str) -> dict[str, Any] | None:
        return next((row for row in self.model.rows if row["folder"] == folder), None)

    def _update_actions(self) -> None:
        has = self.selected_folder() is not None
        for name in ("open", "rename", "duplicate", "reveal", "delete"):
            self.actions_by_name[name].setEnabled(has)

    def _on_context_menu_requested(self, pos) -> None:
        if self.selected_folder() is None:
            return
        menu = QMenu(self)
        for name in ("open", "rename", "duplicate", "reveal", "delete"):
            menu.addAction(self.actions_by_name[name])
        menu.popup(self.table.viewport().mapToGlobal(pos))

    # ------------------------------------------------------------------ actions
    def _on_open_triggered(self) -> None:
        folder = self.selected_folder()
        if folder:
            self.sig_open_requested.emit(folder)

    def _on_rename_triggered(self) -> None:
        folder = self.selected_folder()
        row = self.row_for(folder) if folder else None
        if row is None:
            return
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Rename project")
        dialog.setLabelText("New name:")
        dialog.setTextValue(row["name"])
        dialog.textValueSelected.connect(lambda name: self.rename(folder, name))
        dialog.open()

    def rename(self, folder: str, name: str) -> bool:
        try:
            self.library.rename(Project(folder), name)
        except (LibraryError, ProjectError) as exc:
            self.sig_message.emit(str(exc))
            return False
        self.refresh()
        return True

    def _on_duplicate_triggered(self) -> None:
        folder = self.selected_folder()
        if folder:
            self.duplicate(folder)

    def duplicate(self, folder: str) -> None:
        if self.queue.is_queued(folder):
            self.sig_message.emit("wait for the run to end before duplicating this project")
            return
        self.workers.submit(lambda: self.library.duplicate(folder).name,
                            lambda name: (self.sig_message.emit(f"duplicated as {name!r}"), self.refresh()),
                            lambda message, _t: self.sig_message.emit(f"could not duplicate: {message}"))

    def _on_reveal_triggered(self) -> None:
        folder = self.selected_folder()
        if folder:
            QDesktopServices.openUrl(QUrl.fromLocalFile(folder))

    def _on_delete_triggered(self) -> None:
        folder = self.selected_folder()
        row = self.row_for(folder) if folder else None
        if row is None:
            return
        box = QMessageBox(QMessageBox.Icon.Warning, "Delete project",
                          f"Delete {row['name']!r} and everything in its folder?\n{folder}",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("deleteConfirmation")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.finished.connect(lambda result: self.delete(folder) if result == QMessageBox.StandardButton.Yes else None)
        box.open()

    def delete(self, folder: str) -> None:
        if self.queue.is_queued(folder):
            self.sig_message.emit("cancel the project's run before deleting it")
            return
        self.workers.submit(lambda: delete_project(self.library, folder),
                            lambda message: (self.sig_message.emit(message), self.refresh()),
                            lambda message, _t: self.sig_message.emit(f"could not delete: {message}"))
