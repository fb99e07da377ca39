"""A tiny example stage for `test_stage_table.py`, never part of the product: one `StageSpec` and its run
function are all a new stage is. `register()` adds it after the last stage, in the test's process and (through
`python_with_example_stage`) in the stage processes the real runner starts."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from splatstudio.model.stage_table import StageSpec, register_stage

NAME = "measure"
SPEC = StageSpec(
    NAME, "Example measurement", f"{__name__}:run_measure", outputs=("output/measure.json",),
    results=("output/measure.json",), reads=("output/scene.splat",), figures=("measured_bytes",), seconds=2.0)


def run_measure(ctx: Any) -> dict[str, Any]:
    """Measures the previous stage's result and writes what it found (as any stage: progress, log, figures)."""
    source = ctx.project.path("output", "scene.splat")
    ctx.progress(0.5, "measuring")
    size = source.stat().st_size
    ctx.log(f"measured {source}: {size} bytes")
    (ctx.project.path("output", "measure.json")).write_text(json.dumps({"bytes": size}))
    return {"measured_bytes": size, "message": "measured"}


def register() -> None:
    register_stage(SPEC)


LAUNCHER = """import runpy, sys
sys.path.insert(0, {here!r})
import {module}
{module}.register()
assert sys.argv[1] == "-m", sys.argv  # [python, -m, splatstudio.stages, STAGE, --project, DIR, ...]
module, sys.argv = sys.argv[2], [sys.argv[2], *sys.argv[3:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def python_with_example_stage(folder: Path) -> str:
    """An interpreter for ``StageRunner(python=...)``: this Python, with the example stage registered before
    ``-m splatstudio.stages`` runs (the stage's module must be known to the stage process too)."""
    script = folder / "python-with-example-stage"
    here = str(Path(__file__).resolve().parent)
    script.write_text(f"#!{sys.executable}\n" + LAUNCHER.format(here=here, module=Path(__file__).stem))
    os.chmod(script, script.stat().st_mode | stat.S_IXUSR)
    return str(script)
