"""PlayCanvas's ``splat-transform`` (an npm package no one here wrote), installed once into ``.tools/`` for
the interop tests. Tests skip only where npm is missing or the npm registry cannot be reached; any other
failure to install is a test failure."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

SPLAT_TRANSFORM_VERSION = "3.7.0"
REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools"
SPLAT_TRANSFORM_GLB_VERSION = "3.10.2"  # the first here that writes .glb (KHR_gaussian_splatting); 3.7.0 cannot
GLTF_VALIDATOR_VERSION = "2.0.0-dev.3.10"  # Khronos's glTF-Validator, compiled to JavaScript
NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH",
                  "EHOSTUNREACH", "network", "socket hang up", "getaddrinfo")


def _answers(cli: Path, version: str) -> bool:
    if not cli.exists():
        return False
    done = subprocess.run([str(cli), "--version"], capture_output=True, text=True, timeout=120)
    return done.returncode == 0 and version in done.stdout + done.stderr


def install_npm_package(package: str, version: str, prefix: Path, works: Callable[[], bool]) -> None:
    """``npm install package@version`` into ``prefix`` unless ``works()`` already (under a lock: several test
    runs may start at once). Skips where npm is missing or the registry unreachable; fails otherwise."""
    TOOLS.mkdir(exist_ok=True)
    with open(TOOLS / f".{prefix.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if works():
            return
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip(f"npm is not installed: the interop tests run {package}, an npm package "
                        "(install Node.js 18 or later)")
        prefix.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--ignore-scripts",
             "--no-save", f"{package}@{version}"],
            capture_output=True, text=True, timeout=600, env={**os.environ, "npm_config_update_notifier": "false"},
        )
        output = done.stdout + done.stderr
        if done.returncode != 0:
            if any(code in output for code in NETWORK_ERRORS):
                pytest.skip(f"the npm registry is unreachable, so {package} {version} "
                            f"cannot be installed: {output.strip().splitlines()[-1] if output.strip() else ''}")
            pytest.fail(f"npm install {package}@{version} failed:\n{output}")
        if not works():
            pytest.fail(f"{package} {version} installed in {prefix} but does not answer:\n{output}")


def install_splat_transform(version: str = SPLAT_TRANSFORM_VERSION) -> Path:
    """The CLI of that version, installed with npm into ``.tools/splat-transform-VERSION`` unless it is there
    already."""
    cli = TOOLS / f"splat-transform-{version}" / "node_modules" / ".bin" / "splat-transform"
    install_npm_package("@playcanvas/splat-transform", version, cli.parents[2], lambda: _answers(cli, version))
    return cli


def _converter(cli: Path) -> Callable[..., str]:
    """``run(IN, OUT, *options)`` with that CLI."""

    def run(source: Path | str, target: Path | str, *options: str) -> str:
        done = subprocess.run([str(cli), "-w", "-g", "cpu", *options, str(source), str(target)],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.fail(f"splat-transform {source} {target} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout + done.stderr

    return run


@pytest.fixture(scope="session")
def splat_transform() -> Callable[..., str]:
    """``splat_transform(IN, OUT, *options)`` converts with the real CLI (overwriting, CPU only) and returns
    its output; a non-zero exit fails the test with that output."""
    return _converter(install_splat_transform())


@pytest.fixture(scope="session")
def splat_transform_glb() -> Callable[..., str]:
    """As `splat_transform`, with the release that writes ``.glb`` (``KHR_gaussian_splatting``)."""
    return _converter(install_splat_transform(SPLAT_TRANSFORM_GLB_VERSION))


VALIDATE = """
import { validateBytes } from %s;
import { readFileSync } from 'node:fs';
const report = await validateBytes(new Uint8Array(readFileSync(process.argv[2])), {maxIssues: 1000});
console.log(JSON.stringify(report));
"""


@pytest.fixture(scope="session")
def gltf_validator(tmp_path_factory) -> Callable[[Path], dict]:
    """``gltf_validator(FILE)``: Khronos's glTF-Validator's report on a .glb (its JSON, as a dict)."""
    prefix = TOOLS / f"gltf-validator-{GLTF_VALIDATOR_VERSION}"
    module = prefix / "node_modules" / "gltf-validator" / "module.mjs"
    script = tmp_path_factory.mktemp("validator") / "validate.mjs"
    script.write_text(VALIDATE % json.dumps(str(module)))
    node = shutil.which("node")

    def works() -> bool:
        return module.exists() and node is not None

    install_npm_package("gltf-validator", GLTF_VALIDATOR_VERSION, prefix, works)

    def validate(path: Path) -> dict:
        done = subprocess.run([node, str(script), str(path)], capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.fail(f"the glTF validator failed on {path} ({done.returncode}):\n{done.stdout}{done.stderr}")
        return json.loads(done.stdout)

    return validate
