"""The render layer: the OpenGL splat viewer and its pure numpy helpers.

* `splatstudio.render.sh`       — SH basis (degree 0..3) and view-dependent colours (pure);
* `splatstudio.render.sorting`  — 16-bit radix depth sort, back to front (pure);
* `splatstudio.render.camera`   — orbit / fly camera, matrices, training cameras (pure);
* `splatstudio.render.composite` — full frames composited on the CPU for software OpenGL (numba,
  optional; `_composite_kernels` holds the kernels);
* `splatstudio.render.scene`    — a splat cloud prepared for drawing, and its colours (pure);
* `splatstudio.render.frames`   — depth-sorted frames and the sort thread (pure);
* `splatstudio.render.frame_policy` — where a frame is drawn: OpenGL or the CPU compositor, now or in
  the sort thread (pure, `FramePolicy`);
* `splatstudio.render.picking`  — the splat under a pixel (pure);
* `splatstudio.render.overlays` — grid, axes, frustums and the edit tools' shapes as lines (pure);
* `splatstudio.render.selection` — which splats a selection tool takes (pure);
* `splatstudio.render.viewer`   — `SplatCanvas`, the vispy gloo canvas (Qt through vispy), with
  `painter` (its OpenGL programs and draw calls), `navigation` (camera, mouse and keys) and
  `edit_tools` (the edit mode's tools);
* `splatstudio.render.headless` — screenshots and the ``splatstudio view`` command.

Importing this package does not import Qt or vispy; only `viewer`, `painter`, `navigation` and `headless`
do. Nor numba:
only `composite` does, when a frame is composited.
Never imports ``splatstudio.ui`` or ``QtWidgets`` at module level.
"""

from __future__ import annotations

__all__ = ["camera", "sh", "sorting"]
