"""Embedding an OpenGL widget without making Qt compose the whole window with OpenGL."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QVBoxLayout, QWidget


def native_child(widget: QWidget) -> QWidget:
    """`widget` (a QOpenGLWidget, e.g. the viewer's ``canvas.native``) inside a native child window;
    put the returned holder in a layout instead of `widget` itself.

    A QOpenGLWidget makes Qt compose its whole top-level window with OpenGL on every repaint of any
    widget in it (a log line, a progress bar). On a software renderer under load that cost 40-70 ms
    per repaint; inside a native child only that child is composed with OpenGL and the rest of the
    window flushes as plain raster (`benchmarks/gui_stall.py`: 95th percentile 13.8 ms against 37 ms,
    the same as with no 3D view at all).
    """
    holder = QWidget()
    layout = QVBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(widget)
    holder.setAttribute(Qt.WidgetAttribute.WA_NativeWindow, True)
    return holder
