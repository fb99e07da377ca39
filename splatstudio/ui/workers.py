"""Work off the GUI thread (Orange3 style): a function runs in a QThreadPool, its result comes back
through queued signals, and only then touches widgets.

Also :class:`SignalLinks`, a small record of signal connections a panel makes to a run it follows, so
following another run (or none) drops the old connections in one call, and the PIL thumbnail helpers used by the pages.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps
from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal, SignalInstance
from PySide6.QtGui import QImage, QPixmap
from shiboken6 import isValid

ProgressFn = Callable[[float, str], None]


class TaskSignals(QObject):
    """The signals of one task; emitted from the worker thread, delivered queued on the GUI thread."""

    sig_finished = Signal(object)
    """The function's return value."""
    sig_failed = Signal(str, str)
    """(message, traceback) when the function raised."""
    sig_progress = Signal(float, str)
    """(fraction 0..1, message) reported by a function that takes a ``progress`` argument."""


class _Runnable(QRunnable):
    def __init__(self, fn: Callable[..., Any], signals: TaskSignals, with_progress: bool):
        super().__init__()
        self.setAutoDelete(True)
        self._fn = fn
        self._signals = signals
        self._with_progress = with_progress

    def run(self) -> None:
        signals = self._signals
        try:
            if self._with_progress:
                result = self._fn(lambda fraction, message="": signals.sig_progress.emit(float(fraction), message))
            else:
                result = self._fn()
        except Exception as exc:  # every failure reaches the GUI as a message, never a silent thread death
            signals.sig_failed.emit(str(exc) or type(exc).__name__, traceback.format_exc())
        else:
            signals.sig_finished.emit(result)


class Workers(QObject):
    """Runs functions on a private thread pool; callbacks run on the GUI thread (queued connections)."""

    def __init__(self, max_threads: int = 2, parent: QObject | None = None):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._alive: set[TaskSignals] = set()

    def submit(self, fn: Callable[..., Any], on_done: Callable[[Any], None] | None = None,
               on_error: Callable[[str, str], None] | None = None,
               on_progress: ProgressFn | None = None) -> TaskSignals:
        """Run ``fn()`` (or ``fn(progress)`` when ``on_progress`` is given) in the pool."""
        signals = TaskSignals()  # no parent: it must outlive this object while its thread runs
        queued = Qt.ConnectionType.QueuedConnection
        if on_done is not None:
            signals.sig_finished.connect(lambda result: self._deliver(on_done, result), queued)
        if on_error is not None:
            signals.sig_failed.connect(lambda message, trace: self._deliver(on_error, message, trace), queued)
        if on_progress is not None:
            signals.sig_progress.connect(lambda fraction, text: self._deliver(on_progress, fraction, text), queued)
        signals.sig_finished.connect(lambda _result, s=signals: self._release(s), queued)
        signals.sig_failed.connect(lambda _m, _t, s=signals: self._release(s), queued)
        self._alive.add(signals)
        self.pool.start(_Runnable(fn, signals, on_progress is not None))
        return signals

    def _deliver(self, callback: Callable[..., Any], *args: Any) -> None:
        """Call back on the GUI thread, unless this object's window is gone (a task that outlived it)."""
        if isValid(self):
            callback(*args)

    def _release(self, signals: TaskSignals) -> None:
        self._alive.discard(signals)
        signals.deleteLater()


class SignalLinks:
    """Connections made to an object that may go away; :meth:`clear` disconnects whatever is left."""

    def __init__(self) -> None:
        self._links: list[tuple[SignalInstance, Callable[..., Any]]] = []

    def connect(self, signal: SignalInstance, slot: Callable[..., Any]) -> None:
        signal.connect(slot)
        self._links.append((signal, slot))

    def clear(self) -> None:
        for signal, slot in self._links:
            try:
                signal.disconnect(slot)
            except (RuntimeError, TypeError):  # the sender was deleted, or the link already gone
                pass
        self._links.clear()


def thumbnail_rgb(path: Path | str, size: int) -> tuple[int, int, bytes] | None:
    """A photo scaled to fit ``size`` x ``size`` as (width, height, RGB bytes); None if it cannot be read.

    Runs in a worker (PIL only); :func:`pixmap_from_rgb` turns the bytes into a QPixmap on the GUI thread.
    """
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))
            image = ImageOps.exif_transpose(image).convert("RGB")
            image.thumbnail((size, size))
            return image.width, image.height, image.tobytes()
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def pixmap_from_rgb(thumb: tuple[int, int, bytes]) -> QPixmap:
    """The GUI-thread half of :func:`thumbnail_rgb`."""
    width, height, data = thumb
    image = QImage(data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())
