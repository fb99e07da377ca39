"""The real photo sets in ../shared/data (never copied into the repository)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def shared_data(name: str) -> Path:
    """A folder of ../shared/data, or skip the test saying what is missing."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"needs the shared photo set {path} (not present in this checkout)")
    return path
