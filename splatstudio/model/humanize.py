"""Figures as people read them: sizes and durations for the library list (CLI and window alike)."""

from __future__ import annotations


def format_size(size: int | None, empty: str = "-") -> str:
    """``1234567`` -> ``"1.2 MB"`` (decimal units, as file managers show them)."""
    if size is None:
        return empty
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return str(size)


def format_duration(seconds: float | None, empty: str = "-") -> str:
    """``75`` -> ``"1:15"``, ``3725`` -> ``"1:02:05"``."""
    if seconds is None:
        return empty
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
