"""The worker's side of a remote stage: :class:`StageWorker`, a Ray actor that runs one stage in a temporary
copy of a project (``python -m splatstudio.stages STAGE --project COPY --run-id RUN``), hands its output
lines over as they come, and returns what it changed (:mod:`splatstudio.pipeline.transfer`)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from splatstudio import __version__
from splatstudio.pipeline.plan import stage_argv
from splatstudio.pipeline.transfer import changes, digests, snapshot, unpack

WORK_PREFIX = "splatstudio-stage-"
_PROJECT_FOLDERS = ("images", "logs", "stages", "runs", "output")


class StageWorker:
    """Runs one stage in a temporary copy of a project on the worker it is placed on (a Ray actor: create
    it with ``ray.remote(StageWorker)``). Its methods are called from the caller's polling loop while the
    stage runs, so it is a threaded actor."""

    def __init__(self) -> None:
        self.root = Path(tempfile.gettempdir())
        self._sweep()
        self.folder: Path | None = None
        self.process: subprocess.Popen[str] | None = None
        self._lines: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._readers: list[threading.Thread] = []
        self._before: dict[str, tuple[int, int, int]] = {}
        self._contents: dict[str, str] = {}

    def _sweep(self) -> None:
        """Remove the working folders of workers that died (their process id is gone)."""
        for item in self.root.glob(f"{WORK_PREFIX}*"):
            pid = item.name[len(WORK_PREFIX):].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(item, ignore_errors=True)

    def hello(self) -> dict[str, Any]:
        import platform

        return {"version": __version__, "host": platform.node(), "pid": os.getpid(), "python": sys.version.split()[0],
                "temp": str(self.root)}

    def start(self, stage: str, inputs: bytes, run_id: str) -> str:
        """Unpack the project copy and start the stage on it; the copy's folder."""
        self.folder = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-", dir=self.root)) / "project"
        self.folder.mkdir()
        unpack(inputs, self.folder)
        for name in _PROJECT_FOLDERS:
            (self.folder / name).mkdir(exist_ok=True)
        self._before = snapshot(self.folder)
        self._contents = digests(self.folder, self._before)
        argv = stage_argv(stage, self.folder, run_id)
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                                        cwd=self.folder, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                                        start_new_session=True)
        for stream, pipe in (("out", self.process.stdout), ("err", self.process.stderr)):
            reader = threading.Thread(target=self._pump, args=(stream, pipe), daemon=True)
            reader.start()
            self._readers.append(reader)
        return str(self.folder)

    def _pump(self, stream: str, pipe: Any) -> None:
        for line in pipe:
            with self._lock:
                self._lines.append((stream, line.rstrip("\r\n")))

    def poll(self) -> tuple[list[tuple[str, str]], int | None]:
        """The lines printed since the last poll (``("out" | "err", text)``), and the exit code once the
        stage has ended and every line was read."""
        process = self.process
        code = process.poll() if process is not None else None
        if code is not None and any(reader.is_alive() for reader in self._readers):
            code = None  # lines may still come
        with self._lock:
            lines, self._lines = self._lines, []
        return lines, code

    def cancel(self) -> None:
        """Ask the stage to stop (SIGTERM: it records *cancelled*, training saves a checkpoint)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def collect(self) -> dict[str, Any]:
        """After the stage ended: the files it created or changed (a tar), the paths it deleted, its exit
        code. The working folder is removed."""
        assert self.process is not None and self.folder is not None
        code = self.process.wait()
        for reader in self._readers:
            reader.join(timeout=10)
        data, deleted = changes(self.folder, self._before, self._contents)
        shutil.rmtree(self.folder.parent, ignore_errors=True)
        return {"files": data, "deleted": deleted, "code": code}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
