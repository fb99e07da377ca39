"""The layer rule made executable: the pure packages (model, io, pipeline) import without Qt or vispy,
so the headless CLI and most tests run without a display."""

from __future__ import annotations

import subprocess
import sys

PURE_MODULES = [
    "splatstudio.cli",
    "splatstudio.stages",
    "splatstudio.model.settings",
    "splatstudio.model.project",
    "splatstudio.model.library",
    "splatstudio.model.images",
    "splatstudio.model.video",
    "splatstudio.model.cleanup",
    "splatstudio.model.filters",
    "splatstudio.model.sample",
    "splatstudio.model.poses",
    "splatstudio.model.splatcloud",
    "splatstudio.model.datasets",
    "splatstudio.io.nerfstudio",
    "splatstudio.io.ply",
    "splatstudio.io.splat",
    "splatstudio.io.colmap",
    "splatstudio.io.formats",
    "splatstudio.pipeline.plan",
    "splatstudio.pipeline.events",
    "splatstudio.pipeline.entry",
    "splatstudio.pipeline.runner",
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
