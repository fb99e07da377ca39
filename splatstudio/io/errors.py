"""Errors raised by the file readers and writers.

Every problem with the *content* of a file (bad header, truncated body, values
that are not finite, counts that do not fit the file size...) is reported as a
`FormatError`, which names the file so the message can be shown to the user as is.
So is a model too large for the memory left (`reports_out_of_memory`).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class FormatError(ValueError):
    """A file is not valid for the format it is read as.

    ``str(error)`` is ``"<file name>: <message>"``, e.g.
    ``"scene.ply: header claims 1000000000 vertices but the file holds 1024 bytes"``.
    """

    def __init__(self, path: str | os.PathLike[str], message: str) -> None:
        self.path = os.fspath(path)
        self.message = message
        super().__init__(f"{os.path.basename(self.path) or self.path}: {message}")


def load_json_text(path: str | os.PathLike[str], text: str) -> Any:
    """``json.loads`` for a file the user gave: bad syntax and pathological nesting are a FormatError naming
    the file, never a RecursionError traceback."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(path, f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise FormatError(path, "its JSON is nested too deeply to be a dataset file") from None


TOO_LARGE_TO_LOAD = "too large to load in the available memory"


def reports_out_of_memory(read: Callable[..., T]) -> Callable[..., T]:
    """Decorate a reader whose first argument is the file's path: a `MemoryError` anywhere inside it (numpy's
    allocations, zlib, Python objects) becomes a `FormatError` naming the file. Readers bound what a header
    may claim by the file's size, but a truthful large model can still exceed what this computer has left."""

    @functools.wraps(read)
    def guarded(path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> T:
        try:
            return read(path, *args, **kwargs)
        except MemoryError:
            pass
        # raised outside the handler, so that nothing keeps the MemoryError's frames (and the arrays they
        # hold) alive while the error travels up
        raise FormatError(path, TOO_LARGE_TO_LOAD)

    return guarded
