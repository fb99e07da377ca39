"""Which programs a project may make SplatStudio run.

Three settings name a program to execute: ``colmap_path`` (the SfM stages), ``trainer_path`` and
``trainer_python`` (training). A project stores its settings in ``project.json``, and a folder that looks
like a project can come from anywhere (a download, a copied library), so a stage runs a program named there
only when the user named it: it is this computer's setting (the user settings file, which Preferences
writes, or a ``SPLATSTUDIO_*`` environment variable), or it was approved, which happens when the user gives
it with ``--set`` or saves it in Preferences. Approved programs are kept in the user's config folder
(``approved-programs.json``), outside every project. A ``.env`` file never sets one (settings.read_dotenv).

Pure: no Qt.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from splatstudio.model import paths
from splatstudio.model.atomic import read_json, write_json_atomic
from splatstudio.model.settings import PROGRAM_KEYS, Settings, SettingsError, write_user_file
from splatstudio.model.stage_table import spec

FILE_NAME = "approved-programs.json"


class ProgramNotApproved(SettingsError):
    """A project names a program the user has not named or approved; ``hint`` says how to allow it."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


def approved_file() -> Path:
    return paths.config_dir() / FILE_NAME


def canonical(value: str) -> str:
    """The program's absolute path (a bare command name is looked up on PATH, as the stage would run it)."""
    text = value.strip()
    if not paths.names_a_path(text):
        found = shutil.which(text)
        if found:
            text = found
    return os.path.realpath(os.path.abspath(os.path.expanduser(text)))


def absolute(changes: Mapping[str, Any]) -> dict[str, Any]:
    """``changes`` with each program path given relative to this folder made absolute (a stage runs in
    another folder than the command that named it)."""
    out = dict(changes)
    for key in PROGRAM_KEYS:
        value = out.get(key)
        if isinstance(value, str) and value.strip() and paths.names_a_path(value.strip()):
            out[key] = os.path.abspath(os.path.expanduser(value.strip()))
    return out


def approved(path: Path | None = None) -> set[str]:
    try:
        data = read_json(path or approved_file(), default=None)
    except (OSError, ValueError):  # unreadable or damaged: nothing counts as approved (the next approval rewrites it)
        data = None
    programs = data.get("programs") if isinstance(data, dict) else None
    return {p for p in programs if isinstance(p, str)} if isinstance(programs, list) else set()


def approve(values: Mapping[str, Any] | Iterable[tuple[str, Any]], path: Path | None = None) -> list[str]:
    """Record the non-empty program settings among ``values`` as approved; returns what was added."""
    items = values.items() if isinstance(values, Mapping) else values
    new = sorted({canonical(str(v)) for k, v in items if k in PROGRAM_KEYS and isinstance(v, str) and v.strip()})
    if not new:
        return []
    target = path or approved_file()
    known = approved(target)
    added = [p for p in new if p not in known]
    if added:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(target, {"format": 1, "programs": sorted(known | set(added))})
    return added


def save_user_settings(path: Path, settings: Settings) -> None:
    """Write the user settings file (Preferences, `splatstudio settings --set`); the programs it names are
    approved, so that projects made with them keep running after the user changes them."""
    write_user_file(path, settings)
    approve({key: settings.values[key] for key in PROGRAM_KEYS})


def check(settings: Settings, stage: str, trusted: Settings, path: Path | None = None) -> None:
    """Raise ProgramNotApproved when ``settings`` (a project's) would make ``stage`` run a program that is
    neither ``trusted``'s (this computer's settings) nor approved."""
    allowed: set[str] | None = None
    for key in PROGRAM_KEYS:
        value = settings.values.get(key) or ""
        if key not in spec(stage).programs or not value.strip():  # the stage table: which stages run it
            continue
        mine = trusted.values.get(key) or ""
        if mine.strip() and canonical(mine) == canonical(value):
            continue
        if allowed is None:
            allowed = approved(path)
        if canonical(value) in allowed:
            continue
        raise ProgramNotApproved(
            f"this project asks to run {value!r} ({key}), a program you have not set or approved on this "
            "computer, so it was not run",
            f"if you trust it, run `splatstudio run NAME --set {key}={value}` or set it in Preferences; "
            f"`--set {key}=` goes back to the built-in one")
