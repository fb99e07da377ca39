"""The render layer's numpy helpers import neither Qt nor vispy (the headless CLI and workers use them),
nor numba until a frame is composited."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
import splatstudio.render
import splatstudio.render.camera, splatstudio.render.sh, splatstudio.render.sorting, splatstudio.render.composite
import splatstudio.render.scene, splatstudio.render.frames, splatstudio.render.frame_policy
import splatstudio.render.picking, splatstudio.render.overlays
splatstudio.render.composite.available()
bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'vispy', 'OpenGL', 'numba'))
print(','.join(bad))
"""


def test_pure_render_helpers_do_not_import_qt_or_vispy():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"pure render helpers pulled in: {out}"


def _imports(path) -> set[str]:
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_render_layer_never_imports_qtwidgets_or_the_ui():
    from pathlib import Path

    import splatstudio.render as render

    for path in Path(render.__file__).parent.glob("*.py"):
        for name in _imports(path):
            assert "QtWidgets" not in name and not name.startswith("splatstudio.ui"), (path.name, name)
