"""The library's run slots (model/run_slots.py): the one run queue the window and every CLI process honour."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from splatstudio.model.run_slots import (
    TERMINAL,
    WINDOW,
    ProjectAlreadyRunning,
    RunSlots,
    describe_wait,
)

HOLDER = """
import sys, time
from splatstudio.model.run_slots import RunSlots
slot = RunSlots(sys.argv[1]).try_take(int(sys.argv[2]), sys.argv[3], sys.argv[4])
print("held" if slot else "none", flush=True)
time.sleep(120)
"""


@pytest.fixture
def slots(tmp_path):
    return RunSlots(tmp_path / "lib")


def _project(tmp_path, name):
    folder = tmp_path / "lib" / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _hold_in_another_process(tmp_path, limit: int, name: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "lib"), str(limit), name,
                                str(_project(tmp_path, name))], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_take_up_to_the_limit_list_the_holders_and_release(slots, tmp_path):
    a = slots.try_take(2, "A", _project(tmp_path, "A"))
    b = slots.try_take(2, "B", _project(tmp_path, "B"), WINDOW)
    assert a is not None and b is not None and {a.index, b.index} == {0, 1}
    assert slots.try_take(2, "C", _project(tmp_path, "C")) is None
    holders = slots.holders()
    assert [(h.project, h.pid, h.origin) for h in holders] == [("A", os.getpid(), TERMINAL),
                                                                ("B", os.getpid(), WINDOW)]
    assert holders[0].folder == os.path.realpath(tmp_path / "lib" / "A") and holders[0].started <= time.time()
    assert slots.holder_of(tmp_path / "lib" / "B").project == "B"
    a.set_stage("filter")
    assert slots.holders()[0].stage == "filter"
    a.release()
    a.release()  # twice is harmless
    assert [h.project for h in slots.holders()] == ["B"]
    with slots.try_take(2, "C", _project(tmp_path, "C")) as c:
        assert c.index == 0  # the freed slot is taken again
        assert [h.project for h in slots.holders()] == ["C", "B"]
    b.release()
    assert slots.holders() == []


def test_a_project_runs_once_at_a_time(slots, tmp_path):
    folder = _project(tmp_path, "Once")
    with slots.try_take(3, "Once", folder):
        with pytest.raises(ProjectAlreadyRunning, match="'Once' is busy: it is running from a terminal"):
            slots.try_take(3, "Once", tmp_path / "lib" / "." / "Once")  # another spelling of the same folder


def test_a_killed_holder_leaves_no_stale_slot(slots, tmp_path):
    holder = _hold_in_another_process(tmp_path, 1, "Killed")
    try:
        assert [(h.project, h.pid) for h in slots.holders()] == [("Killed", holder.pid)]
        assert slots.try_take(1, "Next", _project(tmp_path, "Next")) is None
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    assert (slots.folder / "slot-0.lock").read_text()  # its record stays behind...
    assert slots.holders() == []  # ...but nobody holds the lock
    with slots.try_take(1, "Next", _project(tmp_path, "Next")) as slot:
        assert slot.index == 0 and [h.project for h in slots.holders()] == ["Next"]


def test_each_process_honours_its_own_limit(slots, tmp_path):
    holder = _hold_in_another_process(tmp_path, 2, "Other")  # a process whose limit is 2 runs one project
    try:
        assert slots.try_take(1, "Strict", _project(tmp_path, "Strict")) is None  # one run is my limit
        with slots.try_take(2, "Loose", _project(tmp_path, "Loose")) as loose:
            assert loose.index == 1
            assert slots.try_take(3, "Third", _project(tmp_path, "Third")) is not None
    finally:
        holder.kill()
        holder.wait(10)


def test_waiting_reports_the_holders_and_ends_when_a_slot_frees_or_on_cancel(slots, tmp_path):
    first = slots.try_take(1, "First", _project(tmp_path, "First"))
    seen = []
    threading.Timer(0.3, first.release).start()
    slot = slots.wait_take(1, "Second", _project(tmp_path, "Second"), threading.Event(), seen.append, poll=0.05)
    assert slot is not None and [h.project for h in slots.holders()] == ["Second"]
    assert seen and [h.project for h in seen[0]] == ["First"]
    assert describe_wait(seen[0], 1) == ("waiting for a free run slot: 1 project is running (First); "
                                         "max_concurrent_runs is 1")

    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert slots.wait_take(1, "Third", _project(tmp_path, "Third"), stop, poll=10) is None  # cancelled
    assert time.monotonic() - started < 5  # the cancel ends the wait, not the poll interval
    slot.release()
    assert slots.holders() == []


def test_a_damaged_record_still_counts_as_a_run(slots, tmp_path):
    with slots.try_take(1, "Real", _project(tmp_path, "Real")):
        (slots.folder / "slot-0.lock").write_text('{"project": "Real", "pid": "x"}')
        assert [h.project for h in slots.holders()] == ["?"]
        assert slots.try_take(1, "Other", _project(tmp_path, "Other")) is None
