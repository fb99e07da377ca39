"""The desktop window (PySide6 widgets + pyqtgraph). The only layer that creates widgets.

Everything slow (photo checks, thumbnails, imports, exports, library refreshes) runs in
:mod:`splatstudio.ui.workers`; stage processes are driven through :mod:`splatstudio.services`.
"""
