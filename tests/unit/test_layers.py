"""The layer rule made executable. The floors run one way, with no import circles (import-linter's contracts
in pyproject.toml, run here on the tree and on a copy with deliberate violations, to show they bite); and the
pure packages (model, io, ingest, pipeline) import without Qt or vispy, so the headless CLI and most tests
run without a display."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PURE_MODULES = [
    "splatstudio.cli",
    "splatstudio.cli_files",
    "splatstudio.cli_common",
    "splatstudio.stages",
    "splatstudio.launch",
    "splatstudio.model.settings",
    "splatstudio.model.project",
    "splatstudio.model.library",
    "splatstudio.model.images",
    "splatstudio.model.video",
    "splatstudio.model.cleanup",
    "splatstudio.model.stage_table",
    "splatstudio.model.sample",
    "splatstudio.model.poses",
    "splatstudio.model.splatcloud",
    "splatstudio.io.nerfstudio",
    "splatstudio.io.ply",
    "splatstudio.io.splat",
    "splatstudio.io.colmap",
    "splatstudio.io.formats",
    "splatstudio.ingest.datasets",
    "splatstudio.pipeline.plan",
    "splatstudio.pipeline.events",
    "splatstudio.pipeline.context",
    "splatstudio.pipeline.entry",
    "splatstudio.pipeline.outcome",
    "splatstudio.pipeline.runner",
    "splatstudio.pipeline.remote",
    "splatstudio.pipeline.cluster",
    "splatstudio.pipeline.transfer",
    "splatstudio.pipeline.worker",
    "splatstudio.pipeline.sfm",
    "splatstudio.pipeline.train",
    "splatstudio.pipeline.post",
]

BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('PySide6', 'shiboken6', 'vispy', 'pyqtgraph', 'OpenGL'):
            raise ImportError(f'pure layer imported {name}')
        return None
sys.meta_path.insert(0, Block())
import importlib
for module in sys.argv[1:]:
    importlib.import_module(module)
print('ok')
"""


def test_pure_layers_import_without_qt_or_gl():
    result = subprocess.run([sys.executable, "-c", BLOCKER, *PURE_MODULES], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_services_use_qtcore_only():
    code = BLOCKER.replace("('PySide6', 'shiboken6', 'vispy', 'pyqtgraph', 'OpenGL')", "('vispy', 'pyqtgraph')")
    code = code.replace("if name.split('.')[0] in", "if name in ('PySide6.QtWidgets', 'PySide6.QtGui') or "
                                                     "name.split('.')[0] in")
    modules = ["splatstudio.services.stage_process", "splatstudio.services.runs", "splatstudio.services.system"]
    result = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


# ------------------------------------------------------------------------------------ import-linter

LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with the contracts of pyproject.toml, on the `splatstudio` package found in `cwd` (it puts
    the working directory first on sys.path, so a copy there is checked, not the installed package)."""
    return subprocess.run([sys.executable, "-c", LINT, "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_floors_run_one_way_without_circles():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " 0 broken" in result.stdout


def test_the_contracts_catch_deliberate_violations(tmp_path):
    """A floor importing one above it, a circle inside a floor, and Qt in the model, each in a copy of the
    package: lint-imports fails, names each broken contract and the import that broke it."""
    copy = tmp_path / "splatstudio"
    shutil.copytree(ROOT / "splatstudio", copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    with open(copy / "model" / "humanize.py", "a") as file:  # the model climbs to the window
        file.write("\nimport splatstudio.ui  # deliberate violation\n")
    with open(copy / "pipeline" / "plan.py", "a") as file:  # the runner imports the plan: now a circle
        file.write("\nfrom splatstudio.pipeline import runner  # deliberate violation\n")
    with open(copy / "model" / "eta.py", "a") as file:  # the pure model loads Qt
        file.write("\nimport PySide6.QtCore  # deliberate violation\n")
    result = lint_imports(tmp_path)
    out = " ".join(result.stdout.split())  # contract names may wrap
    assert result.returncode == 1, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Floors run one way: a floor imports only the floors below it BROKEN" in out
    assert "splatstudio.model.humanize -> splatstudio.ui" in out
    assert "No import circles, between floors or between the modules of one floor BROKEN" in out
    assert "No cycles are allowed in splatstudio.pipeline." in out  # it names an import whose removal breaks it
    assert "- .runner -> .plan (1 import)" in out or "- .plan -> .runner (1 import)" in out
    assert "The pure floors and the stage process never load Qt or the GL stack BROKEN" in out
    assert "splatstudio.model.eta -> PySide6" in out
