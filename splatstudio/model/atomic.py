"""Crash-safe file writes: write to a temporary name in the same folder, fsync, then ``os.replace``.

A reader (or a crash at any moment, kill -9 included) sees either the old file or the new one, never a
half-written one.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from splatstudio.model.humanize import format_size


@contextmanager
def atomic_path(path: Path | str, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on error it is removed.

    ``suffix`` defaults to ``path``'s own suffix so that libraries choosing a format by extension work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=(path.suffix if suffix is None else suffix)
                                    + ".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are ordinary user files
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(path: Path | str, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; it replaces ``path`` only on success."""
    with atomic_path(path) as tmp, open(tmp, mode) as handle:
        yield handle


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def write_bytes_atomic(path: Path | str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path | str, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path | str, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path | str, default: Any = None) -> Any:
    """Read a JSON file; a missing file gives ``default`` (a corrupt one raises ``ValueError``)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


DISK_FULL_HINT = "free some disk space (or choose a library on a larger disk in Preferences), then run again"
_LOW_SPACE = 64 << 20  # free bytes under which a failure is taken for a full disk


def disk_full_message(folder: Path | str, exc: BaseException) -> str:
    """"the disk holding FOLDER is full (N free)" when ``exc`` (or what caused it) is ENOSPC or EDQUOT, or the
    disk is nearly full — native libraries and child processes report a full disk in their own words —
    else ""."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return ""
    causes = [exc, exc.__cause__, exc.__context__]
    if any(isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT) for e in causes) or free < _LOW_SPACE:
        return f"the disk holding {folder} is full ({format_size(free)} free)"
    return ""


def rewrite_json_in_place(path: Path | str, data: Any) -> bool:
    """On a full disk, where no temporary file can be made: rewrite an existing small JSON file in the blocks
    it already has. False when it does not fit them (or cannot be written). One write of a few hundred
    bytes; a crash during it could leave the file torn, which readers of such records treat as absent."""
    path = Path(path)
    text = json.dumps(data, default=str).encode("utf-8")
    try:
        if len(text) > path.stat().st_blocks * 512:
            return False
        with open(path, "r+b") as handle:
            handle.write(text)
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        return False
    return True


def sha256_of(path: Path | str) -> str:
    """The SHA-256 of a file's content (hex), read a megabyte at a time; ``OSError`` when it cannot be read."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
