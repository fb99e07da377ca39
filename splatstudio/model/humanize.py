"""Figures as people read them: sizes and durations for the library list (CLI and window alike), and the
rough figures of a training estimate."""

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


def format_about(seconds: float) -> str:
    """A duration as a rough figure in words: ``40`` -> ``"under a minute"``, ``931`` -> ``"about 16 min"``,
    ``7800`` -> ``"about 2 h 10 min"`` (to the nearest 10 min from 90 min on)."""
    if seconds < 45:
        return "under a minute"
    minutes = max(1, round(seconds / 60))
    if minutes < 90:
        return f"about {minutes} min"
    hours, rest = divmod(int(round(seconds / 600)) * 10, 60)
    return f"about {hours} h {rest} min" if rest else f"about {hours} h"


def format_memory_mb(megabytes: float) -> str:
    """``545`` -> ``"545 MB"``, ``1355`` -> ``"1.4 GB"`` (decimal units, as :func:`format_size`)."""
    return f"{megabytes:.0f} MB" if megabytes < 1000 else f"{megabytes / 1000:.1f} GB"


def format_sec_per_iter(seconds: float) -> str:
    """Seconds per training iteration with the digits that matter: ``0.231`` -> ``"0.23"``, ``0.0259`` ->
    ``"0.026"``, ``2.46`` -> ``"2.5"``."""
    if seconds >= 10:
        return f"{seconds:.0f}"
    if seconds >= 1:
        return f"{seconds:.1f}"
    return f"{seconds:.2f}" if seconds >= 0.1 else f"{seconds:.3f}"


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: control characters (escape codes) shown as ``\\x1b``-style
    escapes. For names that came from outside (a copied project folder) and are printed as they are."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def quality_words(psnr: float) -> tuple[str, str]:
    """A held-out PSNR (dB: how closely renders match photos the training never saw) in a person's words:
    (rating, what it means or what to try). The bands are those of real photo captures: a trained scene
    above 25 dB looks like the photos from new viewpoints too; below 20 it blurs or breaks away from them."""
    if psnr >= 25.0:
        return "good", "new viewpoints look like the photos"
    if psnr >= 20.0:
        return "fair", ("close to the photos, softer or with floaters away from them; more photos from more "
                        "angles, or a longer preset, sharpen it")
    return "poor for new viewpoints", ("renders away from the photos blur or break up; try more photos (each "
                                        "part seen from 3+ places), sharper photos, or a longer preset")
