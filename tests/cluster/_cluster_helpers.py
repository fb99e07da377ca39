"""Helpers of the cluster tests: tiny settings and the CLI in a process of its own (a Ray connection belongs to
one process, and Ctrl+C must reach a real command)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

COUNT, WIDTH, HEIGHT = 16, 320, 240
# the e2e tests' tiny run (tests/e2e/test_pipeline.py); 400 iterations leave time to cancel mid-training. One SfM
# thread: COLMAP's mapper is repeatable only so (NOTES), and a run on the cluster must then place the cameras exactly
# where a run here does
TINY = {"min_image_size": 200, "max_features": 2048, "iterations": 400, "densify_from_iter": 50,
        "densify_until_iter": 300, "densification_interval": 50, "preview_every": 100, "train_resolution": 1,
        "colmap_threads": 1}
NO_RAY = "Ray is not installed: the cluster tests need the cluster extra (pip install 'splatstudio[cluster]')"


def tiny_sets() -> list[str]:
    return [item for key, value in TINY.items() for item in ("--set", f"{key}={value}")]


def cli_env(library: Path) -> dict[str, str]:
    env = dict(os.environ, SPLATSTUDIO_LIBRARY=str(library), PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)
    return env


def _default_signals() -> None:
    # a suite started in the background or under nohup hands its children SIGINT/SIGHUP ignored (NOTES, traps)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(library: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``splatstudio --library LIBRARY ARGS`` in a process of its own."""
    return subprocess.run([sys.executable, "-m", "splatstudio", "--library", str(library), *args], capture_output=True,
                          text=True, env=cli_env(library), timeout=timeout, preexec_fn=_default_signals)


def cli_process(library: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "splatstudio", "--library", str(library), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                            env=cli_env(library), preexec_fn=_default_signals)
