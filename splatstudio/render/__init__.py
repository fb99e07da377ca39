"""The render layer: the OpenGL splat viewer and its pure numpy helpers.

* `splatstudio.render.sh`       — SH basis (degree 0..3) and view-dependent colours (pure);
* `splatstudio.render.sorting`  — 16-bit radix depth sort, back to front (pure);
* `splatstudio.render.camera`   — orbit / fly camera, matrices, training cameras (pure);
* `splatstudio.render.composite` — full frames composited on the CPU for software OpenGL (numba,
  optional; `_composite_kernels` holds the kernels);
* `splatstudio.render.viewer`   — `SplatCanvas`, the vispy gloo canvas (Qt through vispy);
* `splatstudio.render.headless` — screenshots and the ``splatstudio view`` command.

Importing this package does not import Qt or vispy; only `viewer` and `headless` do. Nor numba:
only `composite` does, when a frame is composited.
Never imports ``splatstudio.ui`` or ``QtWidgets`` at module level.
"""

from __future__ import annotations

__all__ = ["camera", "sh", "sorting"]
