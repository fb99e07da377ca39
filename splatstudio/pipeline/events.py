"""Typed events parsed from the text lines that stage processes print.

A stage prints one JSON object per line on stdout (``{"stage", "fraction", "message", ...figures}``) and
human-readable logs on stderr. This module turns each line into one event, once, in pure code; the CLI's
progress bars and the GUI's panels consume the same stream.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Union


@dataclass(frozen=True)
class Progress:
    """Stage progress: ``fraction`` in 0..1, a message, and any figures (loss, psnr, counts...)."""

    stage: str
    fraction: float
    message: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    """A training measurement for the curves (loss, PSNR, Gaussians, seconds per iteration)."""

    stage: str
    iteration: int
    values: dict[str, float]


@dataclass(frozen=True)
class Eval:
    """Held-out quality at an iteration."""

    stage: str
    iteration: int
    psnr: float | None
    ssim: float | None


@dataclass(frozen=True)
class Preview:
    """A preview model the live viewer can load."""

    stage: str
    iteration: int
    path: str


@dataclass(frozen=True)
class Result:
    """The stage's final word: status (done / failed / cancelled), figures, and the reason on failure."""

    stage: str
    status: str
    figures: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    hint: str = ""


@dataclass(frozen=True)
class LogLine:
    """Any other line: plain log text, with a level guessed from its content."""

    text: str
    level: str = "info"


Event = Union[Progress, Metric, Eval, Preview, Result, LogLine]

_LEVEL_PATTERNS = (
    ("error", re.compile(r"^(error|fatal|traceback)\b|^E\d{8} |\bError\b:", re.IGNORECASE)),
    ("warning", re.compile(r"^(warning|warn)\b|^W\d{8} |\bWarning\b:", re.IGNORECASE)),
)


def log_level(text: str) -> str:
    for level, pattern in _LEVEL_PATTERNS:
        if pattern.search(text):
            return level
    return "info"


def parse_line(line: str) -> Event:
    """Parse one line of stage output (either stream) into an event. Never raises."""
    text = line.rstrip("\r\n")
    stripped = text.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            event = _from_json(data)
            if event is not None:
                return event
    return LogLine(text, log_level(text))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _from_json(data: dict[str, Any]) -> Event | None:
    stage = str(data.get("stage", ""))
    kind = data.get("event", "progress")
    if kind == "result":
        return Result(stage, str(data.get("status", "")), dict(data.get("figures") or {}),
                      str(data.get("message", "")), str(data.get("hint", "")))
    if kind == "eval":
        return Eval(stage, int(data.get("iteration", 0)), _number(data.get("psnr")), _number(data.get("ssim")))
    if kind == "preview" and "path" in data:
        return Preview(stage, int(data.get("iteration", 0)), str(data["path"]))
    if kind == "metric":
        values = {k: v for k, v in data.items() if k not in ("stage", "event", "iteration") and _number(v) is not None}
        return Metric(stage, int(data.get("iteration", 0)), values)
    fraction = _number(data.get("fraction"))
    if kind == "progress" and fraction is not None:
        figures = {k: v for k, v in data.items() if k not in ("stage", "event", "fraction", "message")}
        return Progress(stage, min(max(fraction, 0.0), 1.0), str(data.get("message", "")), figures)
    return None


def encode(stage: str, fraction: float, message: str, **figures: Any) -> str:
    """The JSON line a stage prints for progress (the inverse of :func:`parse_line`)."""
    return json.dumps({"stage": stage, "fraction": round(float(fraction), 4), "message": message, **figures},
                      default=str)
