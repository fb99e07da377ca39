"""Skips for optional pieces a user may not have installed, each saying what to install."""

from __future__ import annotations

import pytest


def need_numba():
    """numba comes with the `trainer` extra, which both `installers/setup.sh` modes install; a bare
    `pip install splatstudio` has no numba and its viewer uses the GL path only."""
    return pytest.importorskip(
        "numba", reason="numba is not installed: it comes with the trainer extra (pip install 'splatstudio[trainer]')")
