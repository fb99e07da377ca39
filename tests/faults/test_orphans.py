"""Findings file (../shared/findings/reliability-2026-12.md), defects 1 and 2: a CLI killed mid-stage (kill -9,
a closed terminal's SIGHUP) left a stage that hung on its full stderr pipe holding the project lock, and a
broken stdout (`| head`) failed training and threw its checkpoint away. Now a stage whose reader is gone
stops as *interrupted*, keeps the trainer's checkpoint, releases the lock, and the next run resumes."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from splatstudio.cli import main as cli
from splatstudio.model.library import Library
from splatstudio.model.project import DONE, INTERRUPTED, Project
from splatstudio.model.sample import generate_sample

pytestmark = pytest.mark.slow

ITERATIONS = 2000
PERCENT = re.compile(r"training:\s+(\d+)%")  # the CLI's progress lines (one per 10 %, not at exact multiples)
TRAIN = ["--set", f"iterations={ITERATIONS}", "--set", "train_resolution=1", "--set", "preview_every=0",
         "--set", "sh_degree=0"]


@pytest.fixture(scope="module")
def posed(tmp_path_factory):
    """A project through the SfM stages once (the real CLI on a generated scene); tests copy it."""
    photos = generate_sample(tmp_path_factory.mktemp("photos") / "set", 12, 320, 240, seed=0).directory
    library = tmp_path_factory.mktemp("lib")
    os.environ["SPLATSTUDIO_LIBRARY"] = str(library)
    try:
        assert cli(["new", "Posed", str(photos), "--set", "max_features=4096", "--set", "min_image_size=200"]) == 0
        assert cli(["run", "Posed", "--until", "undistort"]) == 0
    finally:
        del os.environ["SPLATSTUDIO_LIBRARY"]
    return Library(library).get("Posed")


def _copy(project: Project, name: str) -> Project:
    target = Path(os.environ["SPLATSTUDIO_LIBRARY"]) / name
    shutil.copytree(project.folder, target, ignore=shutil.ignore_patterns(".lock"))
    copy = Project(target)
    copy.rename(name)
    return copy


def _wait(condition, seconds: float, what) -> None:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"still waiting after {seconds:.0f} s for {what() if callable(what) else what}")
        time.sleep(0.2)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGHUP", "head"])
def test_a_lost_cli_interrupts_training_and_the_next_run_resumes_it(posed, how):
    project = _copy(posed, f"Lost-{how}")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "splatstudio", "run", project.name, *TRAIN]
    if how == "head":  # the reader goes away after three lines; the CLI itself is not signalled
        cli_process = subprocess.Popen(["bash", "-c", " ".join(f"'{a}'" for a in command) + " | head -3"],
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                                       start_new_session=True)
    else:
        # SIGHUP as a closing terminal sends it, with its default action even when the tests run under
        # nohup (an ignored signal is inherited across exec)
        cli_process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                       env=env, start_new_session=True,
                                       preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(cli_process.stdout), daemon=True).start()
    try:
        if how == "head":  # the CLI fails on its fourth line (training at 20 %), and nothing else happens to it
            _wait(lambda: project.stage_record("train") is not None, 240, "training to start")
        else:
            _wait(lambda: any(int(m.group(1)) >= 10 for m in map(PERCENT.search, lines) if m), 240,
                  lambda: f"training at 10 % (the CLI printed {lines})")
            cli_process.send_signal(getattr(signal, how))
        _wait(lambda: not project.is_locked(), 60, "the stage to let go of the project lock")
    finally:
        if cli_process.poll() is None:
            os.killpg(cli_process.pid, signal.SIGKILL)
        cli_process.wait(10)
    train = project.stage_record("train")
    assert train.status == INTERRUPTED, (train.status, train.message)
    assert "went away" in train.message
    checkpoints = sorted(project.path("train").glob("chkpnt*.pth"))
    assert checkpoints, "the trainer's checkpoint was kept"
    stopped_at = int(checkpoints[-1].stem.removeprefix("chkpnt"))
    assert 0 < stopped_at < ITERATIONS
    log = project.log_path("train").read_text()
    assert "=== Gaussian Splatting training interrupted" in log  # the log has its end line

    assert cli(["run", project.name]) == 0
    assert f"resuming from {checkpoints[-1].name}" in project.log_path("train").read_text()
    train = project.stage_record("train")
    assert train.status == DONE and train.figures["iterations"] == ITERATIONS
