"""The stage contract's vocabulary, shared by the stage process and those who run it: the exit statuses of
a stage process, the exceptions a stage function raises, and :class:`StageContext`, what a stage function
gets (the project, and ways to report and to be stopped). The process around it is
:mod:`splatstudio.pipeline.entry`; the stage functions are in :mod:`~splatstudio.pipeline.sfm`,
:mod:`~splatstudio.pipeline.train` and :mod:`~splatstudio.pipeline.post`.
"""

from __future__ import annotations

import errno
import io
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from splatstudio.model.project import Project
from splatstudio.pipeline.events import encode

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 143


class StageFailed(Exception):
    """The stage cannot finish; the message is the plain-words reason shown to the user."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


class Cancelled(Exception):
    """The stage was asked to stop (SIGTERM)."""


@dataclass
class StageContext:
    """What a stage function gets: the project, its settings, and ways to report and to be stopped."""

    project: Project
    stage: str
    run_id: str
    _out: io.TextIOBase
    cancel_event: threading.Event
    tee: Any = None
    _last_emit: float = 0.0
    orphaned: threading.Event = field(default_factory=threading.Event)

    def lose_reader(self) -> None:
        """Whoever read this stage's output (the window, the CLI) is gone: output is dropped from now on and
        the stage stops as *interrupted* (a training checkpoint is kept for the next run), never *failed*."""
        if not self.orphaned.is_set():
            self.orphaned.set()
            try:  # later writes, the interpreter's last flush included, go nowhere instead of failing
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.close(devnull)
            except OSError:
                pass
        self.cancel_event.set()

    def _write(self, line: str) -> None:
        if self.orphaned.is_set():
            return
        try:
            self._out.write(line + "\n")
            self._out.flush()
        except (BrokenPipeError, ConnectionResetError, ValueError):  # ValueError: the stream was closed
            self.lose_reader()
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.EBADF):
                raise
            self.lose_reader()

    @property
    def settings(self):
        return self.project.settings

    def progress(self, fraction: float, message: str, force: bool = False, **figures: Any) -> None:
        """Print a progress line (at most ~10 per second unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._last_emit < 0.1 and fraction < 1.0:
            return
        self._last_emit = now
        self._write(encode(self.stage, fraction, message, **figures))

    def emit(self, event: dict[str, Any]) -> None:
        """Print a raw event line (trainer events relayed as they are, with the stage added)."""
        self._write(json.dumps({"stage": self.stage, **event}, default=str))

    def tee_hook(self, hook: Callable[[str], None] | None) -> None:
        """Have every stderr line (native library output included) passed to ``hook`` (``None`` stops)."""
        if self.tee is not None:
            self.tee.line_hook = hook

    def log(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled()

    def run_cancellable(self, work: Callable[[], Any], on_cancel: Callable[[], None] | None = None) -> Any:
        """Run blocking native work (pycolmap) in a thread so SIGTERM can be handled meanwhile.

        ``on_cancel`` is called once when a cancel arrives (for example ``token.cancel()``); the work is
        then awaited, and :class:`Cancelled` raised.
        """
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = work()
            except BaseException as exc:  # re-raised in the calling thread
                box["error"] = exc

        thread = threading.Thread(target=target, name=f"{self.stage}-work", daemon=True)
        thread.start()
        cancelled_sent = False
        while thread.is_alive():
            thread.join(0.1)
            if self.cancel_event.is_set() and not cancelled_sent:
                cancelled_sent = True
                if on_cancel:
                    on_cancel()
        if self.cancel_event.is_set():
            raise Cancelled()
        if "error" in box:
            raise box["error"]
        return box.get("value")
