"""What every ``splatstudio`` command shares: the exit codes, the usage error, the settings a command runs
with (the user's, a preset, ``--set``), the library it works on, and the stages' progress on a terminal.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from splatstudio.model import paths, programs
from splatstudio.model.humanize import format_duration, quality_words
from splatstudio.model.library import Library
from splatstudio.model.settings import (
    APP_KEYS,
    SPEC_BY_KEY,
    Settings,
    load_settings,
    parse_assignments,
    preset,
    read_dotenv,
    unknown_variables,
)
from splatstudio.model.stage_table import STAGE_TITLES, STAGES, spec

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments or settings: said, and the command exits with `EXIT_USAGE`."""


def settings_for(overrides: Sequence[str] = (), preset_name: str | None = None) -> Settings:
    """User settings (file, .env, environment), then the preset, then ``--set`` values."""
    dotenv = Path.cwd() / ".env"
    settings = load_settings(paths.user_settings_file(), dotenv)
    notes = unknown_variables(os.environ)
    if dotenv.is_file():
        found = read_dotenv(dotenv)
        notes += unknown_variables(found, str(dotenv))
        for key in APP_KEYS:  # application settings reach this command's stages through the environment
            name = SPEC_BY_KEY[key].env_var
            if name in found and name not in os.environ:
                os.environ[name] = found[name]
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if preset_name:
        settings = settings.updated(preset(preset_name).values, f"preset {preset_name}")
    return settings.updated(given(overrides), "--set")


def given(assignments: Sequence[str]) -> dict:
    """``--set`` values for a project; a program named there is the user's choice: made absolute and
    approved for the project's stages (model/programs.py). An application setting (log detail, live
    preview...) is no project's to keep: it applies to this command and its stages, through the
    environment they share, and the user hears how to keep it."""
    changes = programs.absolute(parse_assignments(assignments))
    for key in [key for key in changes if key in APP_KEYS]:
        value = changes.pop(key)
        os.environ[SPEC_BY_KEY[key].env_var] = str(value).lower() if isinstance(value, bool) else str(value)
        print(f"note: {key} is an application setting, not a project's: it applies to this command only "
              f"(`splatstudio settings --set {key}={value}` or Preferences keep it)", file=sys.stderr)
    programs.approve(changes)
    return changes


def library_of(args: argparse.Namespace) -> Library:
    return Library(Path(args.library) if args.library else paths.default_library_dir())


class ProgressPrinter:
    """Stage progress bars on a terminal; one line per stage event when output is a file or pipe."""

    def __init__(self, stream=None, verbose: bool = False):
        self.stream = stream or sys.stdout
        self.verbose = verbose
        self.tty = self.stream.isatty()
        self._last: dict[str, float] = {}
        self._started: dict[str, float] = {}
        self._line_open = False

    def __call__(self, stage: str, event: Any) -> None:
        from splatstudio.pipeline.events import LogLine, Progress, Result

        if isinstance(event, Progress):
            self._progress(stage, event)
        elif isinstance(event, Result):
            self._result(stage, event)
        elif isinstance(event, LogLine) and (self.verbose or event.level in ("warning", "error")):
            if event.level == "error" and event.text.startswith(("error: ", "Traceback ")):
                return  # the runner reports the failure itself (a traceback is in the stage's log)
            self._print(f"  {event.text}")

    def _print(self, text: str) -> None:
        if self._line_open:
            self.stream.write("\n")
            self._line_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def _progress(self, stage: str, event: Any) -> None:
        self._started.setdefault(stage, time.monotonic())
        title = STAGE_TITLES.get(stage, stage)
        if self.tty:
            width = 30
            filled = int(event.fraction * width)
            bar = "#" * filled + "-" * (width - filled)
            elapsed = format_duration(time.monotonic() - self._started[stage])
            self.stream.write(f"\r{title:<28} [{bar}] {event.fraction * 100:5.1f}% {elapsed:>6} {event.message[:40]:<40}")
            self.stream.flush()
            self._line_open = True
            return
        previous = self._last.get(stage, -1.0)
        if event.fraction - previous >= 0.1 or (event.fraction >= 1.0 > previous):
            self._last[stage] = event.fraction
            self._print(f"{title}: {event.fraction * 100:3.0f}% {event.message}")

    def _result(self, stage: str, event: Any) -> None:
        title = STAGE_TITLES.get(stage, stage)
        elapsed = format_duration(time.monotonic() - self._started.get(stage, time.monotonic()))
        figures = figure_text(stage, event.figures)
        mark = {"done": "done", "failed": "FAILED", "cancelled": "cancelled"}.get(event.status, event.status)
        self._print(f"{title}: {mark} in {elapsed}" + (f" — {figures}" if figures else ""))


def figure_text(stage: str, figures: dict[str, Any]) -> str:
    """A stage result's headline figures (the stage table's ``figures``), "quality" said from ``test_psnr``."""
    keys = spec(stage).figures if stage in STAGES else ()

    def show(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    if "quality" in keys and isinstance(figures.get("test_psnr"), (int, float)):
        figures = {**figures, "quality": quality_words(float(figures["test_psnr"]))[0]}

    return ", ".join(f"{k.replace('_', ' ')} {show(figures[k])}" for k in keys if figures.get(k) is not None)

