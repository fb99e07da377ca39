"""Project runs and the run queue (the old service's concurrency limit, reshaped for the desktop).

:class:`ProjectRun` runs a plan's stages one after another, each a :class:`StageProcess`.
:class:`RunQueue` holds the runs asked for and starts at most ``max_concurrent`` at once; waiting runs
can be reordered or removed. Given the library's :class:`RunSlots`, the limit holds across processes: each
run holds a slot, runs started from a terminal count too, and the queue lists them. With an ``executor``
naming a Ray cluster, each stage runs there (its process follows it: ``remote.run_stage_remotely``) and
the limit is also what the cluster holds, asked in a thread now and then (``cluster.probe_info``). Both are
QtCore only, so the GUI and tests drive them alike.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from splatstudio.model.project import CANCELLED, DONE, Project
from splatstudio.model.run_slots import WINDOW, RunSlot, RunSlots, SlotHolder
from splatstudio.model.settings import SPEC_BY_KEY, SettingsError
from splatstudio.pipeline.cluster import ClusterError, ClusterInfo, parse_executor, probe_info
from splatstudio.pipeline.outcome import RunOutcome, stage_outcome
from splatstudio.pipeline.plan import RunPlan, plan_run
from splatstudio.services.stage_process import StageProcess

LOG_HISTORY = 20_000  # lines of a run's log kept in memory, for a panel that starts showing it late


class ProjectRun(QObject):
    """Runs the stages of one project in order; :meth:`cancel` stops the current stage gently."""

    sig_stage_started = Signal(str)
    """A stage's process started (stage name)."""
    sig_stage_finished = Signal(str, str)
    """(stage, status) when a stage's process ended."""
    sig_progress = Signal(str, object)
    """(stage, Progress event)."""
    sig_event = Signal(str, object)
    """(stage, any parsed stdout event: Eval, Preview, Result...)."""
    sig_log_lines = Signal(str, object)
    """(stage, batch of LogLine)."""
    sig_finished = Signal(object)
    """The :class:`RunOutcome` when the run ended (done, failed or cancelled)."""

    def __init__(self, project: Project, plan: RunPlan, python: str | None = None, parent: QObject | None = None,
                 executor: str | None = None):
        super().__init__(parent)
        self.project = project
        self.plan = plan
        self.python = python
        self.executor = executor
        """A Ray cluster's address to run the stages there (None: on this computer)."""
        self.run_id: str | None = None
        self.current: StageProcess | None = None
        self._index = -1
        self._cancelled = False
        self._outcome = RunOutcome(DONE)
        self.log_lines: deque = deque(maxlen=LOG_HISTORY)
        """This run's log lines so far (the newest LOG_HISTORY), for a log panel that starts following late."""

    @property
    def current_stage(self) -> str | None:
        return self.current.stage if self.current is not None else None

    def start(self) -> None:
        self.run_id = self.project.new_run(list(self.plan.stages))
        self._next()

    def cancel(self) -> None:
        self._cancelled = True
        if self.current is not None:
            self.current.stop()

    def _next(self) -> None:
        self._index += 1
        if self._cancelled and self._index < len(self.plan.stages):
            self._end(RunOutcome(CANCELLED, self.plan.stages[self._index], "cancelled by the user"))
            return
        if self._index >= len(self.plan.stages):
            self._end(self._outcome)
            return
        stage = self.plan.stages[self._index]
        process = StageProcess(stage, self.project.folder, self.run_id, self.python, parent=self,
                               executor=self.executor)
        process.sig_progress.connect(self._on_progress)
        process.sig_event.connect(self._on_event)
        process.sig_log_lines.connect(self._on_log_lines)
        process.sig_finished.connect(self._on_stage_finished)
        self.current = process
        self.sig_stage_started.emit(stage)
        process.start()

    def _on_progress(self, event) -> None:
        self.sig_progress.emit(self.current_stage or "", event)

    def _on_event(self, event) -> None:
        self.sig_event.emit(self.current_stage or "", event)

    def _on_log_lines(self, lines: list) -> None:
        self.log_lines.extend(lines)
        self.sig_log_lines.emit(self.current_stage or "", lines)

    def _on_stage_finished(self, status: str, result, code: int) -> None:
        process = self.current
        assert process is not None
        stage = process.stage
        self.current = None
        process.deleteLater()
        if result is not None:
            self._outcome.results[stage] = result
        self.sig_stage_finished.emit(stage, status)
        if status == DONE:
            self._next()
            return
        status = CANCELLED if self._cancelled else status
        self._end(stage_outcome(stage, status, result, process.last_error, code, self._outcome.results))

    def _end(self, outcome: RunOutcome) -> None:
        if self.run_id is not None:
            self.project.finish_run(self.run_id, outcome.status)
        self.sig_finished.emit(outcome)


@dataclass
class QueueEntry:
    folder: Path
    name: str
    from_stage: str | None = None
    until: str | None = None


SLOT_POLL_MS = 1000  # how often the queue looks at the library's run slots (runs of other processes)
CAPACITY_POLL_MS = 15_000  # how often a queue with runs asks the cluster what it holds (nodes come and go)


class RunQueue(QObject):
    """Waiting and active project runs, at most ``max_concurrent`` active at once (in the whole library
    when ``slots`` is given: runs from a terminal take their share)."""

    sig_changed = Signal()
    """The waiting list or the set of active runs changed."""
    sig_run_started = Signal(str, object)
    """(project folder, ProjectRun) — connect to the run's signals to follow it."""
    sig_run_finished = Signal(str, object)
    """(project folder, RunOutcome)."""
    sig_run_refused = Signal(str, str)
    """(project folder, reason) when a queued run cannot start (nothing to do, no photos...)."""
    sig_cluster = Signal(str, object)
    """(address, :class:`ClusterInfo` or the reason it cannot be used): the cluster's answer, from the thread
    that asked, delivered on the queue's thread."""

    def __init__(self, max_concurrent: int = SPEC_BY_KEY["max_concurrent_runs"].default, python: str | None = None,
                 parent: QObject | None = None, slots: RunSlots | None = None, executor: str | None = None):
        super().__init__(parent)
        self.max_concurrent = max(1, max_concurrent)
        self.python = python
        self.waiting: list[QueueEntry] = []
        self.active: dict[str, ProjectRun] = {}
        self.slots = slots
        self.elsewhere: list[SlotHolder] = []
        """Runs of the library that other processes hold (started from a terminal)."""
        self.waiting_for_slot = False
        """The next waiting run waits because runs of other processes hold every slot."""
        self._held: dict[str, RunSlot] = {}
        self._poll = QTimer(self)
        self._poll.setInterval(SLOT_POLL_MS)
        self._poll.timeout.connect(self._on_poll)
        if slots is not None:
            self._refresh_elsewhere()
            self._poll.start()
        self.address: str | None = None
        """The Ray cluster the runs' stages go to (the ``executor`` setting); None: this computer."""
        self.cluster: ClusterInfo | None = None
        """What the cluster said it holds, when it last answered (None: not yet, or it cannot be reached)."""
        self.cluster_note = ""
        """Why runs wait for the cluster (it has not answered, or cannot be reached)."""
        self.executor_error = ""
        """Why the executor setting names nothing runs can go to (they wait until it is fixed)."""
        self._asking = False
        self._ask_timer = QTimer(self)
        self._ask_timer.setInterval(CAPACITY_POLL_MS)
        self._ask_timer.timeout.connect(self._on_ask_timer)
        self.sig_cluster.connect(self._on_cluster_answer)
        self.set_executor(executor)

    # ------------------------------------------------------------------ queries
    def is_queued(self, folder: Path | str) -> bool:
        key = str(folder)
        return key in self.active or any(str(e.folder) == key for e in self.waiting)

    @property
    def limit(self) -> int:
        """How many runs may go on at once: ``max_concurrent``, and with a cluster no more than it holds."""
        if self.address is not None and self.cluster is not None:
            return max(1, min(self.max_concurrent, self.cluster.slots))
        return self.max_concurrent

    @property
    def waiting_note(self) -> str:
        """Why the waiting runs wait, when it is not only their turn ("" otherwise)."""
        if self.waiting and self.executor_error:
            return self.executor_error
        if self.waiting and self.address is not None and self.cluster is None:
            return self.cluster_note
        if self.waiting_for_slot:
            return "runs from a terminal hold every run slot"
        return ""

    def position(self, folder: Path | str) -> int | None:
        """0-based place in the waiting list, or None."""
        for index, entry in enumerate(self.waiting):
            if str(entry.folder) == str(folder):
                return index
        return None

    # ------------------------------------------------------------------ changes
    def set_max_concurrent(self, value: int) -> None:
        self.max_concurrent = max(1, value)
        self._start_more()

    def set_executor(self, executor: str | None) -> None:
        """Where the runs started from now on run their stages (the ``executor`` setting's value); a cluster
        is asked what it holds at once, and again every :data:`CAPACITY_POLL_MS` while runs wait or go on.
        A value that names nothing keeps the runs waiting, saying so (not run here by surprise)."""
        try:
            address, wrong = parse_executor(executor), ""
        except SettingsError as exc:
            address, wrong = None, str(exc)
        if address == self.address and wrong == self.executor_error:
            return
        self.address, self.cluster, self.executor_error = address, None, wrong
        self.cluster_note = f"asking the cluster at {address} what it holds" if address else ""
        if address is None:
            self._ask_timer.stop()
        else:
            self._ask_timer.start()
            self._ask()
        self._start_more()

    def enqueue(self, project: Project, from_stage: str | None = None, until: str | None = None) -> bool:
        """Queue a run of ``project``; False if it is already queued or running."""
        if self.is_queued(project.folder):
            return False
        self.waiting.append(QueueEntry(project.folder, project.name, from_stage, until))
        if self.address is not None and self.cluster is None:
            self._ask()  # it may have come up since it was last asked
        self.sig_changed.emit()
        self._start_more()
        return True

    def move(self, folder: Path | str, new_index: int) -> None:
        index = self.position(folder)
        if index is None:
            return
        entry = self.waiting.pop(index)
        self.waiting.insert(max(0, min(new_index, len(self.waiting))), entry)
        self.sig_changed.emit()

    def remove(self, folder: Path | str) -> None:
        """Take a waiting run off the queue (an active one is cancelled instead)."""
        key = str(folder)
        if key in self.active:
            self.active[key].cancel()
            return
        self.waiting = [e for e in self.waiting if str(e.folder) != key]
        self.sig_changed.emit()

    def cancel_all(self) -> None:
        self.waiting.clear()
        for run in list(self.active.values()):
            run.cancel()
        self.sig_changed.emit()

    # ------------------------------------------------------------------ scheduling
    def _start_more(self, changed: bool = True) -> None:
        """Start waiting runs while there is room; ``sig_changed`` unless nothing changed (``changed``: the
        caller changed something already)."""
        waiting_before, blocked, note_before = len(self.waiting), False, self.waiting_note
        limit = self.limit
        while self.waiting and len(self.active) < limit:
            if self.executor_error or (self.address is not None and self.cluster is None):
                break  # the cluster has not said what it holds (asked again), or the setting names none
            if self.slots is not None and len(self.active) + len(self.elsewhere) >= limit:
                blocked = True  # full as of the last poll: no planning (it reads every record) each second
                break
            entry = self.waiting[0]
            key = str(entry.folder)
            try:
                project = Project(entry.folder)
                plan = plan_run(project, entry.from_stage, entry.until)
                slot = None if plan.empty else self._take_slot(project)
            except Exception as exc:  # a vanished project, no photos, bad stage, run from a terminal: tell, go on
                self._refuse(str(exc))
                continue
            if plan.empty:
                self._refuse(f"nothing to do: {plan.reason}")
                continue
            if self.slots is not None and slot is None:
                blocked = True  # runs of other processes hold the slots: the poll timer tries again
                break
            self.waiting.pop(0)
            run = ProjectRun(project, plan, self.python, parent=self, executor=self.address)
            self.active[key] = run
            if slot is not None:
                self._held[key] = slot
                run.sig_stage_started.connect(slot.set_stage)
            # A bound method, not a lambda holding `self`: a run's connection must not keep its queue alive.
            # With a lambda, a queue that only the lambda still referenced was freed while the run's
            # deferred delete ran (releasing the lambda), and the queue deleted that run a second time from
            # inside its own destructor: the SIGSEGV in QObject::~QObject of NOTES.
            run.sig_finished.connect(self._on_run_finished)
            self.sig_run_started.emit(key, run)
            run.start()
        if (changed or len(self.waiting) != waiting_before or blocked != self.waiting_for_slot
                or self.waiting_note != note_before):
            self.waiting_for_slot = blocked
            self.sig_changed.emit()

    def _refuse(self, reason: str) -> None:
        """Take the first waiting run off the queue: it cannot start."""
        entry = self.waiting.pop(0)
        self.sig_run_refused.emit(str(entry.folder), reason)

    def _take_slot(self, project: Project) -> RunSlot | None:
        """A library run slot for ``project`` (None: none free now); :class:`ProjectAlreadyRunning` when a
        terminal runs it. Without ``slots`` the queue counts its own runs only and takes none."""
        if self.slots is None:
            return None
        return self.slots.try_take(self.limit, project.name, project.folder, WINDOW)

    def _on_run_finished(self, outcome: RunOutcome) -> None:
        sender = self.sender()
        key = next((k for k, run in self.active.items() if run is sender), None)
        if key is None:
            return
        run = self.active.pop(key)
        run.deleteLater()
        slot = self._held.pop(key, None)
        if slot is not None:
            slot.release()
        self.sig_run_finished.emit(key, outcome)
        self._refresh_elsewhere()
        self._start_more()

    def _on_poll(self) -> None:
        self._start_more(changed=self._refresh_elsewhere())

    def _refresh_elsewhere(self) -> bool:
        """Re-read the runs other processes hold; whether they changed."""
        if self.slots is None:
            return False
        own = {slot.index for slot in self._held.values()}
        try:
            others = [holder for holder in self.slots.holders() if holder.index not in own]
        except OSError:  # the library folder went away or cannot be read: nothing to show
            others = []
        if others == self.elsewhere:
            return False
        self.elsewhere = others
        return True

    # ------------------------------------------------------------------ the cluster
    def _ask(self) -> None:
        """Ask the cluster what it holds, in a thread (a Ray connection takes seconds; never the GUI's)."""
        if self._asking or self.address is None:
            return
        self._asking = True
        threading.Thread(target=self._ask_in_thread, args=(self.address,), name="cluster-capacity",
                         daemon=True).start()

    def _ask_in_thread(self, address: str) -> None:
        answer: ClusterInfo | str
        try:
            answer = probe_info(address)
        except ClusterError as exc:
            answer = str(exc)
        except Exception as exc:  # the answer must come back, whatever happened
            answer = f"{address}: {exc}"
        try:
            self.sig_cluster.emit(address, answer)
        except RuntimeError:  # the queue is gone (the window closed meanwhile)
            pass

    def _on_cluster_answer(self, address: str, answer: object) -> None:
        self._asking = False
        if address != self.address:  # the setting changed meanwhile: ask the new cluster
            self._ask()
            return
        if isinstance(answer, ClusterInfo):
            self.cluster, self.cluster_note = answer, ""
        else:
            self.cluster = None  # runs wait rather than fail one after another; asked again on the timer
            self.cluster_note = f"the cluster cannot be used ({answer}); asking again"
        self._start_more()

    def _on_ask_timer(self) -> None:
        if self.waiting or self.active:
            self._ask()
