"""The project library: a folder of project folders plus a SQLite index (WAL) that mirrors them.

The folders are the truth. The index (``library.sqlite3``) holds what the old web service kept in its job
and error tables — projects, runs, per-stage runs with figures, and the error log — so the library page
can list, sort and search quickly. :meth:`Library.sync` refreshes one project from its folder and
:meth:`Library.rebuild` recreates the whole index from the folders (a deleted or corrupt index loses
nothing).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import time
import unicodedata
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from splatstudio.model import paths
from splatstudio.model.project import Project, ProjectError, slugify
from splatstudio.model.settings import Settings

INDEX_NAME = "library.sqlite3"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    folder TEXT NOT NULL UNIQUE,
    created TEXT,
    status TEXT,
    stage TEXT,
    image_count INTEGER,
    gaussian_count INTEGER,
    file_size INTEGER,
    processing_seconds REAL,
    error TEXT,
    error_stage TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS projects_name ON projects(name COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT NOT NULL,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    started TEXT,
    ended TEXT,
    status TEXT,
    stages TEXT,
    PRIMARY KEY (project_id, id)
);
CREATE TABLE IF NOT EXISTS stage_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    run_id TEXT,
    stage TEXT NOT NULL,
    status TEXT,
    started TEXT,
    ended TEXT,
    duration REAL,
    figures TEXT
);
CREATE TABLE IF NOT EXISTS errors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    run_id TEXT,
    stage TEXT,
    error_type TEXT,
    message TEXT,
    traceback TEXT,
    created TEXT
);
"""


class LibraryError(Exception):
    """A library operation could not be done; the message says why."""


def _is_storage_error(exc: sqlite3.DatabaseError) -> bool:
    """A full disk or an I/O error (the index may be fine), as opposed to a damaged index."""
    text = str(exc).lower()
    return "disk is full" in text or "disk i/o error" in text or "unable to open" in text


class IndexUnavailable(LibraryError):
    """The index cannot be read or written for now (a full disk, an I/O error); the index itself may be fine."""


MAX_NAME_LENGTH = 120


def check_name(name: str) -> str:
    """A project name as given, without surrounding spaces; `LibraryError` for one that cannot be shown or
    stored as it is (empty, too long, or with control characters such as terminal escape codes)."""
    name = name.strip()
    if not name:
        raise LibraryError("a project needs a name")
    if len(name) > MAX_NAME_LENGTH:
        raise LibraryError(f"a project name can have up to {MAX_NAME_LENGTH} characters; this one has {len(name)}")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        raise LibraryError(f"a project name cannot contain control characters (such as terminal escape codes): "
                           f"{name!r}")
    return name


class Library:
    """A library folder. Projects live in sub-folders; the index sits beside them."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder).expanduser()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.index_path = self.folder / INDEX_NAME
        self.notes: list[str] = []  # what indexing changed to keep ids and names unique (copied folders)
        self._open_index()

    # ------------------------------------------------------------------ index plumbing
    def _open_index(self) -> None:
        try:
            with self._db() as db:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version not in (0, SCHEMA_VERSION):
                    raise sqlite3.DatabaseError(f"unknown index version {version}")
                check = db.execute("PRAGMA quick_check").fetchone()[0]  # a damaged page, not only a bad header
                if check != "ok":
                    raise sqlite3.DatabaseError(f"damaged index: {check}")
                tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                                    "('projects', 'runs', 'stage_runs', 'errors')").fetchone()[0]
                if version == 0 or tables < 4:  # a new index; a whole one is only read (so it opens on a full disk)
                    db.executescript(_SCHEMA)
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except IndexUnavailable as exc:
            # The disk, not the index: moving it aside would not help. The folders are the truth, so what
            # needs no index still works (finding and running a project); what does says why.
            self.notes.append(str(exc))
        except sqlite3.DatabaseError as exc:
            # The index is only a cache of the folders: move a damaged one aside and rebuild it.
            broken = self.index_path.with_name(f"{INDEX_NAME}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(str(self.index_path) + suffix)
                if src.exists():
                    src.replace(Path(str(broken) + suffix))
            self.notes.append(f"the library index was damaged ({exc}); it was moved to {broken.name} and "
                              "rebuilt from the project folders")
            with self._db() as db:
                db.executescript(_SCHEMA)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.rebuild()

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(sqlite3.connect(self.index_path, timeout=30)) as db:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA foreign_keys = ON")
                db.row_factory = sqlite3.Row
                with db:  # one transaction
                    yield db
        except sqlite3.DatabaseError as exc:
            if not _is_storage_error(exc):
                raise
            raise IndexUnavailable(f"the library index {self.index_path} cannot be used: {exc} "
                                   "(free some disk space, or check the disk)") from None

    # ------------------------------------------------------------------ projects
    def project_folders(self) -> list[Path]:
        """Every project folder (not the hidden ones: a copy being made, ``duplicate``)."""
        return sorted(p.parent for p in self.folder.glob("*/project.json") if not p.parent.name.startswith("."))

    def create_project(self, name: str, settings: Settings) -> Project:
        name = check_name(name)
        with self._creation_lock():  # check and create as one step across processes: one name, one project
            if self.find(name) is not None:
                raise LibraryError(f"a project named {name!r} already exists in {self.folder}")
            base = slugify(name)
            folder = self.folder / base
            n = 2
            while folder.exists():
                folder = self.folder / f"{base}-{n}"
                n += 1
            project = Project.create(folder, name, settings)
            self.sync(project)
        return project

    def duplicate(self, project: Project | str | os.PathLike[str]) -> Project:
        """A copy of ``project`` (a `Project` or its folder; without its lock) in this library, under a new id and
        a free "… copy" name. The copy is made under a hidden name and renamed into place, so the library never
        holds half of one. The window runs it in a worker."""
        if not isinstance(project, Project):
            project = Project(project)
        base = f"{project.name} copy"
        with self._creation_lock():
            name, n = base, 2
            while self.find(name) is not None:
                name, n = f"{base} {n}", n + 1
            folder = self.folder / slugify(name)
            while folder.exists():
                folder = folder.with_name(f"{slugify(name)}-{n}")
                n += 1
            partial = self.folder / f".{folder.name}.copying"
            shutil.rmtree(partial, ignore_errors=True)
            try:
                shutil.copytree(project.folder, partial, ignore=shutil.ignore_patterns(".lock"))
                copy = Project(partial)
                copy.new_id()
                copy.rename(name)
                partial.rename(folder)
            except BaseException:
                shutil.rmtree(partial, ignore_errors=True)
                raise
            copy = Project(folder)
            self.sync(copy)
        return copy

    @contextmanager
    def _creation_lock(self) -> Iterator[None]:
        fd = os.open(self.folder / ".create.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def find(self, name_or_folder: str) -> Project | None:
        """A project of this library by name (case-insensitive), id or folder name, else a project folder given
        as a path (the text names a path: it has a separator or starts with ``~``; a bare word never means a
        folder in the current directory); ``None`` if there is none."""
        wanted = name_or_folder.strip()
        if not wanted:
            return None
        for folder in self.project_folders():
            try:
                project = Project(folder)
            except ProjectError:
                continue
            if wanted.lower() in (project.name.lower(), project.id, folder.name.lower()):
                return project
        if paths.names_a_path(wanted):
            candidate = Path(wanted).expanduser()
            if (candidate / "project.json").is_file():
                try:
                    return Project(candidate)
                except ProjectError:
                    return None
        return None

    def contains(self, project: Project) -> bool:
        """Whether the project's folder is one of this library's."""
        try:
            return project.folder.resolve().parent == self.folder.resolve()
        except OSError:
            return False

    def get(self, name_or_folder: str) -> Project:
        project = self.find(name_or_folder)
        if project is None:
            names = ", ".join(repr(p["name"]) for p in self.list_projects()) or "none yet"
            raise LibraryError(f"no project named {name_or_folder!r} in {self.folder} (projects: {names})")
        return project

    def rename(self, project: Project, new_name: str) -> None:
        new_name = check_name(new_name)
        other = self.find(new_name)
        if other is not None and other.folder != project.folder:
            raise LibraryError(f"a project named {new_name!r} already exists")
        project.rename(new_name)
        self.sync(project)

    def delete(self, project: Project) -> None:
        if not self.contains(project):
            raise LibraryError(f"{project.folder} is not a project of the library {self.folder}; "
                               "only the library's projects are deleted (remove other folders yourself)")
        if project.is_locked():
            raise LibraryError(f"project {project.name!r} is running; stop it before deleting")
        with self._db() as db:
            db.execute("DELETE FROM projects WHERE id = ?", (project.id,))
        shutil.rmtree(project.folder)

    # ------------------------------------------------------------------ index maintenance
    def sync(self, project: Project) -> dict[str, Any]:
        """Mirror one project's folder into the index; returns its summary."""
        with self._db() as db:
            return self._claim(db, project)

    def _claim(self, db: sqlite3.Connection, project: Project) -> dict[str, Any]:
        """Index `project`. A folder copied from this or another library can bring an id or a name another
        folder already holds: the newcomer gets a new id, or a name with a number, and `notes` says so."""
        folder = str(project.folder)
        if db.execute("SELECT 1 FROM projects WHERE id = ? AND folder != ?", (project.id, folder)).fetchone():
            project.new_id()
        taken = {r[0].lower() for r in db.execute("SELECT name FROM projects WHERE folder != ?", (folder,))}
        if project.name.lower() in taken:
            old, n = project.name, 2
            while f"{old} ({n})".lower() in taken:
                n += 1
            project.rename(f"{old} ({n})")
            self.notes.append(f"{project.folder}: another project is named {old!r}; this one is now "
                              f"{project.name!r}")
        summary = project.summary()
        _write_project(db, project, summary, project.runs())
        return summary

    def rebuild(self) -> int:
        """Recreate the index from the project folders; returns the number of projects indexed."""
        count = 0
        with self._db() as db:
            db.execute("DELETE FROM errors")
            db.execute("DELETE FROM stage_runs")
            db.execute("DELETE FROM runs")
            db.execute("DELETE FROM projects")
            projects = []
            for folder in self.project_folders():
                try:
                    projects.append(Project(folder))
                except ProjectError:
                    continue
            for project in sorted(projects, key=lambda p: (p.created, p.folder.name)):  # the older keeps its name
                self._claim(db, project)
                count += 1
        return count

    def refresh(self) -> list[dict[str, Any]]:
        """Sync every project folder (adding new ones, dropping vanished ones) and list them."""
        folders = {str(f) for f in self.project_folders()}
        with self._db() as db:
            for row in db.execute("SELECT id, folder FROM projects").fetchall():
                if row["folder"] not in folders:
                    db.execute("DELETE FROM projects WHERE id = ?", (row["id"],))
        for folder in sorted(folders):
            try:
                self.sync(Project(folder))
            except ProjectError:
                continue
        return self.list_projects()

    # ------------------------------------------------------------------ queries
    def list_projects(self, order_by: str = "created") -> list[dict[str, Any]]:
        columns = {"created", "name", "status", "image_count", "gaussian_count", "file_size",
                   "processing_seconds"}
        if order_by not in columns:
            raise LibraryError(f"cannot sort by {order_by!r}; choose one of {', '.join(sorted(columns))}")
        with self._db() as db:
            rows = db.execute(f"SELECT * FROM projects ORDER BY {order_by}, name").fetchall()
        return [dict(row) for row in rows]

    def stage_runs(self, project: Project) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM stage_runs WHERE project_id = ? ORDER BY id", (project.id,)).fetchall()
        result = []
        for row in rows:
            item = dict(row)
            item["figures"] = json.loads(item["figures"] or "{}")
            result.append(item)
        return result

    def errors(self, project: Project | None = None) -> list[dict[str, Any]]:
        with self._db() as db:
            if project is None:
                rows = db.execute("SELECT * FROM errors ORDER BY id").fetchall()
            else:
                rows = db.execute("SELECT * FROM errors WHERE project_id = ? ORDER BY id", (project.id,)).fetchall()
        return [dict(row) for row in rows]


def _write_project(db: sqlite3.Connection, project: Project, summary: dict[str, Any],
                   runs: list[dict[str, Any]]) -> None:
    db.execute("DELETE FROM projects WHERE id = ? OR folder = ?", (project.id, str(project.folder)))
    db.execute(
        "INSERT INTO projects (id, name, folder, created, status, stage, image_count, gaussian_count, file_size,"
        " processing_seconds, error, error_stage) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (summary["id"], summary["name"], summary["folder"], summary["created"], summary["status"],
         summary["stage"], summary["image_count"], summary["gaussian_count"], summary["file_size"],
         summary["processing_seconds"], summary["error"], summary["error_stage"]),
    )
    for run in runs:
        db.execute("INSERT INTO runs (id, project_id, started, ended, status, stages) VALUES (?,?,?,?,?,?)",
                   (run["id"], project.id, run.get("started"), run.get("ended"), run.get("status"),
                    json.dumps(run.get("stages", []))))
        for attempt in run.get("attempts", []):
            db.execute(
                "INSERT INTO stage_runs (project_id, run_id, stage, status, started, ended, duration, figures)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (project.id, run["id"], attempt.get("stage"), attempt.get("status"), attempt.get("started"),
                 attempt.get("ended"), attempt.get("duration"), json.dumps(attempt.get("figures") or {})),
            )
            error = attempt.get("error")
            if error:
                db.execute(
                    "INSERT INTO errors (project_id, run_id, stage, error_type, message, traceback, created)"
                    " VALUES (?,?,?,?,?,?,?)",
                    (project.id, run["id"], attempt.get("stage"), error.get("type"), error.get("message"),
                     error.get("traceback"), attempt.get("ended")),
                )
