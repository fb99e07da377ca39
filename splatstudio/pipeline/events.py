"""The event vocabulary: what the trainer and the stage processes print, and the typed events parsed from it.

One stream, two producers, written down once here (Brush's message stream):

* **the trainer** (``gaussian-splatting/train.py --progress json``; its ``render.py`` too) prints one JSON
  object a line, ``{"event": KIND, ...fields}``: :data:`TRAINER_EVENTS` names each kind and the fields it
  always has. The trainer is a separate program that never imports the app, so its emitter
  (``gstrain/progress.py``, :data:`KINDS` there) is held to this table by ``tests/trainer/test_event_schema.py``,
  which runs it and parses what it prints. The training stage relays it (``pipeline/train.py``): totals
  (``iterations``) come from the trainer's ``start`` and ``progress`` events, never from the settings;
* **a stage process** prints one JSON object a line on stdout, :data:`STAGE_EVENTS` (a progress line has no
  ``event`` key), and human-readable logs on stderr.

:func:`parse_line` turns each line of either stream into one typed event, once, in pure code; the CLI's
progress bars and the window's panels consume the same events.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Union

TRAINER_EVENTS: dict[str, tuple[str, ...]] = {
    "plan": ("iterations", "strategy", "max_gaussians", "schedule"),  # --plan: what the run would do
    "estimate": ("iterations", "strategy", "max_gaussians", "expected_total_sec", "memory_mb"),  # --estimate
    "start": ("num_train", "num_test", "width", "height", "num_gaussians", "strategy", "first_iteration",
              "iterations"),  # the views trained on / held out, and the planned total
    "progress": ("iteration", "iterations", "loss", "psnr", "num_gaussians", "sec_per_iter", "eta_sec"),
    "eval": ("iteration", "psnr", "ssim", "num_views"),  # held-out views measured
    "preview": ("iteration", "path"),  # a model to show while training (a notification: the file is the data)
    "saved": ("iteration", "path"),  # a model saved (point_cloud/iteration_N)
    "checkpoint": ("iteration", "path"),  # a checkpoint to resume from
    "interrupted": ("iteration", "checkpoint", "signal"),  # stopped by a signal, after a checkpoint
    "done": ("iteration", "iterations", "num_gaussians", "path"),
    "view": ("index", "image_name", "psnr", "ssim"),  # render.py: one view measured
    "results": ("iteration", "split", "num_views", "psnr", "ssim", "path"),  # render.py: all views measured
}
"""The trainer's event kinds and the fields each always has (it may add more). An error is not an event:
the trainer says ``error: ...`` on stderr and exits non-zero."""

STAGE_EVENTS: dict[str, tuple[str, ...]] = {
    "progress": ("stage", "fraction", "message"),  # the default kind: a line without "event"; figures follow
    "eval": ("stage", "iteration", "psnr", "ssim"),  # relayed from the trainer
    "preview": ("stage", "iteration", "path"),  # relayed from the trainer
    "result": ("stage", "status", "figures", "message", "hint"),  # the stage's last word
}
"""What a stage process prints on stdout (``pipeline/context.py`` ``StageContext.progress``/``emit``)."""


@dataclass(frozen=True)
class Progress:
    """Stage progress: ``fraction`` in 0..1, a message, and any figures (loss, psnr, counts...)."""

    stage: str
    fraction: float
    message: str
    figures: dict[str, Any] = field(default_factory=dict)


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


Event = Union[Progress, Eval, Preview, Result, LogLine]

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
    fraction = _number(data.get("fraction"))
    if kind == "progress" and fraction is not None:
        figures = {k: v for k, v in data.items() if k not in ("stage", "event", "fraction", "message")}
        return Progress(stage, min(max(fraction, 0.0), 1.0), str(data.get("message", "")), figures)
    return None


def encode(stage: str, fraction: float, message: str, **figures: Any) -> str:
    """The JSON line a stage prints for progress (the inverse of :func:`parse_line`)."""
    return json.dumps({"stage": stage, "fraction": round(float(fraction), 4), "message": message, **figures},
                      default=str)
