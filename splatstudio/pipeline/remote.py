"""Stages on a Ray cluster (issue 24): the same stage command, run on a worker in a copy of the project.

The setting ``executor`` says where stages run: ``local`` (this computer, the default: nothing here is
imported), ``auto`` (the Ray cluster this computer belongs to) or ``ray://HOST:PORT`` (a cluster's Ray
Client address). Ray is imported only when a stage goes to a cluster (the ``cluster`` extra).

One remote stage, end to end (:class:`RemoteStageRunner`, the CLI's runner when ``executor`` is not local):

1. this computer takes the project's lock (``stages/.lock``, as a local stage process does) and packs what
   the stage needs into a tar held in memory (``transfer.input_paths``, from the stage table: the project's
   metadata, its stage records and run history, the results of every earlier stage, which the stage process
   checks before it starts, and what the stage itself reads: the photos for the SfM stages, a stopped
   training's checkpoint);
2. a ``worker.StageWorker`` actor on a worker (one CPU; a stage the table marks ``gpu`` asks for a GPU when
   the cluster has one)
   says its SplatStudio version — another version is refused — unpacks the tar into a temporary folder
   of its own and runs ``python -m splatstudio.stages STAGE --project COPY --run-id RUN`` there;
3. the caller polls the actor for the stage's stdout and stderr lines while it runs and parses them as
   for a local stage, so progress is live; the first progress line means the stage passed its checks and
   cleared what it recomputes, and the caller then does the same to the local project (keeps the finished
   result, clears the stage's outputs, writes a *running* record), exactly as the stage process does;
4. when the stage ends (done, failed, cancelled: Ctrl+C reaches it as SIGTERM) the actor returns every
   file the stage created or changed and the paths it deleted; the caller installs them in the project
   atomically (whole output folders by rename, files by ``os.replace``, the stage record last).

The modules: :mod:`~splatstudio.pipeline.cluster` (the setting, the connection, what a cluster offers),
:mod:`~splatstudio.pipeline.transfer` (what travels, read from the stage table), :mod:`~splatstudio.pipeline.worker`
(the actor) and this one (the caller's side: :class:`RemoteStage`, the CLI's runner, the window's stage
process).

No shared filesystem is assumed: only the tar and the returned files travel (Ray's object store). A worker
that dies or a cluster that goes away mid-stage leaves the local project with a stage record saying
*interrupted* and the outputs it had: ``splatstudio run`` resumes, locally or on the cluster.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from splatstudio import __version__
from splatstudio.model.project import (
    DONE,
    INTERRUPTED,
    RESULT_PLY,
    RUNNING,
    Project,
    ProjectError,
    StageRecord,
    now_iso,
)
from splatstudio.model.stage_table import result_stage, spec
from splatstudio.pipeline.cluster import (
    INSTALL_HINT,
    ClusterError,
    ClusterInfo,
    WorkerLost,
    _first_line,
    connect,
    disconnect,
    parse_executor,
    ray_module,
)
from splatstudio.pipeline.context import EXIT_CANCELLED, EXIT_FAILED
from splatstudio.pipeline.events import Event, LogLine, Preview, Progress, Result, parse_line
from splatstudio.pipeline.runner import EventSink, StageRunner
from splatstudio.pipeline.transfer import input_paths, install, pack
from splatstudio.pipeline.worker import StageWorker

POLL_SECONDS = 0.2  # how often the caller asks the worker for the stage's new lines
START_ATTEMPTS = 3  # an actor that dies while starting is placed again (a dead node may still get it)
CALL_TIMEOUT = 120.0  # a call to the worker that takes longer than this means the worker or cluster is gone


class _NotStarted(Exception):
    """Cancelled while waiting for a worker: nothing was started."""


Lines = Callable[[str, str], None]


class RemoteStage:
    """One stage on the cluster, from this computer: ship, start, stream, stop, bring back (module
    docstring). ``on_line(stream, text)`` gets each line as the stage prints it (``"out"``/``"err"``)."""

    def __init__(self, project: Project, stage: str, run_id: str, on_line: Lines, cancelled: threading.Event,
                 on_wait: Callable[[str], None] | None = None):
        self.project = project
        self.stage = stage
        self.run_id = run_id
        self.on_line = on_line
        self.cancelled = cancelled
        self.on_wait = on_wait
        self.began = False
        self.shipped_bytes = 0
        self.returned_bytes = 0
        self.returned_files: dict[str, int] = {}
        self.worker: dict[str, Any] = {}
        self._previous: StageRecord | None = None
        self._keep = False

    # ---------------------------------------------------------------- the whole stage
    def run(self) -> int:
        """Run the stage remotely; its exit code. :class:`WorkerLost` when the worker or the cluster went
        away (the local project is then resumable), :class:`ClusterError` when it could not start there,
        :class:`ProjectError` when the project is busy."""
        ray = ray_module()
        lock_fd = self.project.acquire_lock()
        actor = None
        try:
            self._previous = self.project.stage_record(self.stage)
            if self._previous is not None and self._previous.status == RUNNING:  # we hold the lock: its owner died
                self._previous.status = INTERRUPTED
            self._keep = self.project.keeps_checkpoint(self.stage, self._previous)
            inputs = pack(self.project.folder, input_paths(self.project, self.stage, self._keep))
            self.shipped_bytes = len(inputs)
            actor = self._start_worker(ray)
            if self.worker.get("version") != __version__:
                raise ClusterError(
                    f"the cluster's worker {self.worker.get('host', '?')} runs SplatStudio "
                    f"{self.worker.get('version')}, this computer {__version__}: every worker needs this "
                    f"computer's version ({INSTALL_HINT}, then restart it: ray stop; ray start --address ...)")
            if self.cancelled.is_set():
                return EXIT_CANCELLED
            self._get(ray, actor.start.remote(self.stage, ray.put(inputs), self.run_id), "sending the project")
            cancel_sent = False
            while True:
                if self.cancelled.is_set() and not cancel_sent:
                    cancel_sent = True
                    actor.cancel.remote()
                lines, code = self._get(ray, actor.poll.remote(), "following the stage")
                for stream, text in lines:
                    if stream == "out" and not self.began and isinstance(parse_line(text), Progress):
                        self._begin()  # the stage passed its checks and cleared what it recomputes
                    self.on_line(stream, text)
                if code is not None:
                    break
                time.sleep(POLL_SECONDS)
            found = self._get(ray, actor.collect.remote(), "bringing the results back")
            self.returned_bytes = len(found["files"])
            with tarfile.open(fileobj=io.BytesIO(found["files"]), mode="r") as tar:
                self.returned_files = {member.name: member.size for member in tar.getmembers() if member.isfile()}
            install(self.project, self.stage, found["files"], found["deleted"])
            record = self.project.stage_record(self.stage)
            if self.stage == result_stage(RESULT_PLY) and record is not None and record.status == DONE:
                self.project.drop_kept_result()  # as the stage does: the new result replaces the kept one
            return int(found["code"])
        except _NotStarted:
            return EXIT_CANCELLED
        except WorkerLost as exc:
            self._interrupted(str(exc))
            raise
        finally:
            if actor is not None:
                try:
                    ray.kill(actor)
                except Exception:  # the worker or the connection is gone already
                    pass
            os.close(lock_fd)

    def _start_worker(self, ray: Any) -> Any:
        """An actor on a worker that said hello. One that dies while starting (nothing sent yet) is placed again:
        for a few seconds after a node dies, Ray can still place actors on it."""
        attempt = 1
        while True:
            actor = self._place(ray)
            try:
                self.worker = self._get(ray, actor.hello.remote(), "starting SplatStudio on a worker")
                return actor
            except WorkerLost:
                try:
                    ray.kill(actor)
                except Exception:  # gone with its node
                    pass
                if attempt >= START_ATTEMPTS:
                    raise
                attempt += 1
                time.sleep(2.0)

    def _place(self, ray: Any) -> Any:
        options: dict[str, Any] = {"num_cpus": 1, "max_concurrency": 4, "max_restarts": 0}
        settings = self.project.settings
        if spec(self.stage).gpu and settings.trainer_backend != "cpu":
            try:
                if ray.cluster_resources().get("GPU", 0) >= 1:
                    options["num_gpus"] = 1
            except Exception as exc:
                raise WorkerLost(f"the cluster does not answer ({_first_line(exc)})") from None
        return ray.remote(StageWorker).options(**options).remote()

    def _get(self, ray: Any, ref: Any, doing: str) -> Any:
        """``ray.get`` that stays responsive to a cancel and turns the cluster's failures into words."""
        waited, said = 0.0, False
        while True:
            try:
                return ray.get(ref, timeout=1.0)
            except ray.exceptions.GetTimeoutError:
                waited += 1.0
                if doing.startswith("starting") and self.cancelled.is_set():
                    raise _NotStarted() from None
                if doing.startswith("starting") and waited >= 10 and not said and self.on_wait is not None:
                    said = True
                    self.on_wait("waiting for a cluster worker with a free CPU"
                                 + (" and GPU" if spec(self.stage).gpu else ""))
                if not doing.startswith("starting") and waited >= CALL_TIMEOUT:
                    raise WorkerLost(f"the worker did not answer for {CALL_TIMEOUT:g} s while {doing}") from None
            except ray.exceptions.RayActorError as exc:
                if doing.startswith("starting") and "ModuleNotFoundError" in str(exc):
                    raise ClusterError(f"a cluster worker has no SplatStudio installed: {INSTALL_HINT}") from None
                raise WorkerLost(f"the worker stopped while {doing} ({_first_line(exc)})") from None
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None) or exc
                raise ClusterError(f"{doing} failed on the worker: {type(cause).__name__}: {_first_line(cause)}"
                                   ) from None
            except (ray.exceptions.RayError, ConnectionError) as exc:
                raise WorkerLost(f"lost the cluster while {doing} ({_first_line(exc)})") from None

    # ---------------------------------------------------------------- the local project, as the stage does
    def _begin(self) -> None:
        """What the stage process did to its copy before it started working, done to the local project."""
        self.began = True
        project, stage = self.project, self.stage
        project.make_room_for(stage, keep_own=self._keep)
        project.rotate_log(stage)
        project.write_stage_record(StageRecord(stage, RUNNING, started=now_iso(), pid=os.getpid(), run_id=self.run_id,
                                               fingerprint=project.settings.fingerprint(stage)))

    def _interrupted(self, why: str) -> None:
        """The worker or the cluster went away: the stage is interrupted (only if it had begun: otherwise the
        project was not touched)."""
        if not self.began:
            return
        record = self.project.stage_record(self.stage)
        if record is None:
            return
        record.status, record.ended = INTERRUPTED, now_iso()
        record.message = f"{why}; run the project again to go on" + (
            " from the last checkpoint that came back" if self._keep else "")
        try:
            self.project.write_stage_record(record)
            if record.run_id:
                self.project.add_attempt(record.run_id, record)
        except OSError:  # the record says running and nobody holds the lock: it reads as interrupted anyway
            pass


class RemoteStageRunner(StageRunner):
    """The CLI's runner when ``executor`` names a cluster: each stage of the plan is a :class:`RemoteStage`,
    whose lines become the same events as a local stage's (a preview's file stays on the worker: dropped)."""

    def __init__(self, project: Project, on_event: EventSink, address: str):
        super().__init__(project, on_event)
        self.address = address
        self.info: ClusterInfo | None = None
        self.done: list[RemoteStage] = []
        """The stages run so far, with the bytes shipped and returned (benchmarks/ray_overhead.py)."""

    def prepare(self) -> str:
        self.info = connect(self.address)
        return f"stages run on the Ray cluster at {self.address} ({self.info.describe()})"

    def run(self, plan: Any, on_stage: Callable[[str], None] | None = None) -> Any:
        try:
            if self.info is None:
                self.prepare()
            return super().run(plan, on_stage)
        finally:
            disconnect()

    def _run_stage(self, stage: str, run_id: str) -> tuple[Result | None, int, str]:
        result: Result | None = None
        last_error = ""

        def on_line(stream: str, text: str) -> None:
            nonlocal result, last_error
            event: Event = parse_line(text)
            if stream == "out" and isinstance(event, Result):
                result = event
            if isinstance(event, Preview):
                return
            if stream == "err" and isinstance(event, LogLine) and event.text.startswith("error: "):
                last_error = event.text[len("error: "):]
            self.on_event(stage, event)

        def on_wait(text: str) -> None:
            self.on_event(stage, LogLine(text, "warning"))

        work = RemoteStage(self.project, stage, run_id, on_line, self._cancelled, on_wait)
        self.done.append(work)
        try:
            code = work.run()
        except WorkerLost as exc:
            return result, EXIT_FAILED, (f"{exc}; the project is resumable: "
                                         f"splatstudio run {self.project.name!r}")
        except (ClusterError, ProjectError) as exc:
            return result, EXIT_FAILED, str(exc)
        return result, code, last_error


def run_stage_remotely(stage: str, project_folder: Path, run_id: str | None, address: str) -> int:
    """``python -m splatstudio.stages STAGE --project DIR --executor ADDRESS``: one stage on the cluster at
    ``address`` (:func:`parse_executor`'s value), from a process of its own that stands in for the stage
    process (the window's stage processes run this when the ``executor`` setting names a cluster). It prints
    the stage's lines as the stage prints them (a preview's file stays on the worker: dropped), SIGTERM or
    Ctrl+C cancels the stage, and its exit code is the stage's: the window follows it as a local stage."""
    cancelled = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        cancelled.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)

    parent = os.getppid()

    def watch_parent() -> None:  # the window that follows this stage died: stop it as a cancel would
        while not cancelled.wait(0.5):
            if os.getppid() != parent:
                cancelled.set()

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()

    def say(text: str, stream: Any) -> None:
        try:
            print(text, file=stream, flush=True)
        except (OSError, ValueError):  # nobody reads any more: the stage's own log keeps every line
            cancelled.set()

    def on_line(stream: str, text: str) -> None:
        if stream == "out" and isinstance(parse_line(text), Preview):
            return
        say(text, sys.stdout if stream == "out" else sys.stderr)

    def on_wait(text: str) -> None:
        say(f"warning: {text}", sys.stderr)

    try:
        project = Project(project_folder)
        info = connect(address)
        print(f"running on the Ray cluster at {address} ({info.describe()})", file=sys.stderr, flush=True)
        work = RemoteStage(project, stage, run_id or "", on_line, cancelled, on_wait)
        return work.run()
    except WorkerLost as exc:
        print(f"error: {exc}; the project is resumable: run it again", file=sys.stderr, flush=True)
        return EXIT_FAILED
    except (ClusterError, ProjectError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    finally:
        disconnect()


def make_runner(project: Project, on_event: EventSink, executor: str | None = None) -> StageRunner:
    """The runner for ``executor`` (the setting's value): :class:`StageRunner` for ``local`` (nothing of Ray
    is imported), a cluster's runner otherwise. ``SettingsError`` for a value that names neither."""
    address = parse_executor(executor)
    if address is None:
        return StageRunner(project, on_event)
    return RemoteStageRunner(project, on_event, address)
