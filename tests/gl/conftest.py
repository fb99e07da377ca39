"""GL tier: a real OpenGL context (Qt xcb under Xvfb, Mesa llvmpipe), small scenes, pixel statistics.

Run with ``pytest tests/gl --xvfb-backend xvfb`` so that a missing Xvfb is an error.
``offscreen`` gives vispy no OpenGL context, hence ``xcb`` (set before Qt is imported).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ["QT_QPA_PLATFORM"] = "xcb"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the _reference helpers

from splatstudio.model.splatcloud import SplatCloud, logit, rgb_to_sh_dc  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gl: needs an OpenGL context (Xvfb + Mesa llvmpipe)")
    # vispy's Qt backend still calls QMouseEvent.pos(), deprecated in Qt 6
    config.addinivalue_line("filterwarnings", "ignore:Function.*QMouseEvent.pos.*:DeprecationWarning")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.gl)


@pytest.fixture
def make_canvas(qapp):
    """Factory for hidden `SplatCanvas` windows (never mapped on screen), closed after the test."""
    from PySide6 import QtCore

    from splatstudio.render.viewer import SplatCanvas

    made = []

    def factory(width: int = 160, height: int = 120, **kwargs) -> SplatCanvas:
        canvas = SplatCanvas(size=(width, height), **kwargs)
        canvas.native.setAttribute(QtCore.Qt.WidgetAttribute.WA_DontShowOnScreen, True)
        canvas.show()
        qapp.processEvents()
        made.append(canvas)
        return canvas

    yield factory
    for canvas in made:
        canvas.dispose()  # destroyed now, not in the next test's event loop
    qapp.processEvents()


def run_cli(command, args) -> tuple[int, str, str]:
    """Run a CLI entry point (a function taking the argument list and returning the exit code) in a fresh
    Python process: (exit code, stdout, stderr). In-process capture proved unreliable in the full CI run:
    with capsys, and later with contextlib.redirect_stdout/stderr, the streams came back empty while
    pytest's report showed the very line asserted (sys.stdout/sys.stderr were swapped back to pytest's
    capture in mid-test). A process of its own has its own streams, and it is how the command really runs."""
    code = f"import sys; from {command.__module__} import {command.__name__} as f; sys.exit(f(sys.argv[1:]))"
    p = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def small_cloud(n: int = 60, seed: int = 1, sh_degree: int = 3) -> SplatCloud:
    """Random anisotropic splats in the unit cube with moderate colours (SH stays in [0, 1])."""
    rng = np.random.default_rng(seed)
    k = {0: 0, 1: 3, 2: 8, 3: 15}[sh_degree]
    return SplatCloud(
        positions=rng.uniform(-1, 1, (n, 3)),
        scales=np.log(rng.uniform(0.05, 0.3, (n, 3))),
        rotations=rng.normal(size=(n, 4)),
        opacities=logit(rng.uniform(0.3, 0.95, n)),
        sh_dc=rgb_to_sh_dc(rng.uniform(0.15, 0.75, (n, 3))),
        sh_rest=rng.normal(0, 0.08, (n, k, 3)),
    )


def single_splats(positions, rgb, scale=0.3, opacity=0.99, sh_rest=None) -> SplatCloud:
    """Isotropic splats at `positions` with colours `rgb` (degree 0 unless `sh_rest` is given)."""
    positions = np.asarray(positions, dtype=np.float32).reshape(-1, 3)
    n = len(positions)
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float32), (n,))
    return SplatCloud(
        positions=positions,
        scales=np.log(np.repeat(scale[:, None], 3, axis=1)),
        rotations=np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)),
        opacities=logit(np.broadcast_to(opacity, (n,))),
        sh_dc=rgb_to_sh_dc(np.asarray(rgb, dtype=np.float32).reshape(n, 3)),
        sh_rest=sh_rest,
    )
