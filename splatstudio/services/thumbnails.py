"""Rendered thumbnails of finished projects: ``splatstudio view --screenshot`` in a ``QProcess``.

A project whose result exists (``output/point_cloud.ply``) gets ``output/thumbnail.png``: one full-quality
frame of the real GL viewer from the first training camera. Rendering runs in its own process, one
project at a time, so the GUI thread never waits on OpenGL (a software renderer takes a second or more).
The PNG is written under a temporary name and renamed when the process succeeds; a project whose render
fails is not retried in this session (its photo stays as the thumbnail) and the reason is logged.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

from splatstudio.model.project import KEPT_RESULT, RESULT_PLY, THUMBNAIL, TRAIN_CAMERAS

log = logging.getLogger(__name__)

SIZE = (256, 192)
TIMEOUT_MS = 120_000


def thumbnail_path(folder: Path | str) -> Path:
    return Path(folder) / THUMBNAIL


def shown_thumbnail(folder: Path | str) -> Path:
    """The thumbnail to show: the result's, or while a re-run recomputes it, the kept result's."""
    path = thumbnail_path(folder)
    kept = Path(folder) / KEPT_RESULT / "thumbnail.png"
    return kept if not path.is_file() and kept.is_file() else path


def needs_thumbnail(folder: Path | str) -> bool:
    """A result exists and no thumbnail newer than it does."""
    result = Path(folder) / RESULT_PLY
    thumb = thumbnail_path(folder)
    if not result.is_file():
        return False
    return not thumb.is_file() or thumb.stat().st_mtime < result.stat().st_mtime


def thumbnail_argv(folder: Path | str, out: Path, python: str | None = None) -> list[str]:
    """The command that renders `folder`'s thumbnail into `out`."""
    folder = Path(folder)
    argv = [python or sys.executable, "-m", "splatstudio", "view", str(folder / RESULT_PLY),
            "--screenshot", str(out), "--size", f"{SIZE[0]}x{SIZE[1]}"]
    if (folder / TRAIN_CAMERAS).is_file():
        argv += ["--camera", f"{folder / TRAIN_CAMERAS}:0"]
    return argv


class ThumbnailRenderer(QObject):
    """Renders requested thumbnails one after another; ``sig_ready(folder)`` when one is written."""

    sig_ready = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._waiting: deque[str] = deque()
        self._failed: set[str] = set()
        self._process: QProcess | None = None
        self._current: str | None = None

    @property
    def busy(self) -> bool:
        return self._process is not None

    def request(self, folder: str) -> None:
        """Queue `folder` unless it is already queued, rendering, failed before, or up to date."""
        if folder in self._failed or folder == self._current or folder in self._waiting:
            return
        if not needs_thumbnail(folder):
            return
        self._waiting.append(folder)
        self._next()

    def stop(self) -> None:
        """Drop the queue and kill a render in progress (quitting)."""
        self._waiting.clear()
        if self._process is not None:
            self._process.kill()
            self._process.waitForFinished(2000)

    def _tmp(self, folder: str) -> Path:
        return thumbnail_path(folder).with_name(f".thumbnail.{os.getpid()}.png")

    def _next(self) -> None:
        if self._process is not None or not self._waiting:
            return
        folder = self._current = self._waiting.popleft()
        argv = thumbnail_argv(folder, self._tmp(folder))
        process = self._process = QProcess(self)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        process.start(argv[0], argv[1:])
        watchdog = QTimer(process)
        watchdog.setSingleShot(True)
        watchdog.timeout.connect(process.kill)
        watchdog.start(TIMEOUT_MS)

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._done(ok=False, output=f"could not start the renderer ({self._process.errorString()})")

    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        output = bytes(self._process.readAll().data()).decode("utf-8", "replace").strip()
        self._done(ok=code == 0 and status == QProcess.ExitStatus.NormalExit, output=output)

    def _done(self, ok: bool, output: str) -> None:
        folder, process = self._current, self._process
        if folder is None or process is None:
            return
        self._process = self._current = None
        process.deleteLater()
        tmp = self._tmp(folder)
        if ok and tmp.is_file():
            os.replace(tmp, thumbnail_path(folder))
            self.sig_ready.emit(folder)
        else:
            self._failed.add(folder)
            tmp.unlink(missing_ok=True)
            log.warning("thumbnail of %s not rendered: %s", folder, output[-500:] or "no output")
        self._next()
