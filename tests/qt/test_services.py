"""Services: QProcess stage runs, project runs with cancel/resume, the run queue, the system sampler."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from splatstudio.model.project import CANCELLED, DONE, FAILED, INTERRUPTED
from splatstudio.pipeline.events import LogLine, Progress
from splatstudio.pipeline.plan import plan_run
from splatstudio.services.runs import ProjectRun, RunQueue
from splatstudio.services.stage_process import StageProcess, _LineDecoder
from splatstudio.services.system import SystemSampler

pytestmark = pytest.mark.slow


def test_line_decoder_splits_on_cr_and_lf_and_keeps_partial_utf8():
    decoder = _LineDecoder()
    data = "a\rb\nc\r\nd é".encode()
    assert decoder.feed(data[:-1]) == ["a", "b", "c"]  # 'é' cut in half, 'd ' pending
    assert decoder.feed(data[-1:] + b"\n") == ["d é"]
    assert decoder.feed(b"tail") == [] and decoder.flush() == ["tail"]


def test_stage_process_streams_progress_and_logs(qtbot, make_project):
    project = make_project("One")
    process = StageProcess("features", project.folder)
    progress: list[Progress] = []
    logs: list[LogLine] = []
    process.sig_progress.connect(progress.append)
    process.sig_log_lines.connect(logs.extend)
    with qtbot.waitSignal(process.sig_finished, timeout=120_000) as blocker:
        process.start()
    status, result, code = blocker.args
    assert (status, code) == (DONE, 0)
    assert result.figures["images"] == 16
    assert progress[0].fraction == 0.0 and progress[-1].fraction == 1.0
    assert any("Processed file" in line.text for line in logs)  # native COLMAP output reaches the log


def test_cancel_mid_stage_then_resume(qtbot, make_project):
    project = make_project("Cancel")
    run = ProjectRun(project, plan_run(project, until="matching"))
    run.sig_progress.connect(lambda stage, event: run.cancel() if stage == "matching" and event.fraction > 0
                             else None)
    with qtbot.waitSignal(run.sig_finished, timeout=120_000) as blocker:
        run.start()
    outcome = blocker.args[0]
    assert (outcome.status, outcome.stage) == (CANCELLED, "matching")
    assert project.stage_record("features").status == DONE
    assert project.stage_record("matching").status == CANCELLED

    plan = plan_run(project, until="matching")
    assert plan.stages == ("matching",)  # resume where it stopped
    again = ProjectRun(project, plan)
    with qtbot.waitSignal(again.sig_finished, timeout=120_000) as blocker:
        again.start()
    assert blocker.args[0].status == DONE


def test_stage_killed_from_outside_is_reported_failed(qtbot, make_project):
    project = make_project("Killed")
    run = ProjectRun(project, plan_run(project, until="features"))
    killed = []

    def kill_on_progress(stage, event):
        if event.fraction > 0 and not killed:
            killed.append(run.current.process.processId())
            os.kill(killed[0], signal.SIGKILL)

    run.sig_progress.connect(kill_on_progress)
    with qtbot.waitSignal(run.sig_finished, timeout=120_000) as blocker:
        run.start()
    outcome = blocker.args[0]
    assert (outcome.status, outcome.stage) == (FAILED, "features")
    assert "killed" in outcome.message
    assert project.status() == (INTERRUPTED, "features")


def test_queue_with_max_one_runs_projects_one_after_another(qtbot, make_project):
    first, second = make_project("First"), make_project("Second")
    queue = RunQueue(max_concurrent=1)
    events: list[tuple[str, str]] = []
    queue.sig_run_started.connect(lambda key, run: events.append(("start", key)))
    queue.sig_run_finished.connect(lambda key, outcome: events.append((outcome.status, key)))
    assert queue.enqueue(first, until="features")
    assert queue.enqueue(second, until="features")
    assert not queue.enqueue(second)  # already queued
    assert len(queue.active) == 1 and queue.position(second.folder) == 0
    qtbot.waitUntil(lambda: len(events) == 4, timeout=180_000)
    a, b = str(first.folder), str(second.folder)
    assert events == [("start", a), (DONE, a), ("start", b), (DONE, b)]


def test_a_run_holds_no_reference_to_its_queue(qtbot, make_project):
    """The intermittent SIGSEGV in QObject::~QObject (NOTES, Traps): a run's finished-connection was a lambda
    holding its queue. A queue nobody else referenced then lived on until the run's deferred delete released
    the lambda, was freed from inside that delete, and deleted the run a second time. Whether the delete
    was still pending when the test dropped its queue was a matter of timing; the reference is not."""
    queue = RunQueue(max_concurrent=1)
    baseline = sys.getrefcount(queue)
    assert queue.enqueue(make_project("Alone"), until="features")
    assert len(queue.active) == 1
    assert sys.getrefcount(queue) == baseline  # the running run's connections hold none
    queue.cancel_all()
    qtbot.waitUntil(lambda: not queue.active, timeout=60_000)


def test_queue_reorder_and_refusals(qtbot, make_project):
    projects = [make_project(name) for name in ("P1", "P2", "P3")]
    queue = RunQueue(max_concurrent=1)
    refused = []
    queue.sig_run_refused.connect(lambda key, reason: refused.append(reason))
    for project in projects:
        queue.enqueue(project, until="features")
    queue.move(projects[2].folder, 0)
    assert [e.name for e in queue.waiting] == ["P3", "P2"]
    queue.remove(projects[1].folder)
    assert [e.name for e in queue.waiting] == ["P3"]
    queue.cancel_all()
    qtbot.waitUntil(lambda: not queue.active, timeout=60_000)
    queue.enqueue(projects[0], from_stage="nonsense")
    assert refused and "unknown stage" in refused[-1]


def test_a_queue_whose_cluster_cannot_be_reached_holds_its_runs_and_says_why(qtbot, make_project, monkeypatch):
    """Issue 24: with the executor naming a Ray cluster the queue asks it what it holds (in a thread) before
    starting anything; one that cannot be reached, or a value that names nothing, keeps the runs waiting,
    with the reason, rather than fail them one after another (or run them here by surprise). Back to local,
    they start here."""
    import socket

    # Ray Client's own waits, shortened (30 s by default)
    monkeypatch.setenv("RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S", "1")
    monkeypatch.setenv("RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S", "2")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"ray://127.0.0.1:{probe.getsockname()[1]}"  # nothing listens there
    project = make_project("Patient")
    queue = RunQueue(max_concurrent=2, executor=address)
    finished = []
    queue.sig_run_finished.connect(lambda key, outcome: finished.append(outcome.status))
    assert queue.address == address and queue.cluster is None
    assert queue.enqueue(project, until="features")
    assert not queue.active and queue.waiting_note == f"asking the cluster at {address} what it holds"
    qtbot.waitUntil(lambda: "cannot be used" in queue.cluster_note, timeout=90_000)
    assert not queue.active and queue.waiting_note.startswith("the cluster cannot be used (")
    assert project.stage_record("features") is None

    queue.set_executor("cluster-please")  # a value that names nothing: still waiting, saying so
    assert not queue.active and "is not local, auto or ray://HOST:PORT" in queue.waiting_note
    queue.set_executor("local")
    assert len(queue.active) == 1 and queue.waiting_note == "" and queue.limit == 2
    assert "--executor" not in queue.active[str(project.folder)].current.argv
    qtbot.waitUntil(lambda: finished == [DONE], timeout=120_000)


def test_system_sampler_reports_cpu_and_explains_missing_gpu(qtbot):
    sampler = SystemSampler(interval=0.2)
    with qtbot.waitSignal(sampler.sig_sampled, timeout=5000) as blocker:
        sampler.start()
    sampler.stop()
    sample = blocker.args[0]
    assert 0 <= sample["cpu_percent"] <= 100 and sample["memory_total"] > 0
    assert len(sample["cpu_per_core"]) == sample["cpu_count"]
    if not sample["gpus"]:
        assert "GPU" in sample["gpu_message"]


def test_kill_children_stops_the_whole_tree_of_a_stage():
    """Issue 21: a stage killed after it did not stop left its own children (the trainer) running where no
    parent-death signal exists; the kill now takes the tree."""
    import subprocess
    import sys
    import time

    import psutil

    from splatstudio.services.stage_process import kill_children

    tree = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                             "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
                             "print('ready', flush=True); time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    assert tree.stdout.readline().strip() == "ready"
    [grandchild] = psutil.Process(tree.pid).children(recursive=True)
    kill_children(tree.pid)

    def gone() -> bool:  # killed: a zombie until its parent reaps it, or reaped
        try:
            return grandchild.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    deadline = time.monotonic() + 10
    while not gone():
        assert time.monotonic() < deadline, "the stage's child still runs"
        time.sleep(0.05)
    assert tree.poll() is None  # the stage itself is QProcess.kill's to stop
    tree.kill()
    tree.wait()
