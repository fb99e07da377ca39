"""Where SplatStudio keeps things: platform folders (platformdirs), overridable by environment variables."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "SplatStudio"
LIBRARY_ENV = "SPLATSTUDIO_LIBRARY"
CONFIG_ENV = "SPLATSTUDIO_CONFIG_DIR"


def names_a_path(text: str) -> bool:
    """Whether `text` is written as a path (has a separator or starts with ``~``) rather than a bare name
    (a project's name, a command on PATH)."""
    return os.sep in text or bool(os.altsep and os.altsep in text) or text.startswith("~")


def config_dir() -> Path:
    override = os.environ.get(CONFIG_ENV)
    return Path(override) if override else Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def user_settings_file() -> Path:
    return config_dir() / "settings.toml"


def default_library_dir() -> Path:
    """``$SPLATSTUDIO_LIBRARY`` if set, else the platform's data folder (``~/.local/share/SplatStudio``)."""
    override = os.environ.get(LIBRARY_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "library"


def log_dir() -> Path:
    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))
