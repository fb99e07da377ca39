"""The work behind the new-project page (`new_project.NewProjectPage`): checking the dropped photos and
videos with thumbnails (`check_photos`, in a worker), estimating each preset's training time
(`estimate_entries`), creating the project and importing the photos (`create_and_import`), a stop for either
(`stoppable`), a name for the project (`suggested_name`), and the thumbnail grid with its badges
(`PhotoGrid`, `badged_icon`).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QKeyEvent, QPainter, QPixmap, QPolygonF
from PySide6.QtWidgets import QListWidget

from splatstudio.model.images import ImportCancelled, VideoImport, import_photos, inspect_photos
from splatstudio.model.library import Library, LibraryError
from splatstudio.model.settings import Settings
from splatstudio.pipeline.train import estimate_training
from splatstudio.ui.workers import ProgressFn, pixmap_from_rgb, thumbnail_rgb

THUMB = 120
ESTIMATE_FIGURES = ("iterations", "expected_total_sec", "memory_mb")
"""What the page shows of a training estimate (it must have them)."""


@dataclass
class CheckedPhoto:
    """One dropped file after the check: its size (accepted) or the reason it was rejected; for a video, one
    item for the video and one for each frame it would give (right after it, in time order)."""

    source: str
    width: int | None
    height: int | None
    reason: str | None
    thumb: tuple[int, int, bytes] | None
    kind: str = "photo"
    """"photo", "video" or "frame" (see `new_project.KIND_ROLE`)."""
    video: VideoImport | None = None
    """A video's figures (its item and its frames' items)."""
    time: float | None = None
    """A frame's time in its video, in seconds."""


def check_photos(sources: list[str], settings: Settings, progress: ProgressFn) -> list[CheckedPhoto]:
    """Worker: :func:`inspect_photos` plus a thumbnail of every file PIL can read and of every frame a video
    would give. Sorted by file name, each video's frames right after it."""
    report = inspect_photos(sources, settings, progress, thumb_size=THUMB)
    videos = {video.source: video for video in report.videos}
    items = [CheckedPhoto(a.source, a.original_width, a.original_height, None, thumbnail_rgb(a.source, THUMB))
             for a in report.accepted if a.video is None]
    items += [CheckedPhoto(r.source, None, None, r.reason, thumbnail_rgb(r.source, THUMB)) for r in report.rejected]
    for video in report.videos:
        items.append(CheckedPhoto(video.source, video.info.width, video.info.height, None,
                                  video.thumbs[0] if video.thumbs else None, "video", video))
    items.sort(key=lambda item: Path(item.source).name.lower())
    result: list[CheckedPhoto] = []
    for item in items:
        result.append(item)
        if item.kind == "video":
            frames = [a for a in report.accepted if a.video is not None and a.source == item.source]
            thumbs = videos[item.source].thumbs
            result += [CheckedPhoto(item.source, a.original_width, a.original_height, None,
                                    thumbs[i] if i < len(thumbs) else None, "frame", item.video,
                                    float(a.video["time"]) if a.video else None)
                       for i, a in enumerate(frames)]
    return result


def stoppable(progress: ProgressFn, stop: threading.Event, message: str) -> ProgressFn:
    """``progress`` that raises :class:`ImportCancelled` (with ``message``) once ``stop`` is set: the work stops
    at its next report, and the import's all-or-nothing rule removes what it stored."""

    def report(fraction: float, text: str = "") -> None:
        if stop.is_set():
            raise ImportCancelled(message)
        progress(fraction, text)

    return report


def estimate_entries(entries: dict[str, Settings], current: str, sizes: list[tuple[int, int]],
                     steps: tuple[int, ...]) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
    """Worker: :func:`estimate_training` of each preset entry for photos of these original ``sizes`` (the
    ``current`` one first), and the current one's with the scene detail on auto, costing each of ``steps``.
    ``({}, None)`` for a reference trainer, which gives no estimates."""
    results: dict[str, dict[str, Any]] = {}
    for key in [current, *(k for k in entries if k != current)]:
        found = estimate_training(entries[key], sizes)
        if found is None:
            return {}, None
        if any(not isinstance(found.get(name), (int, float)) for name in ESTIMATE_FIGURES):
            raise ValueError(f"the trainer's estimate lacks {', '.join(ESTIMATE_FIGURES)}")
        results[key] = found
    detail = estimate_training(entries[current].updated({"scene_detail": 0}), sizes, steps)
    return results, detail


# Folder names that say where photos came from, not what they show (a camera's or phone's own folders)
_GENERIC_FOLDERS = re.compile(r"^(images?|photos?|pictures?|pics|dcim|camera|camera roll|input|\d{3}[a-z_]*)$",
                              re.IGNORECASE)


def suggested_name(sources: list[str]) -> str:
    """A project name from what was dropped: a folder's name, or the name of the folder the photos are in
    (not the first photo's file name), going up past generic folders such as DCIM/100APPLE or images/."""
    if not sources:
        return "Project"
    first = Path(sources[0]).expanduser().resolve()
    folder = first if first.is_dir() else first.parent
    while _GENERIC_FOLDERS.match(folder.name) and folder.parent != folder and folder.parent.name:
        folder = folder.parent
    return folder.name or "Project"


def create_and_import(library: Library, name: str, settings: Settings, sources: list[str],
                      progress: ProgressFn) -> str:
    """Worker: create the project and import the photos; returns the project folder. A project whose import
    fails or keeps no photo is removed again, so the same name can be used at once."""
    project = library.create_project(name, settings)
    try:
        report = import_photos(project.images_dir, project.path("import.json"), sources, settings, progress)
    except BaseException:
        library.delete(project)
        raise
    if not report.accepted:
        library.delete(project)
        raise LibraryError(f"none of the photos could be imported, so project {name!r} was not created")
    library.sync(project)
    return str(project.folder)


def badged_icon(thumb: tuple[int, int, bytes] | None, rejected: bool, placeholder: QPixmap,
                video: bool = False) -> QIcon:
    """The thumbnail (or a placeholder) on a square canvas, with a red "!" badge when rejected and a blue
    "play" badge for a video."""
    canvas = QPixmap(THUMB, THUMB)
    canvas.fill(QColor(0, 0, 0, 0))
    painter = QPainter(canvas)
    picture = pixmap_from_rgb(thumb) if thumb is not None else placeholder
    painter.drawPixmap((THUMB - picture.width()) // 2, (THUMB - picture.height()) // 2, picture)
    if video:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setBrush(QColor("#2d7dd2"))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.drawEllipse(4, 4, 26, 26)
        painter.setBrush(QColor("white"))
        painter.drawPolygon(QPolygonF([QPointF(13, 10), QPointF(13, 24), QPointF(24, 17)]))
    if rejected:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setBrush(QColor("#d64541"))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.drawEllipse(THUMB - 30, 4, 26, 26)
        painter.setPen(QColor("white"))
        font = painter.font()
        font.setBold(True)
        font.setPixelSize(18)
        painter.setFont(font)
        painter.drawText(THUMB - 30, 4, 26, 26, Qt.AlignmentFlag.AlignCenter, "!")
    painter.end()
    return QIcon(canvas)


class PhotoGrid(QListWidget):
    """The thumbnail grid; Delete or Backspace removes the selected photos."""

    sig_remove_requested = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.sig_remove_requested.emit()
            event.accept()
            return
        super().keyPressEvent(event)
