"""PlayCanvas's ``splat-transform`` (an npm package no one here wrote), installed once into ``.tools/`` for
the interop tests. Tests skip only where npm is missing or the npm registry cannot be reached; any other
failure to install is a test failure."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

SPLAT_TRANSFORM_VERSION = "3.7.0"
REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools"
PREFIX = TOOLS / f"splat-transform-{SPLAT_TRANSFORM_VERSION}"
CLI = PREFIX / "node_modules" / ".bin" / "splat-transform"
NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH",
                  "EHOSTUNREACH", "network", "socket hang up", "getaddrinfo")


def _works() -> bool:
    if not CLI.exists():
        return False
    done = subprocess.run([str(CLI), "--version"], capture_output=True, text=True, timeout=120)
    return done.returncode == 0 and SPLAT_TRANSFORM_VERSION in done.stdout + done.stderr


def install_splat_transform() -> Path:
    """The CLI, installed with npm into ``.tools/splat-transform-VERSION`` unless it is there already (under a
    lock: several test runs may start at once)."""
    TOOLS.mkdir(exist_ok=True)
    with open(TOOLS / ".splat-transform.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _works():
            return CLI
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: the interop tests run PlayCanvas's splat-transform, an npm package "
                        "(install Node.js 18 or later)")
        PREFIX.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [npm, "install", "--prefix", str(PREFIX), "--no-audit", "--no-fund", "--ignore-scripts",
             "--no-save", f"@playcanvas/splat-transform@{SPLAT_TRANSFORM_VERSION}"],
            capture_output=True, text=True, timeout=600, env={**os.environ, "npm_config_update_notifier": "false"},
        )
        output = done.stdout + done.stderr
        if done.returncode != 0:
            if any(code in output for code in NETWORK_ERRORS):
                pytest.skip(f"the npm registry is unreachable, so splat-transform {SPLAT_TRANSFORM_VERSION} "
                            f"cannot be installed: {output.strip().splitlines()[-1] if output.strip() else ''}")
            pytest.fail(f"npm install @playcanvas/splat-transform@{SPLAT_TRANSFORM_VERSION} failed:\n{output}")
        if not _works():
            pytest.fail(f"splat-transform installed in {PREFIX} but `splat-transform --version` does not answer "
                        f"{SPLAT_TRANSFORM_VERSION}:\n{output}")
        return CLI


@pytest.fixture(scope="session")
def splat_transform() -> Callable[..., str]:
    """``splat_transform(IN, OUT, *options)`` converts with the real CLI (overwriting, CPU only) and returns
    its output; a non-zero exit fails the test with that output."""
    cli = install_splat_transform()

    def run(source: Path | str, target: Path | str, *options: str) -> str:
        done = subprocess.run([str(cli), "-w", "-g", "cpu", *options, str(source), str(target)],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.fail(f"splat-transform {source} {target} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout + done.stderr

    return run
