"""The stage process: ``python -m splatstudio.stages <stage> --project DIR [--run-id ID]``.

Contract (the GUI's QProcess runner and the CLI rely on it):

* stdout: one JSON object per line — ``{"stage", "fraction", "message", ...figures}`` while working,
  and a last ``{"stage", "event": "result", "status", "figures", "message"}``;
* stderr: human-readable logs (also written to ``logs/<stage>.log`` in the project);
* exit status 0 when done, 1 when the work failed (the last stderr line is ``error: <reason>``),
  143 when cancelled by SIGTERM (the project stays consistent: partial outputs are removed and the stage
  is marked cancelled, ready to resume), 2 for a usage error.

The stage holds the project's lock for its lifetime and writes its own record, so a process killed with
SIGKILL leaves a record saying "running" with nobody holding the lock: the project shows the stage as
interrupted, and the next run resumes from it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splatstudio.model.atomic import DISK_FULL_HINT, disk_full_message
from splatstudio.model.project import (
    CANCELLED,
    DONE,
    FAILED,
    INTERRUPTED,
    RESULT_PLY,
    RUNNING,
    STAGE_TITLES,
    STAGES,
    Project,
    ProjectError,
    StageRecord,
    now_iso,
)
from splatstudio.model.stage_table import result_stage, spec
from splatstudio.pipeline.context import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Cancelled,
    StageContext,
    StageFailed,
)
from splatstudio.pipeline.events import log_level

# ------------------------------------------------------------------------------------ stage functions

def stage_function(stage: str) -> Callable[[StageContext], dict[str, Any]]:
    """The function that does ``stage``'s work: the stage table's ``run`` (``"package.module:function"``),
    imported now. ``LookupError`` naming what is missing."""
    module_name, _, name = spec(stage).run.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise LookupError(f"stage {stage!r}: its run function {spec(stage).run!r} cannot be found ({exc})") from None
    if not callable(function):
        raise LookupError(f"stage {stage!r}: {spec(stage).run!r} is not a function")
    return function


def _check_programs(project: Project, stage: str) -> None:
    """A program named by the project's settings runs only when the user named or approved it
    (model/programs.py): a project folder can come from anywhere."""
    from splatstudio.model import paths, programs
    from splatstudio.model.settings import SettingsError, load_settings

    try:
        trusted = load_settings(paths.user_settings_file())
        programs.check(project.settings, stage, trusted)
    except programs.ProgramNotApproved as exc:
        raise StageFailed(str(exc), exc.hint.replace("NAME", repr(project.name))) from None
    except SettingsError as exc:
        raise StageFailed(str(exc), "correct the file, or change the setting in Preferences") from None


def _check_upstream(project: Project, stage: str) -> None:
    index = STAGES.index(stage)
    for previous in STAGES[:index]:
        record = project.stage_record(previous)
        if record is None or record.status != DONE:
            raise StageFailed(f"{STAGE_TITLES[previous]} has not finished yet; run it first "
                              f"(splatstudio run {project.name!r} --from {previous})")
        problem = project.result_problem(previous, record)
        if problem:
            raise StageFailed(f"the result of {STAGE_TITLES[previous]} cannot be used: {problem}",
                              f"run it again: splatstudio run {project.name!r} --from {previous}")


class _LogTee:
    """Route everything written to file descriptor 2 — Python's logs and native (glog) output of
    pycolmap alike — to the stage's log file and the real stderr, line by line, with a hook that lets the
    stage turn native progress lines into progress events."""

    def __init__(self, log_path: Path, log_level: str = "INFO"):
        self.log_path = log_path
        self.line_hook: Callable[[str], None] | None = None
        self.on_lost: Callable[[], None] | None = None  # called once if the real stderr's reader goes away
        self.stderr_lost = False
        self.log_lost = False
        self.quiet = log_level in ("WARNING", "ERROR")
        self._real_stderr = os.dup(2)
        read_fd, write_fd = os.pipe()
        sys.stderr.flush()
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self._reader = os.fdopen(read_fd, "r", encoding="utf-8", errors="replace", newline="")
        self._log = open(log_path, "a", encoding="utf-8")
        self._thread = threading.Thread(target=self._pump, name="log-tee", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        for line in self._reader:
            if not (self.quiet and log_level(line) == "info" and not line.startswith("===")):
                if not self.log_lost:
                    try:
                        self._log.write(line)
                        self._log.flush()
                    except OSError:  # a full disk: the stage goes on (and says why it fails, if it does)
                        self.log_lost = True
                if not self.stderr_lost:
                    try:
                        os.write(self._real_stderr, line.encode("utf-8", "replace"))
                    except OSError:  # the reader is gone: the log file keeps everything, fd 2 never blocks
                        self.stderr_lost = True
                        if self.on_lost is not None:
                            self.on_lost()
            hook = self.line_hook
            if hook is not None:
                try:
                    hook(line.rstrip("\r\n"))
                except Exception:  # a progress parser must never break the stage
                    pass

    def close(self) -> None:
        sys.stderr.flush()
        os.dup2(self._real_stderr, 2)  # closes the pipe's last write end -> the pump sees EOF
        self._thread.join(timeout=5)
        try:
            self._log.close()
        except OSError:  # what is still buffered cannot be written (a full disk)
            pass
        os.close(self._real_stderr)

    def write_direct(self, text: str) -> None:
        """Write after the tee is closed (the final error line must reach the real stderr, if it is read)."""
        try:
            os.write(2, text.encode("utf-8", "replace"))
        except OSError:
            pass


def _watch_parent(ctx: StageContext, every: float = 0.5) -> None:
    """Stop as interrupted when the process that started the stage dies (kill -9, a closed terminal): the
    stage is then adopted by another process, which a change of parent id shows on every POSIX system."""
    parent = os.getppid()

    def watch() -> None:
        while not ctx.orphaned.is_set():
            time.sleep(every)
            if os.getppid() != parent:
                ctx.lose_reader()
                return

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def run_stage(stage: str, project_folder: Path, run_id: str | None = None) -> int:
    """Run one stage in this process (the body of ``python -m splatstudio.stages``)."""
    try:
        project = Project(project_folder)
        lock_fd = project.acquire_lock()
    except ProjectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED

    function, cancel_event = _become_stage_process(stage)
    previous = project.stage_record(stage)
    if previous is not None and previous.status == RUNNING:  # we hold the lock now: its owner died
        previous.status, previous.message = INTERRUPTED, "the stage's process stopped without finishing"
    run_id = run_id or project.new_run([stage])
    if previous is not None and previous.status == INTERRUPTED and previous.run_id:
        project.add_attempt(previous.run_id, previous)  # history: the attempt that died

    log_path = project.rotate_log(stage)  # the log shows the latest attempt; the one before stays beside it
    tee = _LogTee(log_path, project.settings.log_level)
    ctx = StageContext(project, stage, run_id, sys.stdout, cancel_event, tee)
    tee.on_lost = ctx.lose_reader
    _watch_parent(ctx)
    record = StageRecord(stage, RUNNING, started=now_iso(), pid=os.getpid(), run_id=run_id,
                         fingerprint=project.settings.fingerprint(stage))
    started = time.monotonic()
    outcome = _run_function(ctx, function, record, previous)
    status, figures, message, hint = _record_outcome(ctx, record, outcome, started)
    ctx.emit({"event": "result", "status": status, "figures": figures, "message": message, "hint": hint})
    tee.close()
    os.close(lock_fd)
    if status == FAILED:
        line = f"error: {message}" + (f" — {hint}" if hint else "")
        tee.write_direct(line.replace("\n", " ") + "\n")
        return EXIT_FAILED
    return EXIT_CANCELLED if status in (CANCELLED, INTERRUPTED) else EXIT_OK


def _become_stage_process(stage: str) -> tuple[Callable[[StageContext], dict[str, Any]], threading.Event]:
    """Lower this process's priority, load the stage's function, and turn SIGTERM and SIGINT into a cancel
    (the event returned)."""
    if hasattr(os, "nice"):
        os.nice(5)  # background work: the desktop (and the app's own window) stays responsive
    function = stage_function(stage)
    for module in spec(stage).preload:
        # pycolmap's glog installs a fatal-signal handler for SIGTERM when it loads; load it first so
        # that our handler (cancel gracefully) is the one in place.
        importlib.import_module(module)
    cancel_event = threading.Event()

    def on_term(signum: int, frame: Any) -> None:
        cancel_event.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    return function, cancel_event


@dataclass
class _Outcome:
    """How the stage's function ended: its status, figures and message, the error (a failure's type,
    message, hint and traceback) and what to try."""

    status: str = DONE
    figures: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    error: dict[str, Any] | None = None
    hint: str = ""


def _run_function(ctx: StageContext, function: Any, record: StageRecord, previous: StageRecord | None) -> _Outcome:
    """Check the stage's inputs and programs, make room, record it running and run it; how it ended (a
    cancel, a stage's own failure, any other error with its traceback, a full disk said as such)."""
    project, stage = ctx.project, ctx.stage
    outcome = _Outcome()
    try:
        ctx.log(f"=== {STAGE_TITLES[stage]} ({stage}) started {record.started} in {project.folder} ===")
        _check_upstream(project, stage)
        _check_programs(project, stage)
        project.make_room_for(stage, keep_own=project.keeps_checkpoint(stage, previous))
        project.write_stage_record(record)
        ctx.progress(0.0, f"{STAGE_TITLES[stage]} started", force=True)
        figures = outcome.figures = function(ctx) or {}
        outcome.message = figures.pop("message", "") if isinstance(figures.get("message"), str) else ""
    except Cancelled:
        outcome.status, outcome.message = CANCELLED, "cancelled by the user"
        if ctx.orphaned.is_set():
            outcome.status, outcome.message = INTERRUPTED, (
                "the window or terminal that ran it went away; run the project again to go on"
                + (" from the checkpoint" if spec(stage).resumes else ""))
        if not spec(stage).resumes:
            project.clear_stage(stage)
    except StageFailed as exc:
        outcome.status, outcome.message, outcome.hint = FAILED, str(exc), exc.hint
        outcome.error = {"type": "StageFailed", "message": str(exc), "hint": exc.hint, "traceback": ""}
        failure: BaseException = exc
    except Exception as exc:  # any other error is a bug or an environment problem: keep the traceback
        from splatstudio.io.errors import FormatError

        outcome.status = FAILED
        # a file's problem is said in plain words already (it names the file); anything else shows its type
        outcome.message = str(exc) if isinstance(exc, FormatError) else f"{type(exc).__name__}: {exc}"
        outcome.error = {"type": type(exc).__name__, "message": str(exc), "hint": "",
                         "traceback": traceback.format_exc()}
        ctx.log(outcome.error["traceback"])
        failure = exc
    if outcome.status == FAILED and (full := disk_full_message(project.folder, failure)):
        # said as such: the tools' own words ("disk I/O error", "no database factory", "the trainer
        # stopped") hide it
        outcome.message, outcome.hint = f"{full} ({outcome.message})", DISK_FULL_HINT
    return outcome


def _record_outcome(ctx: StageContext, record: StageRecord, outcome: _Outcome,
                    started: float) -> tuple[str, dict[str, Any], str, str]:
    """Write the stage's record (and the run's attempt) with its outcome; (status, figures, message, hint)
    as the runner is told them (a record that cannot be saved fails the stage)."""
    project, stage = ctx.project, ctx.stage
    status, figures, message, hint = outcome.status, outcome.figures, outcome.message, outcome.hint
    if status != DONE:
        project.discard_partial(stage)
    record.status, record.ended = status, now_iso()
    record.duration = round(time.monotonic() - started, 3)
    record.figures, record.message, record.error = figures, message, outcome.error
    if status == DONE:
        record.results = project.result_stamps(stage)
    ctx.log(f"=== {STAGE_TITLES[stage]} {status} after {record.duration:.1f} s"
            + (f": {message}" if message else "") + " ===")
    try:
        project.write_stage_record(record)
        project.add_attempt(record.run_id, record)
    except OSError as exc:  # the outcome still reaches the runner on stdout; the record says "interrupted"
        full = disk_full_message(project.folder, exc)
        if status != FAILED or not full:
            reason = full or exc.strerror or str(exc)
            message = (f"{message}; " if status == FAILED else "") + f"its record could not be saved: {reason}"
        status, hint = FAILED, DISK_FULL_HINT if full else hint
    if status == DONE and stage == result_stage(RESULT_PLY):  # the new result replaces the one kept meanwhile
        project.drop_kept_result()
    return status, figures, message, hint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m splatstudio.stages",
        description="Run one SplatStudio pipeline stage on a project folder (JSON progress on stdout, "
                    "logs on stderr).")
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--project", required=True, type=Path, help="the project folder")
    parser.add_argument("--run-id", help="the run this attempt belongs to (default: a new run)")
    parser.add_argument("--executor", default="local", help="where the stage runs: local (this process, the "
                        "default) or a Ray cluster (auto, ray://HOST:PORT), followed from this process")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    if args.executor.strip().lower() != "local":
        from splatstudio.model.settings import SettingsError
        from splatstudio.pipeline.cluster import parse_executor
        from splatstudio.pipeline.remote import run_stage_remotely

        try:
            address = parse_executor(args.executor)
        except SettingsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if address is not None:
            return run_stage_remotely(args.stage, args.project, args.run_id, address)
    return run_stage(args.stage, args.project, args.run_id)
