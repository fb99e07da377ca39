"""Findings file (../shared/findings/reliability-2026-12.md), defect 16: the CLI had no run queue — six
`splatstudio run` processes ran six stages at once while `max_concurrent_runs` was 2. Now every run, from a
terminal or the window, holds one of the library's run slots (model/run_slots.py) for its whole plan, and a
run that finds them taken waits for one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from dataset_builders import render_photos, write_trainer_output

from splatstudio.cli import main as cli
from splatstudio.model.library import Library
from splatstudio.model.project import DONE
from splatstudio.model.run_slots import RunSlots

pytestmark = pytest.mark.slow

LIMIT = 2


@pytest.fixture(scope="module")
def trained_output(tmp_path_factory):
    """A reference-trainer output: opened as a project, only the filter and splat stages are left to run
    (the cheapest real stage chain)."""
    folder = tmp_path_factory.mktemp("trained")
    photos = render_photos(folder / "photos", count=4)
    return write_trainer_output(folder / "output", photos, None, iterations=(7000,), gaussians=2000)


def _stage_processes(clis: list[subprocess.Popen]) -> int:
    """Stage processes running now: the CLI's only children are its stages."""
    count = 0
    for process in clis:
        try:
            count += len(psutil.Process(process.pid).children())
        except psutil.NoSuchProcess:
            pass
    return count


def test_four_cli_runs_with_max_two_never_run_more_than_two_stages_at_once(trained_output, tmp_path, capsys):
    names = [f"Q{i}" for i in range(1, 5)]
    for name in names:
        assert cli(["open", str(trained_output), "--name", name]) == 0
    capsys.readouterr()
    env = dict(os.environ, PYTHONUNBUFFERED="1", SPLATSTUDIO_MAX_CONCURRENT_RUNS=str(LIMIT))
    logs = [tmp_path / f"{name}.out" for name in names]
    clis = []
    for name, log in zip(names, logs, strict=True):
        with log.open("w") as out:
            clis.append(subprocess.Popen([sys.executable, "-m", "splatstudio", "run", name], stdout=out,
                                         stderr=subprocess.STDOUT, text=True, env=env))
    slots = RunSlots(os.environ["SPLATSTUDIO_LIBRARY"])
    most, most_held, stages_said, deadline = 0, 0, set(), time.monotonic() + 120
    try:
        while any(p.poll() is None for p in clis) and time.monotonic() < deadline:
            most = max(most, _stage_processes(clis))
            holders = slots.holders()
            most_held = max(most_held, len(holders))
            stages_said.update(h.stage for h in holders)
            time.sleep(0.05)
    finally:
        for process in clis:
            if process.poll() is None:
                process.kill()
            process.wait(10)
    outputs = [log.read_text() for log in logs]
    assert most <= LIMIT, f"{most} stages ran at once with max_concurrent_runs={LIMIT}"
    assert most == LIMIT, "the queue let two runs go on at once"
    assert most_held == LIMIT and stages_said & {"filter", "splat"}  # the slots say who runs what
    assert [p.returncode for p in clis] == [0] * 4, outputs
    waited = [out for out in outputs if "waiting for a free run slot" in out]
    assert waited, outputs
    assert f"max_concurrent_runs is {LIMIT}" in waited[0]
    library = Library(os.environ["SPLATSTUDIO_LIBRARY"])
    for name in names:
        project = library.get(name)
        assert project.status() == (DONE, None)
        assert [run["status"] for run in project.runs()][-1] == DONE
    assert RunSlots(library.folder).holders() == []  # every slot given back


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_a_cancel_while_waiting_for_a_slot_starts_and_records_nothing(trained_output, how, capsys):
    assert cli(["open", str(trained_output), "--name", "Patient"]) == 0
    assert cli(["open", str(trained_output), "--name", "Blocker"]) == 0
    capsys.readouterr()
    library = Library(os.environ["SPLATSTUDIO_LIBRARY"])
    patient = library.get("Patient")
    runs_before = patient.runs()
    env = dict(os.environ, PYTHONUNBUFFERED="1", SPLATSTUDIO_MAX_CONCURRENT_RUNS="1")
    with RunSlots(library.folder).try_take(1, "Blocker", library.get("Blocker").folder):  # a run elsewhere
        process = subprocess.Popen([sys.executable, "-m", "splatstudio", "run", "Patient"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=env)
        try:
            line = process.stdout.readline()
            assert line.strip() == ("waiting for a free run slot: 1 project is running (Blocker); "
                                    "max_concurrent_runs is 1")
            process.send_signal(getattr(signal, how))
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 1
    assert err.strip() == "Patient: cancelled while waiting for a run slot; nothing was started"
    assert "running" not in out and "Traceback" not in err
    assert patient.runs() == runs_before  # no run recorded, failed or otherwise
    assert patient.stage_record("filter") is None


def test_one_command_runs_several_projects_as_many_at_once_as_allowed(trained_output, tmp_path, capsys):
    """`splatstudio run A B C` (issue 24): each project's run in a process of its own, its lines named, as
    many at once as max_concurrent_runs allows (with a cluster executor, also no more than the cluster holds:
    tests/cluster); each run holds one of the library's run slots like any other."""
    names = ["M1", "M2", "M3"]
    for name in names:
        assert cli(["open", str(trained_output), "--name", name]) == 0
    assert cli(["run", "M1", "Nowhere"]) == 1  # an unknown name stops everything before a start
    assert "no project named 'Nowhere'" in capsys.readouterr().err
    assert cli(["run", "M1", "M1"]) == 2
    assert "a project is named twice: M1" in capsys.readouterr().err
    library = Library(os.environ["SPLATSTUDIO_LIBRARY"])
    assert library.get("M1").stage_record("filter") is None
    env = dict(os.environ, PYTHONUNBUFFERED="1", SPLATSTUDIO_MAX_CONCURRENT_RUNS=str(LIMIT))
    log = tmp_path / "many.out"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "splatstudio", "run", *names], stdout=out,
                                   stderr=subprocess.STDOUT, text=True, env=env)
    slots = RunSlots(library.folder)
    most_held, deadline = 0, time.monotonic() + 120
    try:
        while process.poll() is None and time.monotonic() < deadline:
            most_held = max(most_held, len(slots.holders()))
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
    output = log.read_text()
    assert process.returncode == 0, output
    assert most_held == LIMIT, output
    assert f"running 3 projects, {LIMIT} at a time: M1, M2, M3" in output
    for name in names:
        assert f"[{name}] .splat conversion: done in" in output and f"\n{name}: done\n" in output
        assert library.get(name).status() == (DONE, None)
    assert output.index("[M3] ") > min(output.index("[M1] M1: done in"), output.index("[M2] M2: done in"))
