"""What travels between this computer and a cluster worker for one remote stage, read from the stage table.

To the worker (:func:`input_paths`, :func:`pack`): the project's metadata, its stage records and run
history, the results of every earlier stage (``StageSpec.results``: the stage process checks their stamps
before it starts, so all travel, and later stages ship the most), what the stage itself reads
(``StageSpec.reads``: the photos for the SfM stages) and, when a stopped attempt goes on, what it left
(``StageSpec.resumes_from``: a training's checkpoints and curves). An uncompressed tar held in memory.

Back (:func:`snapshot`, :func:`changes` on the worker; :func:`install` here): every file the stage created
or changed and the paths it deleted; the stage's output folders (``StageSpec.outputs``) are installed whole
by rename, other files by ``os.replace``, the stage record last.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import uuid
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from splatstudio.model.atomic import sha256_of
from splatstudio.model.project import Project
from splatstudio.model.stage_table import STAGES, spec

DIGEST_FROM = 1 << 20  # files from this size are compared by content before they travel back
_METADATA = ("project.json", "import.json", "edits.json", "stages", "runs")
_SKIPPED_NAMES = (".lock",)


def input_paths(project: Project, stage: str, resume: bool) -> list[str]:
    """The project paths (relative, POSIX) a remote ``stage`` needs, those that exist; with ``resume``, what
    its stopped attempt left too (module docstring)."""
    wanted = list(_METADATA)
    for earlier in STAGES[:STAGES.index(stage)]:
        wanted += spec(earlier).results
    wanted += spec(stage).reads
    if resume:
        wanted += spec(stage).resumes_from
    seen: list[str] = []
    for rel in wanted:
        if rel not in seen and (project.folder / rel).exists():
            seen.append(rel)
    return seen


def pack(folder: Path, rels: Iterable[str]) -> bytes:
    """An uncompressed tar (photos are compressed already) of ``rels`` under ``folder``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in rels:
            tar.add(folder / rel, arcname=rel, filter=_skip_locks)
    return buffer.getvalue()


def _skip_locks(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Leave out the lock and a stage's half-written outputs (``dataset.part``, ``database.db.part-wal``)."""
    path = PurePosixPath(info.name)
    if path.name in _SKIPPED_NAMES:
        return None
    if path.parts[0] not in ("images", "dataset") and (path.name.endswith(".part") or ".part-" in path.name):
        return None
    return info


def unpack(data: bytes, folder: Path) -> None:
    """Extract a tar of project files; members that would land outside ``folder`` are refused."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(folder, filter="data")
        else:  # Python < 3.10.12: the same refusal by hand
            for member in tar.getmembers():
                _safe_rel(member.name)
                if not (member.isfile() or member.isdir()):
                    raise ValueError(f"{member.name}: not a file or folder")
            tar.extractall(folder)


def _safe_rel(rel: str) -> str:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"{rel!r} is not a path inside the project")
    return str(path)


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every file and folder under ``folder`` (relative path -> inode, size, modification time in ns; a
    folder's size is -1), to tell later what a stage created, changed and deleted."""
    found: dict[str, tuple[int, int, int]] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue
            rel = path.relative_to(folder).as_posix()
            found[rel] = (info.st_ino, -1 if name in dirs else info.st_size, info.st_mtime_ns)
    return found


def digests(folder: Path, stamps: dict[str, tuple[int, int, int]]) -> dict[str, str]:
    """Content hashes of the files above :data:`DIGEST_FROM` bytes (a database a stage opens but leaves as it
    was gets a new modification time: it need not travel back)."""
    found = {}
    for rel, (_ino, size, _mtime) in stamps.items():
        if size >= DIGEST_FROM:
            found[rel] = sha256_of(folder / rel)
    return found


def changes(folder: Path, before: dict[str, tuple[int, int, int]],
            contents: dict[str, str] | None = None) -> tuple[bytes, list[str]]:
    """A tar of every file created or changed under ``folder`` since ``before`` (and of new folders), and the
    paths deleted since, deepest first. A file whose ``contents`` hash is unchanged did not change."""
    after = snapshot(folder)
    contents = contents or {}

    def changed_file(rel: str, stamp: tuple[int, int, int]) -> bool:
        was = before.get(rel)
        if was == stamp:
            return False
        if was is not None and was[1] == stamp[1] and rel in contents:
            return sha256_of(folder / rel) != contents[rel]
        return True

    changed = [rel for rel, stamp in after.items()
               if _skip_locks(tarfile.TarInfo(rel)) is not None
               and (rel not in before if stamp[1] == -1 else changed_file(rel, stamp))]
    deleted = sorted((rel for rel in before if rel not in after), key=lambda rel: -rel.count("/"))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(changed):
            tar.add(folder / rel, arcname=rel, recursive=False)
    return buffer.getvalue(), deleted


def install(project: Project, stage: str, files: bytes, deleted: Iterable[str]) -> None:
    """Put what a remote stage created, changed and deleted into the local project: each of the stage's
    output folders whole by rename (the files it kept, hard-linked, and those it wrote), other files by
    ``os.replace``, the stage's record last, so the record never describes outputs that are not in place."""
    staging = project.folder / f".remote-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        unpack(files, staging)
        gone = {_safe_rel(rel) for rel in deleted}
        for rel in spec(stage).outputs:
            if (staging / rel).is_dir():
                _install_folder(project.folder, staging, rel, gone)
        for rel in sorted(gone, key=lambda r: -r.count("/")):
            _remove(project.folder / rel)
        record = f"stages/{stage}.json"
        moved = []
        for root, _dirs, names in os.walk(staging):
            for name in names:
                rel = (Path(root) / name).relative_to(staging).as_posix()
                if rel != record:
                    moved.append(rel)
        for rel in [*moved, record]:
            source = staging / rel
            if source.is_file():
                target = project.folder / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _install_folder(project_folder: Path, staging: Path, rel: str, gone: set[str]) -> None:
    local, new = project_folder / rel, staging / rel
    if local.is_dir():  # a resumed training: the files it did not touch are kept
        for root, _dirs, names in os.walk(local):
            for name in names:
                path = Path(root) / name
                inner = path.relative_to(project_folder).as_posix()
                target = staging / inner
                if inner in gone or target.exists():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(path, target)
                except OSError:
                    shutil.copy2(path, target)
    old = project_folder / f"{rel}.remote-old"
    _remove(old)
    if local.exists():
        local.rename(old)
    local.parent.mkdir(parents=True, exist_ok=True)
    new.rename(local)
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
