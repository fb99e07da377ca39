"""How this program starts itself again, and where its resources are, in a source install and in the
one-folder bundle (PyInstaller), where the bundle's executable stands in for ``python``.

The app starts every pipeline stage, the trainer and thumbnails as subprocesses. From a source install
they are ``python -m splatstudio.stages ...`` and ``python gaussian-splatting/train.py ...``; in a bundle
``sys.executable`` is the bundle's own program, which is not a Python interpreter, so the commands put a
hidden first argument in front that the bundle's entry (:func:`splatstudio.bundle_main.dispatch`, called
before anything else is imported) turns back into the same call:

* ``splatstudio --run-stage STAGE --project DIR``  = ``python -m splatstudio.stages STAGE --project DIR``
* ``splatstudio --run-script SCRIPT ARGS...``       = ``python SCRIPT ARGS...`` (the trainer, ``render.py``)
* ``splatstudio -m splatstudio[.stages] ARGS...``   = the same, for code that spells it that way
  (thumbnails: ``-m splatstudio view ...``)
* anything else is the ``splatstudio`` command line.

It also finds ``resources/`` (the app icon) in a bundle or a source checkout. Pure standard library and
nothing of the app (the lowest floor: the model, the pipeline and the window all use it), no Qt: it runs
in every stage and trainer process of a bundle.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_ID = "io.splatstudio.SplatStudio"  # desktop file, icon and AppStream id
RUN_STAGE = "--run-stage"
RUN_SCRIPT = "--run-script"
STAGES_MODULE = "splatstudio.stages"


def is_frozen() -> bool:
    """True inside a PyInstaller bundle."""
    return bool(getattr(sys, "frozen", False))


def stage_command(python: str | None = None) -> list[str]:
    """The start of a stage process's command line; the stage name and options follow.

    An explicit ``python`` is always an interpreter (``-m splatstudio.stages``); otherwise it is this
    program: the running interpreter, or the bundle's executable with :data:`RUN_STAGE`.
    """
    if not python and is_frozen():
        return [sys.executable, RUN_STAGE]
    return [python or sys.executable, "-m", STAGES_MODULE]


def script_command(script: str | os.PathLike[str], python: str | None = None) -> list[str]:
    """``python SCRIPT`` (the trainer's ``train.py``): with no interpreter given, a bundle runs it itself."""
    if not python and is_frozen():
        return [sys.executable, RUN_SCRIPT, str(script)]
    return [python or sys.executable, str(script)]


def bundle_root() -> Path | None:
    """Where a bundle keeps its data files (``sys._MEIPASS``: ``_internal/`` beside the executable)."""
    root = getattr(sys, "_MEIPASS", None)
    return Path(root) if root else None


def resource_path(*parts: str) -> Path | None:
    """A file under ``resources/``: in the bundle, or in the source checkout; None when not installed."""
    candidates = [Path(__file__).resolve().parent.parent / "resources"]
    root = bundle_root()
    if root is not None:
        candidates.insert(0, root / "resources")
    for folder in candidates:
        path = folder.joinpath(*parts)
        if path.exists():
            return path
    return None


def icon_files() -> list[Path]:
    """The app icon's PNG sizes (``resources/icons/hicolor``), smallest first; empty when not installed."""
    folder = resource_path("icons", "hicolor")
    if folder is None:
        return []
    found = [(int(p.parent.parent.name.split("x")[0]), p) for p in folder.glob(f"*/apps/{APP_ID}.png")]
    return [path for _, path in sorted(found)]
