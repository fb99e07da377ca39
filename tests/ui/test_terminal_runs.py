"""Findings file (../shared/findings/reliability-2026-12.md), defect 16, the window's side: the Queue panel
knew nothing of runs started from a terminal, and the window started its own runs whatever the terminals
ran. Now the window's queue takes one of the library's run slots for each run (model/run_slots.py), waits
while terminal runs hold them, and lists those runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from splatstudio.cli import main as cli
from splatstudio.model.project import DONE, Project
from splatstudio.model.run_slots import WINDOW, RunSlots

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 240_000

# A terminal run, frozen in its first stage: holds a slot as `splatstudio run` does, until it is killed.
TERMINAL_RUN = """
import sys, time
from splatstudio.model.run_slots import RunSlots
slot = RunSlots(sys.argv[1]).try_take(1, sys.argv[2], sys.argv[3])
slot.set_stage("features")
print("held", flush=True)
time.sleep(300)
"""


def test_the_window_waits_for_terminal_runs_and_lists_them(window, qtbot, make_project, library, capsys):
    window.apply_settings(window.settings.updated({"max_concurrent_runs": 1}))
    terminal, mine = make_project("Terminal"), make_project("Mine")
    holder = subprocess.Popen([sys.executable, "-c", TERMINAL_RUN, str(library.folder), "Terminal", terminal],
                              stdout=subprocess.PIPE, text=True)
    refused: list[str] = []
    window.queue.sig_run_refused.connect(lambda _folder, reason: refused.append(reason))
    try:
        assert holder.stdout.readline().strip() == "held"
        window.queue.enqueue(Project(terminal), until="features")  # the terminal runs it already
        assert refused and f"it is running from a terminal (process {holder.pid})" in refused[-1]
        window.queue.enqueue(Project(mine), until="features")
        panel = window.queue_panel
        assert not window.queue.active and window.queue.waiting_for_slot  # the terminal holds the one slot
        assert "runs from a terminal hold every run slot" in panel.waiting_title.text()
        qtbot.waitUntil(lambda: panel.active.count() == 1, timeout=5_000)  # the panel's next look at the slots
        text = panel.active.item(0).text()
        assert text.startswith("Terminal — Feature extraction") and f"from a terminal (process {holder.pid})" in text
        qtbot.wait(1_500)  # a poll or two later, still waiting
        assert not window.queue.active and [e.name for e in window.queue.waiting] == ["Mine"]
    finally:
        holder.kill()  # the terminal run ends (however it ends, its slot is free again)
        holder.wait(10)
    qtbot.waitUntil(lambda: mine in window.queue.active, timeout=10_000)
    assert not window.queue.waiting_for_slot and window.queue.elsewhere == []
    assert panel.active.count() == 1 and panel.active.item(0).text().startswith("Mine")
    assert [(h.project, h.origin) for h in RunSlots(library.folder).holders()] == [("Mine", WINDOW)]
    capsys.readouterr()
    assert cli(["run", "Mine"]) == 1  # a terminal cannot start what the window runs, even between stages
    assert "it is running in the SplatStudio window" in capsys.readouterr().err
    with qtbot.waitSignal(window.queue.sig_run_finished, timeout=RUN_TIMEOUT) as finished:
        pass
    assert finished.args[1].status == DONE
    assert RunSlots(library.folder).holders() == []  # given back when the run ended
