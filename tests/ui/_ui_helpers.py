"""Helpers shared by the UI tests: simulated drops and a bad-file photo folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget

# Project settings that let tiny generated photos through and train a few hundred iterations.
TINY = {"min_image_size": 200, "max_features": 2048, "iterations": 300, "densify_from_iter": 50,
        "densify_until_iter": 200, "densification_interval": 50, "preview_every": 100, "train_resolution": 1,
        "live_preview": True}  # previews are composited off the GUI thread (NOTES.md)

BAD_FILES = {
    "empty.jpg": "the file is empty",
    "notes.jpg": "not an image",
    "tiny.jpg": "too small",
    "anim.gif": "unsupported file type",
}


def drop_paths(target: QWidget, paths: list[Path]) -> bool:
    """Send a drag-enter and a drop of ``paths`` (as file URLs) to ``target``; True if it was accepted."""
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    center = target.rect().center()
    actions = Qt.DropAction.CopyAction
    enter = QDragEnterEvent(QPoint(center), actions, data, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, enter)
    if not enter.isAccepted():
        return False
    drop = QDropEvent(QPointF(center), actions, data, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, drop)
    return drop.isAccepted()


def mixed_folder(folder: Path, good_photos: Path, good_count: int = 3) -> Path:
    """``good_count`` good photos and one of each kind of bad file (see :data:`BAD_FILES`)."""
    folder.mkdir(parents=True)
    for photo in sorted(good_photos.glob("*.jpg"))[:good_count]:
        shutil.copy(photo, folder / photo.name)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("these are my notes, not a photo\n")
    Image.new("RGB", (100, 80), (200, 40, 40)).save(folder / "tiny.jpg")
    Image.new("RGB", (320, 240), (40, 200, 40)).save(folder / "anim.gif")
    return folder


def write_cameras(path: Path, views) -> None:
    """A reference-layout cameras.json for `views` (a `render.camera` view set) at `path`."""
    entries = [{"id": i, "img_name": f"IMG_{i:04d}", "width": int(views.width[i]), "height": int(views.height[i]),
                "position": views.centres[i].tolist(), "rotation": views.rotations[i].tolist(),
                "fx": float(views.fx[i]), "fy": float(views.fy[i])} for i in range(len(views))]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries))
