"""Run slots: the one run queue of a library, honoured by the window and every CLI process alike.

``max_concurrent_runs`` bounds the projects reconstructing at once in a library, whichever process runs
them. The library keeps slot files in ``.run-slots/``; a project run holds one for its whole plan (not per
stage, so another run cannot slip in between two stages) under an exclusive ``flock``. The kernel drops
that lock when the process ends however it ends, so a killed run leaves no stale slot and no PID
bookkeeping is needed (the same reasoning as the project's ``stages/.lock``). The holder writes who it is
into its slot file (project, folder, pid, start time, terminal or window), so any process can list the
runs going on.

Taking a slot counts the live holders and takes a free file as one step under ``.run-slots/queue.lock``, so
processes that disagree about the limit each honour their own: a run starts only while fewer runs than
its own limit are going on. Listing takes no mutex; it may briefly miss a run that is starting or ending.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from splatstudio.model.project import ProjectError

SLOTS_DIR = ".run-slots"
MUTEX_NAME = "queue.lock"
TERMINAL, WINDOW = "terminal", "window"

# Others hold the mutex (one taker's count and take) and a free slot (a lister's probe) only for moments:
# patient tries ride over that instead of reporting the queue full.
_RETRIES, _RETRY_DELAY = 20, 0.01


@dataclass(frozen=True)
class SlotHolder:
    """A run holding a slot, as its slot file says."""

    index: int
    project: str
    folder: str
    pid: int
    started: float  # seconds since the epoch
    origin: str  # TERMINAL or WINDOW
    stage: str | None = None  # the stage running now (None before the first, and between two)

    @classmethod
    def from_dict(cls, index: int, data: dict) -> SlotHolder:
        """The holder a slot file names; a damaged record still counts as a run ("?")."""
        try:
            stage = data.get("stage")
            return cls(index, str(data["project"]), str(data["folder"]), int(data["pid"]), float(data["started"]),
                       str(data.get("origin", TERMINAL)), stage if isinstance(stage, str) else None)
        except (KeyError, TypeError, ValueError):
            return cls(index, "?", "", 0, 0.0, TERMINAL)

    @property
    def where(self) -> str:
        """Where the run goes on, for messages: "from a terminal (process 123)"."""
        place = "from a terminal" if self.origin == TERMINAL else "in the SplatStudio window"
        return f"{place} (process {self.pid})"


class ProjectAlreadyRunning(ProjectError):
    """The project is being run by another process (or another run of this one)."""

    def __init__(self, holder: SlotHolder):
        super().__init__(f"project {holder.project!r} is busy: it is running {holder.where}")
        self.holder = holder


def describe_wait(holders: list[SlotHolder], limit: int) -> str:
    """The line a run prints while it waits: who holds the slots, and the limit."""
    names = ", ".join(h.project for h in holders)
    count = f"{len(holders)} project{'s are' if len(holders) != 1 else ' is'} running"
    return f"waiting for a free run slot: {count} ({names}); max_concurrent_runs is {limit}"


class RunSlot:
    """A slot held by this process; :meth:`release` it when the run ends (or use it as a context manager)."""

    def __init__(self, fd: int, holder: SlotHolder):
        self._fd: int | None = fd
        self.holder = holder
        self._write()

    @property
    def index(self) -> int:
        return self.holder.index

    def set_stage(self, stage: str | None) -> None:
        """Say which stage runs now, for the lists of other processes."""
        if self._fd is not None and stage != self.holder.stage:
            self.holder = replace(self.holder, stage=stage)
            try:
                self._write()
            except OSError:  # a full disk: the lists show the previous stage; the run itself goes on
                pass

    def _write(self) -> None:
        assert self._fd is not None
        data = json.dumps(asdict(self.holder)).encode()
        os.pwrite(self._fd, data, 0)  # in place, then cut: a reader never sees the record emptied
        os.ftruncate(self._fd, len(data))

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # empty means free: listers skip it without probing the lock
        finally:
            os.close(fd)  # drops the lock

    def __enter__(self) -> RunSlot:
        return self

    def __exit__(self, *_exc) -> None:
        self.release()


def _try_lock(fd: int, operation: int, patient: bool = False) -> bool:
    """A non-blocking flock; False if another holds a conflicting lock. ``patient`` tries a few more times,
    for a lock that others hold only for moments (the mutex, a free slot a lister is probing)."""
    for attempt in range(_RETRIES if patient else 1):
        if attempt:
            time.sleep(_RETRY_DELAY)
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            continue
    return False


def _read_info(path: Path) -> dict | None:
    """A slot file's holder record; None when it is empty (released) or gone, {} when unreadable."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    if not text.strip():
        return None
    try:
        # the holder rewrites its record in place; a longer old record can trail it for a moment
        data, _end = json.JSONDecoder().raw_decode(text.lstrip())
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _is_held(path: Path) -> bool:
    """Whether a live process holds the slot's lock (a shared probe does not conflict with other probes)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        if _try_lock(fd, fcntl.LOCK_SH):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        return True
    finally:
        os.close(fd)


class RunSlots:
    """The run slots of the library in ``library_folder``."""

    def __init__(self, library_folder: Path | str):
        self.folder = Path(library_folder) / SLOTS_DIR

    def _slot_path(self, index: int) -> Path:
        return self.folder / f"slot-{index}.lock"

    def _slot_files(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.folder.glob("slot-*.lock"):
            suffix = path.stem.removeprefix("slot-")
            if suffix.isdigit():
                found.append((int(suffix), path))
        return sorted(found)

    # ------------------------------------------------------------------ queries
    def holders(self) -> list[SlotHolder]:
        """The runs going on in this library, in slot order."""
        live = []
        for index, path in self._slot_files():
            info = _read_info(path)
            if info is not None and _is_held(path):  # a killed holder's record stays, its lock does not
                live.append(SlotHolder.from_dict(index, info))
        return live

    def holder_of(self, folder: Path | str) -> SlotHolder | None:
        """The run of the project in ``folder``, if one holds a slot."""
        key = _folder_key(folder)
        return next((h for h in self.holders() if h.folder == key), None)

    # ------------------------------------------------------------------ taking
    def try_take(self, limit: int, project: str, folder: Path | str, origin: str = TERMINAL) -> RunSlot | None:
        """A slot for a run of ``project`` if fewer than ``limit`` runs are going on, else None (try again
        later). :class:`ProjectAlreadyRunning` if another run of the same project holds a slot."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._mutex() as ours:
            if not ours:
                return None
            live = self.holders()
            key = _folder_key(folder)
            same = next((h for h in live if h.folder == key), None)
            if same is not None:
                raise ProjectAlreadyRunning(same)
            if len(live) >= max(1, limit):
                return None
            held = {h.index for h in live}
            # among the first len(live) + 1 indices at least one is free
            for index in (i for i in range(len(live) + 1) if i not in held):
                slot = self._take(SlotHolder(index, project, key, os.getpid(), time.time(), origin))
                if slot is not None:
                    return slot
        return None

    def wait_take(self, limit: int, project: str, folder: Path | str, stop: threading.Event,
                  on_wait: Callable[[list[SlotHolder]], None] | None = None, poll: float = 1.0,
                  origin: str = TERMINAL) -> RunSlot | None:
        """Take a slot, waiting ``poll`` seconds between tries; ``on_wait(holders)`` after each failed try.
        None when ``stop`` is set first (a cancel while waiting)."""
        while not stop.is_set():
            slot = self.try_take(limit, project, folder, origin)
            if slot is not None:
                return slot
            if on_wait is not None:
                on_wait(self.holders())
            stop.wait(poll)
        return None

    def _take(self, holder: SlotHolder) -> RunSlot | None:
        fd = os.open(self._slot_path(holder.index), os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd, fcntl.LOCK_EX, patient=True):
            os.close(fd)
            return None
        try:
            return RunSlot(fd, holder)
        except OSError:  # no room for the record (a full disk): the slot is not taken
            os.close(fd)
            raise

    @contextmanager
    def _mutex(self) -> Iterator[bool]:
        """The queue's mutex (True when taken); never blocks for long, so the window's GUI thread may call it."""
        fd = os.open(self.folder / MUTEX_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            yield _try_lock(fd, fcntl.LOCK_EX, patient=True)
        finally:
            os.close(fd)


def _folder_key(folder: Path | str) -> str:
    """One spelling of a project folder for every process (relative paths, symlinks)."""
    return os.path.realpath(folder)
