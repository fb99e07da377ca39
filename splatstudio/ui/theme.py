"""Fusion style with a dark or light palette that follows the system colour scheme, and the colours
the panels use for stage states and log levels."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

STATE_COLORS = {
    "waiting": "#8a8f98",
    "queued": "#8a8f98",
    "running": "#3d8fd6",
    "done": "#3aa55d",
    "failed": "#d64541",
    "cancelled": "#d89a2b",
    "interrupted": "#d89a2b",
}
"""Colour of each stage state (stage list, library status)."""

LOG_COLORS_DARK = {"warning": "#e5b74f", "error": "#ff6b66"}
LOG_COLORS_LIGHT = {"warning": "#9a6700", "error": "#c62828"}


def palette_is_dark() -> bool:
    """Whether the palette in use is a dark one (text colours are chosen to contrast with it)."""
    return QGuiApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128


def log_colors() -> dict[str, str]:
    return LOG_COLORS_DARK if palette_is_dark() else LOG_COLORS_LIGHT


def dark_palette() -> QPalette:
    palette = QPalette()
    base, window, text = QColor(30, 31, 34), QColor(43, 45, 48), QColor(223, 225, 229)
    disabled = QColor(120, 122, 126)
    roles = {
        QPalette.ColorRole.Window: window,
        QPalette.ColorRole.WindowText: text,
        QPalette.ColorRole.Base: base,
        QPalette.ColorRole.AlternateBase: QColor(38, 40, 43),
        QPalette.ColorRole.ToolTipBase: window,
        QPalette.ColorRole.ToolTipText: text,
        QPalette.ColorRole.PlaceholderText: disabled,
        QPalette.ColorRole.Text: text,
        QPalette.ColorRole.Button: window,
        QPalette.ColorRole.ButtonText: text,
        QPalette.ColorRole.BrightText: QColor(255, 90, 90),
        QPalette.ColorRole.Link: QColor(90, 160, 230),
        QPalette.ColorRole.Highlight: QColor(53, 116, 199),
        QPalette.ColorRole.HighlightedText: QColor(255, 255, 255),
    }
    for role, color in roles.items():
        palette.setColor(role, color)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return palette


def apply_theme(app: QApplication) -> None:
    """Fusion style and the palette for the system's colour scheme; re-applied when the scheme changes."""
    app.setStyle("Fusion")
    hints = app.styleHints()
    apply_palette(app, hints.colorScheme())
    hints.colorSchemeChanged.connect(lambda scheme: apply_palette(app, scheme))


def apply_palette(app: QApplication, scheme: Qt.ColorScheme) -> None:
    """The dark palette for a dark scheme, Fusion's light one otherwise (also when the system says nothing)."""
    app.setPalette(dark_palette() if scheme == Qt.ColorScheme.Dark else app.style().standardPalette())
