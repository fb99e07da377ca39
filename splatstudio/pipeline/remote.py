"""Stages on a Ray cluster (issue 24): the same stage command, run on a worker in a copy of the project.

The setting ``executor`` says where stages run: ``local`` (this computer, the default: nothing here is
imported), ``auto`` (the Ray cluster this computer belongs to) or ``ray://HOST:PORT`` (a cluster's Ray
Client address). Ray is imported only when a stage goes to a cluster (the ``cluster`` extra).

One remote stage, end to end (:class:`RemoteStageRunner`, the CLI's runner when ``executor`` is not local):

1. this computer takes the project's lock (``stages/.lock``, as a local stage process does) and packs what
   the stage needs into a tar held in memory (:func:`input_paths`: the project's metadata, its stage records
   and run history, the results of every earlier stage, which the stage process checks before it starts,
   and what the stage itself reads: the photos for the SfM stages, a stopped training's checkpoint);
2. a :class:`StageWorker` actor on a worker (one CPU; training asks for a GPU when the cluster has one)
   says its SplatStudio version — another version is refused — unpacks the tar into a temporary folder
   of its own and runs ``python -m splatstudio.stages STAGE --project COPY --run-id RUN`` there;
3. the caller polls the actor for the stage's stdout and stderr lines while it runs and parses them as
   for a local stage, so progress is live; the first progress line means the stage passed its checks and
   cleared what it recomputes, and the caller then does the same to the local project (keeps the finished
   result, clears the stage's outputs, writes a *running* record), exactly as the stage process does;
4. when the stage ends (done, failed, cancelled: Ctrl+C reaches it as SIGTERM) the actor returns every
   file the stage created or changed and the paths it deleted; the caller installs them in the project
   atomically (whole output folders by rename, files by ``os.replace``, the stage record last).

No shared filesystem is assumed: only the tar and the returned files travel (Ray's object store). A worker
that dies or a cluster that goes away mid-stage leaves the local project with a stage record saying
*interrupted* and the outputs it had: ``splatstudio run`` resumes, locally or on the cluster.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from splatstudio import __version__
from splatstudio.model.atomic import sha256_of
from splatstudio.model.project import (
    DONE,
    INTERRUPTED,
    RUNNING,
    STAGE_OUTPUTS,
    STAGE_RESULTS,
    STAGES,
    Project,
    ProjectError,
    StageRecord,
    now_iso,
)
from splatstudio.model.settings import SettingsError
from splatstudio.pipeline.context import EXIT_CANCELLED, EXIT_FAILED
from splatstudio.pipeline.events import Event, LogLine, Preview, Progress, Result, parse_line
from splatstudio.pipeline.runner import EventSink, StageRunner

LOCAL, AUTO = "local", "auto"
CLIENT_SCHEME = "ray://"
INSTALL_HINT = f"pip install 'splatstudio[cluster]=={__version__}'"
POLL_SECONDS = 0.2  # how often the caller asks the worker for the stage's new lines
START_ATTEMPTS = 3  # an actor that dies while starting is placed again (a dead node may still get it)
CALL_TIMEOUT = 120.0  # a call to the worker that takes longer than this means the worker or cluster is gone
WORK_PREFIX = "splatstudio-stage-"
DIGEST_FROM = 1 << 20  # files from this size are compared by content before they travel back

# What a stage reads beyond the project's metadata and the earlier stages' results.
_STAGE_READS: dict[str, tuple[str, ...]] = {
    "features": ("images",),
    "matching": ("images",),  # the pairing reads the photos' sequences
    "mapping": ("images",),  # the diagnosis of unplaced photos reads them
    "undistort": ("images", "sfm/report.json"),
    "train": (),  # dataset/ is undistort's result; a stopped run's train/ is added when it resumes
    "filter": (),
    "splat": (),
}
_METADATA = ("project.json", "import.json", "edits.json", "stages", "runs")
_SKIPPED_NAMES = (".lock",)
_PROJECT_FOLDERS = ("images", "logs", "stages", "runs", "output")


class ClusterError(Exception):
    """The cluster cannot be used (not installed, unreachable, another SplatStudio version on a worker...):
    the message names the problem and what to do."""


class WorkerLost(ClusterError):
    """The worker running a stage, or the connection to the cluster, went away while it ran."""


class _NotStarted(Exception):
    """Cancelled while waiting for a worker: nothing was started."""


# ------------------------------------------------------------------------------------------ the setting

def parse_executor(value: str | None) -> str | None:
    """The Ray address an ``executor`` value names, or None for ``local``. :class:`SettingsError` (a usage
    error) for anything else than ``local``, ``auto`` and ``ray://HOST:PORT``."""
    text = (value or LOCAL).strip()
    if text.lower() == LOCAL:
        return None
    if text.lower() == AUTO:
        return AUTO
    if text.startswith(CLIENT_SCHEME):
        host, _, port = text[len(CLIENT_SCHEME):].rpartition(":")
        if host and port.isdigit() and 0 < int(port) < 65536:
            return text
    raise SettingsError(f"setting executor: {text!r} is not local, auto or ray://HOST:PORT "
                        "(a Ray cluster's client address, port 10001 by default)")


def ray_module() -> Any:
    """``import ray``, or :class:`ClusterError` saying how to install it. Ray's automatic ``ray.init()`` is off:
    a call made after the connection to the cluster broke must fail, not start a Ray instance on this computer
    (which also writes a token to ``~/.ray/auth_token`` that breaks every later ``ray start`` here)."""
    os.environ["RAY_ENABLE_AUTO_CONNECT"] = "0"  # read when Ray is imported
    try:
        import ray
        import ray._private.auto_init_hook as auto_init
    except ImportError:
        raise ClusterError(f"running stages on a Ray cluster needs Ray, which is not installed here: {INSTALL_HINT}"
                           ) from None
    auto_init.enable_auto_connect = False  # Ray was imported before (by a test, a benchmark)
    return ray


@dataclass(frozen=True)
class ClusterInfo:
    """What a cluster offers, for the CLI's first line, Preferences and the run queues."""

    address: str
    nodes: int
    cpus: float
    gpus: float
    memory_bytes: float
    slots: int = 0
    """How many stages the cluster runs at once (:func:`stage_slots`): how many runs it holds."""

    def describe(self) -> str:
        gpus = f", {self.gpus:g} GPU{'s' if self.gpus != 1 else ''}" if self.gpus else ", no GPU"
        return (f"{self.nodes} node{'s' if self.nodes != 1 else ''}, {self.cpus:g} CPUs{gpus}, "
                f"{self.memory_bytes / 2**30:.1f} GiB memory; room for {self.slots} "
                f"run{'s' if self.slots != 1 else ''} at once")

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "nodes": self.nodes, "cpus": self.cpus, "gpus": self.gpus,
                "memory_bytes": self.memory_bytes, "slots": self.slots}


def stage_slots(nodes: Iterable[dict[str, Any]]) -> int:
    """How many stages ``nodes`` (``ray.nodes()``) run at once: a stage's worker takes one CPU of a node (a
    whole one: Ray does not split it across nodes) and, when the cluster has GPUs, its training takes one
    GPU, so a cluster with GPUs holds no more runs than it has whole GPUs (a run never waits at training
    for a GPU another run's SfM does not need). Dead nodes offer nothing."""
    cpus = gpus = 0
    for node in nodes:
        if not node.get("Alive"):
            continue
        resources = node.get("Resources") or {}
        cpus += int(float(resources.get("CPU", 0)) + 1e-9)
        gpus += int(float(resources.get("GPU", 0)) + 1e-9)
    return min(cpus, gpus) if gpus else cpus


def connect(address: str) -> ClusterInfo:
    """Connect this process to the cluster (once; again after :func:`disconnect`). :class:`ClusterError`
    naming the address when it cannot be reached."""
    ray = ray_module()
    if not ray.is_initialized():
        import logging

        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for attempt in (1, 2):
                try:
                    with warnings.catch_warnings():  # the reason is in the error (Ray warns of a client's timeout)
                        warnings.simplefilter("ignore")
                        ray.init(address=address, namespace="splatstudio", log_to_driver=False,
                                 logging_level=logging.ERROR)
                    break
                except ConnectionAbortedError:  # the head could not start this client's server in time: again
                    if attempt == 2:
                        raise
                    time.sleep(2.0)
        except Exception as exc:  # ConnectionError, a gRPC error, a version mismatch of Ray itself...
            where = "no Ray cluster runs on this computer" if address == AUTO else f"cannot reach {address}"
            raise ClusterError(f"{where} ({_first_line(exc)}); check the executor setting and that the cluster "
                               "runs (`ray start --head` on its head machine), or set executor=local") from None
        finally:  # ray.init installs its own SIGTERM handler in a driver: Ctrl+C and SIGTERM stay a cancel
            if threading.current_thread() is threading.main_thread():
                for sig, handler in handlers.items():
                    signal.signal(sig, handler)
    return cluster_info(address)


def cluster_info(address: str) -> ClusterInfo:
    ray = ray_module()
    try:
        total = ray.cluster_resources()
        nodes = ray.nodes()
    except Exception as exc:
        raise ClusterError(f"the cluster at {address} does not answer ({_first_line(exc)})") from None
    return ClusterInfo(address, sum(1 for node in nodes if node.get("Alive")), float(total.get("CPU", 0)),
                       float(total.get("GPU", 0)), float(total.get("memory", 0)), stage_slots(nodes))


def disconnect() -> None:
    if "ray" in sys.modules:
        ray = sys.modules["ray"]
        if ray.is_initialized():
            ray.shutdown()


_PROBE = """import json, sys
from splatstudio.pipeline import remote
try:
    print(json.dumps(remote.connect(sys.argv[1]).to_dict()))
except remote.ClusterError as exc:
    print(json.dumps({"error": str(exc)}))
finally:
    remote.disconnect()
"""


def probe_info(address: str, timeout: float = 60.0) -> ClusterInfo:
    """What the cluster at ``address`` (:func:`parse_executor`'s value) offers, asked from a child process (a
    Ray connection belongs to one process and may take seconds: this may run in any thread).
    :class:`ClusterError` saying why it cannot be used."""
    import json

    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, address], capture_output=True, text=True,
                              timeout=timeout, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    except subprocess.TimeoutExpired as exc:
        said = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        last = [line.strip() for line in said.splitlines() if line.strip()][-1:]
        raise ClusterError(f"{address}: no answer within {timeout:g} s" + (f" ({last[0][:300]})" if last else "")
                           ) from None
    lines = done.stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1]) if lines else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ClusterError(f"{address}: cannot be checked ({why})")
    if "error" in data:
        raise ClusterError(str(data["error"]))
    return ClusterInfo(str(data["address"]), int(data["nodes"]), float(data["cpus"]), float(data["gpus"]),
                       float(data["memory_bytes"]), int(data["slots"]))


def probe(executor: str | None, timeout: float = 60.0) -> str:
    """One line on the cluster an ``executor`` value names, for Preferences: what it offers, or why it
    cannot be used (:func:`probe_info`; "stages run on this computer" for ``local``, at once)."""
    try:
        address = parse_executor(executor)
    except SettingsError as exc:
        return str(exc)
    if address is None:
        return "stages run on this computer"
    try:
        return f"{address}: {probe_info(address, timeout).describe()}"
    except ClusterError as exc:
        text = str(exc)
        return text if text.startswith(f"{address}: ") else f"{address}: {text}"


def _first_line(exc: BaseException) -> str:
    """An error in one line: its first, or its last when the first only announces the rest (a traceback)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    line = lines[-1] if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return line[:300]


# ----------------------------------------------------------------------------------- what travels

def input_paths(project: Project, stage: str, resume_training: bool) -> list[str]:
    """The project paths (relative, POSIX) a remote ``stage`` needs, those that exist."""
    wanted = list(_METADATA)
    for earlier in STAGES[:STAGES.index(stage)]:
        wanted += STAGE_RESULTS[earlier]
    wanted += _STAGE_READS[stage]
    if stage == "train" and resume_training:
        wanted += ["train", "logs/train-curves.jsonl"]
    seen: list[str] = []
    for rel in wanted:
        if rel not in seen and (project.folder / rel).exists():
            seen.append(rel)
    return seen


def pack(folder: Path, rels: Iterable[str]) -> bytes:
    """An uncompressed tar (photos are compressed already) of ``rels`` under ``folder``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in rels:
            tar.add(folder / rel, arcname=rel, filter=_skip_locks)
    return buffer.getvalue()


def _skip_locks(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Leave out the lock and a stage's half-written outputs (``dataset.part``, ``database.db.part-wal``)."""
    path = PurePosixPath(info.name)
    if path.name in _SKIPPED_NAMES:
        return None
    if path.parts[0] not in ("images", "dataset") and (path.name.endswith(".part") or ".part-" in path.name):
        return None
    return info


def unpack(data: bytes, folder: Path) -> None:
    """Extract a tar of project files; members that would land outside ``folder`` are refused."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(folder, filter="data")
        else:  # Python < 3.10.12: the same refusal by hand
            for member in tar.getmembers():
                _safe_rel(member.name)
                if not (member.isfile() or member.isdir()):
                    raise ValueError(f"{member.name}: not a file or folder")
            tar.extractall(folder)


def _safe_rel(rel: str) -> str:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"{rel!r} is not a path inside the project")
    return str(path)


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every file and folder under ``folder`` (relative path -> inode, size, modification time in ns; a
    folder's size is -1), to tell later what a stage created, changed and deleted."""
    found: dict[str, tuple[int, int, int]] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue
            rel = path.relative_to(folder).as_posix()
            found[rel] = (info.st_ino, -1 if name in dirs else info.st_size, info.st_mtime_ns)
    return found


def digests(folder: Path, stamps: dict[str, tuple[int, int, int]]) -> dict[str, str]:
    """Content hashes of the files above :data:`DIGEST_FROM` bytes (a database a stage opens but leaves as it
    was gets a new modification time: it need not travel back)."""
    found = {}
    for rel, (_ino, size, _mtime) in stamps.items():
        if size >= DIGEST_FROM:
            found[rel] = sha256_of(folder / rel)
    return found


def changes(folder: Path, before: dict[str, tuple[int, int, int]],
            contents: dict[str, str] | None = None) -> tuple[bytes, list[str]]:
    """A tar of every file created or changed under ``folder`` since ``before`` (and of new folders), and the
    paths deleted since, deepest first. A file whose ``contents`` hash is unchanged did not change."""
    after = snapshot(folder)
    contents = contents or {}

    def changed_file(rel: str, stamp: tuple[int, int, int]) -> bool:
        was = before.get(rel)
        if was == stamp:
            return False
        if was is not None and was[1] == stamp[1] and rel in contents:
            return sha256_of(folder / rel) != contents[rel]
        return True

    changed = [rel for rel, stamp in after.items()
               if _skip_locks(tarfile.TarInfo(rel)) is not None
               and (rel not in before if stamp[1] == -1 else changed_file(rel, stamp))]
    deleted = sorted((rel for rel in before if rel not in after), key=lambda rel: -rel.count("/"))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(changed):
            tar.add(folder / rel, arcname=rel, recursive=False)
    return buffer.getvalue(), deleted


# ----------------------------------------------------------------------------------- the worker side

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
        from splatstudio.pipeline.plan import stage_argv

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


# ----------------------------------------------------------------------------------- the caller side

def install(project: Project, stage: str, files: bytes, deleted: Iterable[str]) -> None:
    """Put what a remote stage created, changed and deleted into the local project: each of the stage's
    output folders whole by rename (the files it kept, hard-linked, and those it wrote), other files by
    ``os.replace``, the stage's record last, so the record never describes outputs that are not in place."""
    staging = project.folder / f".remote-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        unpack(files, staging)
        gone = {_safe_rel(rel) for rel in deleted}
        for rel in STAGE_OUTPUTS.get(stage, ()):
            if (staging / rel).is_dir():
                _install_folder(project.folder, staging, rel, gone)
        for rel in sorted(gone, key=lambda r: -r.count("/")):
            _remove(project.folder / rel)
        record = f"stages/{stage}.json"
        moved = []
        for root, _dirs, names in os.walk(staging):
            for name in names:
                rel = (Path(root) / name).relative_to(staging).as_posix()
                if rel != record:
                    moved.append(rel)
        for rel in [*moved, record]:
            source = staging / rel
            if source.is_file():
                target = project.folder / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _install_folder(project_folder: Path, staging: Path, rel: str, gone: set[str]) -> None:
    local, new = project_folder / rel, staging / rel
    if local.is_dir():  # a resumed training: the files it did not touch are kept
        for root, _dirs, names in os.walk(local):
            for name in names:
                path = Path(root) / name
                inner = path.relative_to(project_folder).as_posix()
                target = staging / inner
                if inner in gone or target.exists():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(path, target)
                except OSError:
                    shutil.copy2(path, target)
    old = project_folder / f"{rel}.remote-old"
    _remove(old)
    if local.exists():
        local.rename(old)
    local.parent.mkdir(parents=True, exist_ok=True)
    new.rename(local)
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


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
            if self.stage == "filter" and record is not None and record.status == DONE:
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
        if self.stage == "train" and settings.trainer_backend != "cpu":
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
                                 + (" and GPU" if self.stage == "train" else ""))
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
