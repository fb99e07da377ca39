"""One stage process in a ``QProcess``: the GUI's side of the stage contract.

Output is decoded incrementally (UTF-8, split on ``\\n`` and ``\\r``), each line parsed once by the pure
parser into a typed event, and re-emitted as Qt signals. Log lines are batched (the log panel appends a
batch at a time); progress is forwarded as it comes (the stage already throttles it at the source).
Never blocks the GUI thread: no ``waitFor*``.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from splatstudio.pipeline.context import EXIT_CANCELLED, EXIT_OK
from splatstudio.pipeline.events import Event, LogLine, Progress, Result, parse_line
from splatstudio.pipeline.plan import stage_argv

_SPLIT = re.compile(r"\r\n|\r|\n")
KILL_AFTER_MS = 15000  # a stage gets this long to stop gently (the trainer saves a checkpoint)
REMOTE_KILL_AFTER_MS = 150_000  # on a cluster, its results travel back too (remote.CALL_TIMEOUT and more)


class _LineDecoder:
    """Bytes in, complete lines out; keeps the partial last line (and partial UTF-8 sequences)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, data: bytes) -> list[str]:
        text = self._pending + self._decoder.decode(data)
        parts = _SPLIT.split(text)
        self._pending = parts.pop()
        return [p for p in parts if p]

    def flush(self) -> list[str]:
        rest = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return [rest] if rest else []


def kill_children(pid: int) -> None:
    """Kill every process ``pid`` started (the trainer under the train stage), on every platform: a stage
    killed because it did not stop must not leave them running."""
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            pass


class StageProcess(QObject):
    """Runs ``python -m splatstudio.stages STAGE --project DIR`` and reports what it prints."""

    sig_event = Signal(object)
    """Every parsed event of stdout (Progress, Eval, Preview, Result, LogLine)."""
    sig_progress = Signal(object)
    """A :class:`Progress` event (also sent through ``sig_event``)."""
    sig_log_lines = Signal(object)
    """A batch of :class:`LogLine` from stderr, at most every 100 ms."""
    sig_finished = Signal(str, object, int)
    """(status, final :class:`Result` or None, exit code) once the process has ended."""

    def __init__(self, stage: str, project_folder: Path, run_id: str | None = None,
                 python: str | None = None, parent: QObject | None = None, executor: str | None = None):
        super().__init__(parent)
        self.stage = stage
        # with a cluster ``executor`` the process runs the stage on a worker and prints what it prints
        self.argv = stage_argv(stage, project_folder, run_id, python, executor)
        self.kill_after_ms = REMOTE_KILL_AFTER_MS if "--executor" in self.argv else KILL_AFTER_MS
        self.result: Result | None = None
        self.last_error = ""
        self._stopping = False
        self._done = False
        self._out = _LineDecoder()
        self._err = _LineDecoder()
        self._log_batch: list[LogLine] = []
        self._flush_timer = QTimer(self)
        self._flush_timer.setInterval(100)
        self._flush_timer.timeout.connect(self._flush_logs)
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._on_kill_timeout)
        self.process = QProcess(self)
        environment = QProcessEnvironment.systemEnvironment()
        environment.insert("PYTHONUNBUFFERED", "1")
        self.process.setProcessEnvironment(environment)
        self.process.setWorkingDirectory(str(project_folder))
        self.process.readyReadStandardOutput.connect(self._on_stdout_ready)
        self.process.readyReadStandardError.connect(self._on_stderr_ready)
        self.process.finished.connect(self._on_finished)
        self.process.errorOccurred.connect(self._on_error)

    # ------------------------------------------------------------------ control
    def start(self) -> None:
        self._flush_timer.start()
        self.process.start(self.argv[0], self.argv[1:])

    def stop(self) -> None:
        """Ask the stage to stop (SIGTERM: it cleans up and exits 143); kill it if it does not."""
        if self.process.state() == QProcess.ProcessState.NotRunning or self._stopping:
            return
        self._stopping = True
        self.process.terminate()
        self._kill_timer.start(self.kill_after_ms)

    def is_running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    # ------------------------------------------------------------------ slots
    def _on_stdout_ready(self) -> None:
        for line in self._out.feed(bytes(self.process.readAllStandardOutput().data())):
            self._dispatch(parse_line(line))

    def _on_stderr_ready(self) -> None:
        for line in self._err.feed(bytes(self.process.readAllStandardError().data())):
            self._queue_log(line)

    def _queue_log(self, line: str) -> None:
        event = parse_line(line)
        if not isinstance(event, LogLine):
            event = LogLine(line)
        if event.text.startswith("error: "):
            self.last_error = event.text[len("error: "):]
        self._log_batch.append(event)

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, Result):
            self.result = event
        if isinstance(event, LogLine):
            self._log_batch.append(event)
            return
        if isinstance(event, Progress):
            self.sig_progress.emit(event)
        self.sig_event.emit(event)

    def _flush_logs(self) -> None:
        if self._log_batch:
            batch, self._log_batch = self._log_batch, []
            self.sig_log_lines.emit(batch)

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.last_error = f"could not start {self.argv[0]}: {self.process.errorString()}"
            self._log_batch.append(LogLine(f"error: {self.last_error}", "error"))
            self._finish(-1)

    def _on_kill_timeout(self) -> None:
        if self.is_running():
            self._log_batch.append(LogLine("the stage did not stop in time; killing it", "warning"))
            kill_children(int(self.process.processId()))
            self.process.kill()

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        for line in self._out.flush():
            self._dispatch(parse_line(line))
        for line in self._err.flush():
            self._queue_log(line)
        crashed = exit_status == QProcess.ExitStatus.CrashExit
        self._finish(-1 if crashed else exit_code)

    def _finish(self, code: int) -> None:
        if self._done:
            return
        self._done = True
        self._kill_timer.stop()
        self._flush_timer.stop()
        self._flush_logs()
        if code == EXIT_OK:
            status = "done"
        elif code == EXIT_CANCELLED or self._stopping:
            status = "cancelled"
        else:
            status = "failed"
            if not self.last_error and code == -1:
                self.last_error = "the stage process was killed or crashed"
        self.sig_finished.emit(status, self.result, code)
