"""The one-folder bundle's ``main`` (``installers/splatstudio_bundle.py``): the bundle's executable is also
the interpreter of the app's subprocesses, which come back to it with a hidden first argument
(:mod:`splatstudio.launch` builds those command lines). :func:`dispatch` turns each back into the call it
stands for: a pipeline stage, a script (the trainer), or the ``splatstudio`` command line.

It imports the stage entry or the command line only once it knows which one is asked for, so a stage
process of the bundle never loads the command line, Qt or the window.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from splatstudio.launch import RUN_SCRIPT, RUN_STAGE, STAGES_MODULE


def _run_script(argv: list[str]) -> int:
    """``python SCRIPT ARGS``: ``__main__`` is the script, its folder first on ``sys.path``."""
    import runpy

    if not argv:
        print(f"usage: {Path(sys.executable).name} {RUN_SCRIPT} SCRIPT [ARGS...]", file=sys.stderr)
        return 2
    script = os.path.abspath(argv[0])
    sys.argv = [script, *argv[1:]]
    sys.path.insert(0, os.path.dirname(script))
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        return _exit_code(exc.code)
    return 0


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def dispatch(argv: Sequence[str] | None = None) -> int:
    """The bundle's ``main``: a hidden stage/script/module call, or the ``splatstudio`` command line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [RUN_STAGE] or args[:2] == ["-m", STAGES_MODULE]:
        from splatstudio.pipeline.entry import main as stage_main

        rest = args[1:] if args[0] == RUN_STAGE else args[2:]
        sys.argv = [STAGES_MODULE, *rest]
        return stage_main(rest)
    if args[:1] == [RUN_SCRIPT]:
        return _run_script(args[1:])
    if args[:2] == ["-m", "splatstudio"]:
        args = args[2:]
    from splatstudio.cli import main as cli_main

    return cli_main(args)
