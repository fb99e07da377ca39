"""Which OpenGL renderer this machine draws with, asked once without a window (Qt only, no vispy).

The viewer composites still frames on the CPU when OpenGL is a software renderer (see
`viewer`). Loading the compositor's kernels (importing numba, reading its cache) holds the GIL
for about a second in chunks of 100-170 ms; done when the first live preview arrived, that stalled
the window mid-run. `warm_up_compositor_if_software` does it when the window opens instead.
"""

from __future__ import annotations

import functools

SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "software")
GL_RENDERER = 0x1F01


def is_software(renderer: str) -> bool:
    """Whether an OpenGL ``GL_RENDERER`` string names a software rasteriser."""
    renderer = renderer.lower()
    return any(name in renderer for name in SOFTWARE_RENDERERS)


@functools.cache
def renderer_name() -> str | None:
    """``GL_RENDERER`` of a context on an offscreen surface (~50 ms the first time, the driver
    loading), or None without a usable OpenGL. Needs a QGuiApplication."""
    from PySide6.QtGui import QOffscreenSurface, QOpenGLContext

    context = QOpenGLContext()
    if not context.create():
        return None
    surface = QOffscreenSurface()
    surface.setFormat(context.format())
    surface.create()
    try:
        if not context.makeCurrent(surface):
            return None
        name = context.functions().glGetString(GL_RENDERER)
        context.doneCurrent()
        return str(name) if name else None
    finally:
        surface.destroy()


def warm_up_compositor_if_software() -> bool:
    """On a software renderer, load the CPU compositor's kernels in a background thread now;
    True when that started (or they are ready)."""
    from splatstudio.render import composite

    name = renderer_name()
    if name is None or not is_software(name) or not composite.available():
        return False
    composite.warm_up_in_background()
    return True
