"""Time left for a running stage, smoothed, with a range.

A stage says how long it has left — our trainer from its cost model (``eta_sec``), any stage from its
progress fraction — and that figure moves as the work changes (densification adds Gaussians, a matching block
takes longer). Each reading implies a finish time; :class:`FinishEstimate` shows the trimmed mean of the
finish times implied over the last :data:`WINDOW` seconds (three minutes: the trainer's figure swings with
densification over a minute or two), and their spread as the range, so the figure moves only when the
stage's pace really changes, and says how sure it is.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

from splatstudio.model.humanize import format_duration

WINDOW = 180.0
"""Seconds of readings one estimate is made from."""
MIN_READINGS = 3
NARROW = 0.1
"""A range narrower than this share of the time left (or half a minute) is shown as one figure."""


@dataclass
class FinishEstimate:
    """Readings of "seconds left" made at monotonic times; :meth:`left` is the smoothed estimate."""

    readings: deque = field(default_factory=deque)  # (time of the reading, finish time it implies)

    def add(self, now: float, seconds_left: float) -> None:
        if seconds_left != seconds_left or seconds_left < 0:  # NaN or nonsense: not a reading
            return
        self.readings.append((now, now + seconds_left))
        while len(self.readings) > MIN_READINGS and self.readings[0][0] < now - WINDOW:
            self.readings.popleft()  # (the newest few stay: a stage that reports rarely still has a figure)

    def clear(self) -> None:
        self.readings.clear()

    def left(self, now: float) -> tuple[float, float, float] | None:
        """``(estimate, low, high)`` in seconds from ``now``, or None before there are enough readings. The
        range spans the middle 80 % of the implied finish times."""
        finishes = sorted(finish for _at, finish in self.readings)
        if len(finishes) < MIN_READINGS:
            return None
        trim = len(finishes) // 10  # a mean without the extreme tenth on each side: smooth and robust
        middle = statistics.fmean(finishes[trim:len(finishes) - trim])
        low = finishes[int(0.1 * (len(finishes) - 1))]
        high = finishes[int(round(0.9 * (len(finishes) - 1)))]
        return max(0.0, middle - now), max(0.0, low - now), max(0.0, high - now)


def format_left(estimate: tuple[float, float, float] | None) -> str:
    """``(750, 600, 900)`` -> ``"12:30 (10:00–15:00)"``; a narrow range as the figure alone."""
    if estimate is None:
        return ""
    middle, low, high = estimate
    if high - low <= max(30.0, NARROW * middle):
        return format_duration(middle)
    return f"{format_duration(middle)} ({format_duration(low)}–{format_duration(high)})"
