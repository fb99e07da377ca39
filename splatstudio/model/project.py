"""A project folder: the truth about one reconstruction.

Layout (everything the app knows about a project can be rebuilt from these files)::

    project.json            name, id, created, the settings the project runs with, photo sources
    import.json             accepted photos (source, size, hash) and rejected files with reasons
    images/                 imported photos (EXIF orientation applied, 8-bit RGB, resized)
    sfm/                    database.db, sparse/N models, report.json (structure from motion)
    dataset/                undistorted images/ + sparse/0 (PINHOLE): the trainer's source
    train/                  the trainer's model folder (reference layout)
    output/                 sparse_points.ply, point_cloud.ply (filtered), scene.splat, thumbnail.png
    previous/               the last finished result while a re-run recomputes it (kept.json says whence)
    edits.json              the user's edits of the result (the clean-up's strength, the hand edit list with its
                            deletions and orientation/scale: model/edits.py), applied on export
    logs/<stage>.log        each stage's log; logs/train-curves.jsonl the training curves' points
    stages/<stage>.json     the latest attempt of each stage: status, pid, times, figures, error
    runs/<run-id>.json      history: every run and every stage attempt in it

Stage records are written atomically by the stage process itself, which also holds an exclusive lock
(``stages/.lock``) while it works. A record that says "running" while nobody holds the lock belongs to
a process that died (kill -9, power cut): the stage is *interrupted* and a run resumes from it.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from splatstudio.model.atomic import read_json, rewrite_json_in_place, write_json_atomic
from splatstudio.model.settings import APP_KEYS, Settings, SettingsError, load_settings
from splatstudio.model.stage_table import (  # the stage table's views, here for the many that read them with the project
    STAGE_OUTPUTS,
    STAGE_RESULTS,
    STAGE_TITLES,
    STAGES,
    result_stage,
    shared_results,
    spec,
)

FORMAT_VERSION = 1

DONE, RUNNING, FAILED, CANCELLED, INTERRUPTED = "done", "running", "failed", "cancelled", "interrupted"

# Files other layers look for (relative to the project folder).
RESULT_PLY = "output/point_cloud.ply"  # the outlier-filtered result
THUMBNAIL = "output/thumbnail.png"  # a render of the result (library card)
TRAIN_CAMERAS = "train/cameras.json"  # the trainer's cameras (reference layout, test cameras first)
TRAIN_CURVES = "logs/train-curves.jsonl"  # the training curves' points (pipeline.train.CurveHistory)
EDITS = "edits.json"  # the user's edits of the result (the clean-up's strength), applied when it is exported
KEPT_RESULT = "previous"  # the last finished result, kept while a re-run recomputes it (Project.keep_result)
_KEPT_FILES = {RESULT_PLY: "point_cloud.ply", "output/scene.splat": "scene.splat", THUMBNAIL: "thumbnail.png",
               TRAIN_CAMERAS: "cameras.json"}


def trained_iterations(folder: Path) -> list[tuple[int, Path]]:
    """``(N, point_cloud.ply)`` of every ``point_cloud/iteration_N`` in a trainer output, ascending."""
    found = []
    for item in (folder / "point_cloud").glob("iteration_*"):
        suffix = item.name.split("_", 1)[1]
        if suffix.isdigit() and (item / "point_cloud.ply").is_file():
            found.append((int(suffix), item / "point_cloud.ply"))
    return sorted(found)


def trained_ply(train_dir: Path) -> Path:
    """The PLY of the highest saved iteration in a reference-layout model folder; :class:`ProjectError` when
    there is none."""
    candidates = trained_iterations(train_dir)
    if not candidates:
        raise ProjectError(f"the training stage left no point_cloud/iteration_N/point_cloud.ply in {train_dir}")
    return candidates[-1][1]


def result_ply(project_folder: Path, raw: bool = False) -> Path:
    """The PLY an export starts from: the outlier-filtered result, or the trainer's output when `raw` (or
    when there is no filtered one yet). :class:`ProjectError` if the project has not been trained."""
    filtered = Path(project_folder) / RESULT_PLY
    if not raw and filtered.is_file():
        return filtered
    train = Path(project_folder) / "train"
    if not train.is_dir():
        raise ProjectError(f"{Path(project_folder).name} has no trained result yet")
    return trained_ply(train)


def application_settings() -> dict[str, Any]:
    """The application settings (``APP_KEYS``) as the user's settings file and the environment give them;
    their defaults when the file cannot be read (the window and the CLI say why where they read it)."""
    from splatstudio.model import paths

    try:
        settings = load_settings(paths.user_settings_file())
    except SettingsError:
        settings = Settings()
    return {key: settings[key] for key in APP_KEYS}


def _stored(settings: Settings) -> dict[str, Any]:
    """What project.json keeps of ``settings``: all but the application settings."""
    return {k: v for k, v in settings.to_dict().items() if k not in APP_KEYS}


class ProjectError(Exception):
    """A project folder is missing, unreadable or busy; the message says which and why."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def slugify(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip()).strip("-.")
    return slug[:64] or "project"


@dataclass
class StageRecord:
    """The latest attempt of one stage."""

    stage: str
    status: str
    started: str | None = None
    ended: str | None = None
    duration: float | None = None
    pid: int | None = None
    run_id: str | None = None
    fingerprint: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    error: dict[str, str] | None = None
    results: dict[str, list[int | str] | None] | None = None  # STAGE_RESULTS path -> stamp, when done

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageRecord:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Project:
    """One project folder. Cheap to construct; every property reads the files (they are the truth)."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        meta_path = self.folder / "project.json"
        try:
            meta = read_json(meta_path)
        except ValueError as exc:
            raise ProjectError(str(exc)) from None
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not isinstance(meta.get("id"), str):
            raise ProjectError(f"{self.folder}: not a SplatStudio project (its project.json has no name and id)")
        self._meta = meta

    # ------------------------------------------------------------------ creation and metadata
    @classmethod
    def create(cls, folder: Path, name: str, settings: Settings) -> Project:
        if (folder / "project.json").exists():
            raise ProjectError(f"{folder}: a project already exists there")
        folder.mkdir(parents=True, exist_ok=True)
        for sub in ("images", "logs", "stages", "runs", "output"):
            (folder / sub).mkdir(exist_ok=True)
        meta = {
            "format": FORMAT_VERSION,
            "id": uuid.uuid4().hex,
            "name": name,
            "created": now_iso(),
            "settings": _stored(settings),
        }
        write_json_atomic(folder / "project.json", meta)
        return cls(folder)

    @property
    def id(self) -> str:
        return self._meta["id"]

    @property
    def name(self) -> str:
        return self._meta["name"]

    @property
    def created(self) -> str:
        return self._meta.get("created", "")

    @property
    def settings(self) -> Settings:
        """The project's settings, with the application settings (``APP_KEYS``: live preview, log detail...)
        as Preferences and the environment have them now: a project made before they changed follows them."""
        stored = {k: v for k, v in self._meta.get("settings", {}).items() if k not in APP_KEYS}
        return Settings({**stored, **application_settings()})

    def set_settings(self, settings: Settings) -> None:
        """Store the project's settings (the application settings are not the project's to keep)."""
        self._meta["settings"] = _stored(settings)
        write_json_atomic(self.folder / "project.json", self._meta)

    def new_id(self) -> None:
        """Give the project a new id (a copied folder must not share its original's)."""
        self._meta["id"] = uuid.uuid4().hex
        write_json_atomic(self.folder / "project.json", self._meta)

    def rename(self, name: str) -> None:
        self._meta["name"] = name
        write_json_atomic(self.folder / "project.json", self._meta)

    # ------------------------------------------------------------------ paths
    def path(self, *parts: str) -> Path:
        return self.folder.joinpath(*parts)

    @property
    def images_dir(self) -> Path:
        return self.folder / "images"

    def log_path(self, stage: str) -> Path:
        return self.folder / "logs" / f"{stage}.log"

    def image_names(self) -> list[str]:
        manifest = read_json(self.folder / "import.json", {}) or {}
        return [item["name"] for item in manifest.get("accepted", [])]

    # ------------------------------------------------------------------ stage records
    def _record_path(self, stage: str) -> Path:
        return self.folder / "stages" / f"{stage}.json"

    def stage_record(self, stage: str) -> StageRecord | None:
        try:
            data = read_json(self._record_path(stage))
        except ValueError:
            # a record is only ever replaced atomically, so this is outside damage: treat as never run
            return None
        if not isinstance(data, dict):
            return None
        record = StageRecord.from_dict(data)
        if record.status == RUNNING and not self.is_locked():
            record.status = INTERRUPTED
            record.message = record.message or "the stage's process stopped without finishing"
        return record

    def stage_records(self) -> dict[str, StageRecord]:
        return {stage: rec for stage in STAGES if (rec := self.stage_record(stage)) is not None}

    def write_stage_record(self, record: StageRecord) -> None:
        path = self._record_path(record.stage)
        try:
            write_json_atomic(path, record.to_dict())
        except OSError as exc:  # a full disk: the stage's own record must still say how it ended
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not rewrite_json_in_place(path, record.to_dict()):
                raise

    def result_stamps(self, stage: str) -> dict[str, list[int | str] | None]:
        """The stamps of a stage's results as they are now (recorded when the stage finishes)."""
        return {rel: _stamp(self.folder / rel) for rel in STAGE_RESULTS.get(stage, ())}

    def result_problem(self, stage: str, record: StageRecord | None = None) -> str | None:
        """Why a finished stage's results can no longer be used — one was deleted, or changed since the stage
        made it — or ``None`` when they are as the stage left them (or it has not finished)."""
        record = record or self.stage_record(stage)
        if record is None or record.status != DONE:
            return None
        expected = record.results
        if expected is None:  # recorded before stamps existed: only presence can be checked
            if "imported_from" in record.figures:
                return None
            missing = [rel for rel in STAGE_RESULTS.get(stage, ()) if not (self.folder / rel).exists()]
            return f"{missing[0]} is missing" if missing else None
        for rel, stamp in expected.items():
            if stamp is None:
                continue  # the stage left nothing there (an imported model without photos)
            now = _stamp(self.folder / rel)
            if now is None:
                return f"{rel} is missing"
            if now != stamp and rel not in shared_results():
                return f"{rel} was changed after {STAGE_TITLES[stage]} made it"
        return None

    def clear_stage(self, stage: str) -> None:
        """Forget a stage's record and delete its outputs (before it re-runs or when upstream changed)."""
        self._record_path(stage).unlink(missing_ok=True)
        for rel in STAGE_OUTPUTS.get(stage, ()):
            _remove(self.folder / rel)
        self.discard_partial(stage)

    # ------------------------------------------------------------------ the result kept during a re-run
    def keep_result(self) -> bool:
        """Before a re-run clears the stages that made the finished result: keep it in ``previous/`` (the
        filtered PLY, .splat, thumbnail and the photos' cameras, with ``kept.json``) so it can still be viewed
        and exported until the new run's filter stage replaces it. Hard links, so nothing is copied; the
        folder appears whole or not at all. False when there is no finished, intact result to keep."""
        records = self.stage_records()
        filtered = records.get("filter")
        if filtered is None or filtered.status != DONE or self.result_problem("filter", filtered) is not None:
            return False
        train, splat = records.get("train"), records.get("splat")
        part = self.folder / f"{KEPT_RESULT}.part"
        _remove(part)
        part.mkdir()
        for rel, name in _KEPT_FILES.items():
            source = self.folder / rel
            if not source.is_file() or (rel == "output/scene.splat" and (splat is None or splat.status != DONE)):
                continue
            try:
                os.link(source, part / name)
            except OSError:  # a file system without hard links
                shutil.copyfile(source, part / name)
        write_json_atomic(part / "kept.json", {
            "finished": filtered.ended, "run_id": filtered.run_id,
            "gaussians": filtered.figures.get("remaining"),
            "test_psnr": train.figures.get("test_psnr") if train is not None else None,
            "held_out_views": train.figures.get("held_out_views") if train is not None else None,
        })
        _remove(self.folder / KEPT_RESULT)
        part.rename(self.folder / KEPT_RESULT)
        return True

    def kept_result(self) -> dict[str, Any] | None:
        """``kept.json`` of the result kept during a re-run, with ``path`` (its PLY) and ``folder``; None
        when there is none."""
        folder = self.folder / KEPT_RESULT
        if not (folder / "point_cloud.ply").is_file():
            return None
        try:
            meta = read_json(folder / "kept.json")
        except ValueError:
            meta = {}
        return {**(meta if isinstance(meta, dict) else {}), "path": folder / "point_cloud.ply", "folder": folder}

    def drop_kept_result(self) -> None:
        """The new result replaced the kept one."""
        shutil.rmtree(self.folder / KEPT_RESULT, ignore_errors=True)

    def shown_result(self) -> tuple[Path, Path | None, bool] | None:
        """What to view and export: ``(ply, cameras.json or None, kept)`` — the finished result, else the one
        kept while a re-run recomputes it; None when there is neither."""
        ply = self.folder / RESULT_PLY
        if ply.is_file():
            cameras = self.folder / TRAIN_CAMERAS
            return ply, cameras if cameras.is_file() else None, False
        kept = self.kept_result()
        if kept is None:
            return None
        cameras = kept["folder"] / "cameras.json"
        return kept["path"], cameras if cameras.is_file() else None, True

    # ------------------------------------------------------------------ edits of the result
    def edits(self) -> dict[str, Any]:
        """The user's edits of the result (``{"cleanup": strength}``); empty when none or unreadable."""
        try:
            found = read_json(self.folder / EDITS)
        except (ValueError, OSError):
            return {}
        return found if isinstance(found, dict) else {}

    def cleanup_strength(self) -> float:
        """The guided clean-up's strength kept with the project (0: none)."""
        value = self.edits().get("cleanup", 0.0)
        return float(value) if isinstance(value, (int, float)) and 0 <= value <= 1 else 0.0

    def set_edits(self, edits: dict[str, Any]) -> None:
        write_json_atomic(self.folder / EDITS, edits)

    def read_edits(self) -> dict[str, Any]:
        """``edits.json`` as saved ({} when there is none); a `ProjectError` that names the file and what to do
        when it cannot be read (a half-written file is impossible: it is replaced atomically; a damaged one is
        never overwritten behind the user's back)."""
        path = self.folder / EDITS
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise ProjectError(f"{path} cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
        try:
            found = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            where = f" (line {exc.lineno}, column {exc.colno}: {exc.msg})" if isinstance(exc, json.JSONDecodeError) \
                else ""
            raise ProjectError(f"{path} is damaged: not valid JSON{where}; `splatstudio edit {self.name!r} --clear` "
                               "starts the edits afresh") from None
        if not isinstance(found, dict):
            raise ProjectError(f"{path} is damaged: it holds no edits; `splatstudio edit {self.name!r} --clear` "
                               "starts the edits afresh")
        return found

    def save_edit_list(self, edit_list: dict[str, Any] | None) -> None:
        """Keep the hand edit list (``model.edits.EditSession.to_json``; None forgets it) beside the clean-up's
        strength, atomically (a temporary file, then a rename)."""
        try:
            edits = self.read_edits()
        except ProjectError:
            edits = {}  # damaged: the caller chose to replace it
        if edit_list is None:
            edits.pop("edit_list", None)
        else:
            edits["edit_list"] = edit_list
        self.set_edits(edits)

    # ------------------------------------------------------------------ before a stage works
    def keeps_checkpoint(self, stage: str, previous: StageRecord | None) -> bool:
        """Whether ``stage`` goes on from what its stopped attempt ``previous`` left: a cancelled or interrupted
        training keeps its checkpoint, unless its settings changed since."""
        return (spec(stage).resumes and previous is not None and previous.status in (CANCELLED, INTERRUPTED)
                and previous.fingerprint == self.settings.fingerprint(stage))

    def make_room_for(self, stage: str, keep_own: bool) -> None:
        """What a stage does to the project before it works (the stage process, or the Ray runner for its
        local copy): the finished result kept while it is recomputed (stages up to the filter), the stage's
        own outputs cleared (not with ``keep_own``: see :meth:`keeps_checkpoint`) and every later stage's."""
        if STAGES.index(stage) <= STAGES.index(result_stage(RESULT_PLY)):  # viewable and exportable until replaced
            self.keep_result()
        if not keep_own:
            self.clear_stage(stage)
        for later in STAGES[STAGES.index(stage) + 1:]:
            self.clear_stage(later)

    def rotate_log(self, stage: str) -> Path:
        """The stage's log path, its last attempt's log moved beside it (``<stage>.previous.log``)."""
        path = self.log_path(stage)
        if path.exists():
            path.replace(path.with_suffix(".previous.log"))
        return path

    def discard_partial(self, stage: str) -> None:
        """Delete the half-written outputs a stage that did not finish left (``sfm/database.db.part`` and
        its SQLite ``-wal``/``-shm``, ``dataset.part``...): they are never used, and on a full disk they
        hold the space a retry needs."""
        for rel in STAGE_OUTPUTS.get(stage, ()):
            target = self.folder / rel
            if target.parent.is_dir():
                for partial in target.parent.glob(f"{target.name}.part*"):
                    _remove(partial)

    # ------------------------------------------------------------------ locking
    def acquire_lock(self) -> int:
        """Take the project's exclusive lock for a stage process; :class:`ProjectError` if busy.

        The returned descriptor must stay open while the stage works; the OS releases the lock when the
        process ends, however it ends.
        """
        lock_path = self.folder / "stages" / ".lock"
        lock_path.parent.mkdir(exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ProjectError(f"project {self.name!r} is busy: another stage is running on it") from None
        return fd

    def is_locked(self) -> bool:
        lock_path = self.folder / "stages" / ".lock"
        if not lock_path.exists():
            return False
        fd = os.open(lock_path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ runs (history)
    def new_run(self, stages: list[str]) -> str:
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        write_json_atomic(self.folder / "runs" / f"{run_id}.json", {
            "id": run_id, "started": now_iso(), "ended": None, "status": RUNNING,
            "stages": stages, "attempts": [],
        })
        return run_id

    def run_record(self, run_id: str) -> dict[str, Any] | None:
        try:
            return read_json(self.folder / "runs" / f"{run_id}.json")
        except ValueError:
            return None

    def add_attempt(self, run_id: str, record: StageRecord) -> None:
        run = self.run_record(run_id)
        if run is None:
            run = {"id": run_id, "started": record.started, "ended": None, "status": RUNNING,
                   "stages": [record.stage], "attempts": []}
        run["attempts"].append(record.to_dict())
        write_json_atomic(self.folder / "runs" / f"{run_id}.json", run)

    def finish_run(self, run_id: str, status: str) -> None:
        run = self.run_record(run_id)
        if run is None:
            return
        run["ended"], run["status"] = now_iso(), status
        write_json_atomic(self.folder / "runs" / f"{run_id}.json", run)

    def runs(self) -> list[dict[str, Any]]:
        result = []
        for path in sorted((self.folder / "runs").glob("*.json")):
            try:
                run = read_json(path)
            except ValueError:
                continue
            if isinstance(run, dict) and "id" in run:
                if run.get("status") == RUNNING and run.get("ended") is None and not self.is_locked():
                    run = dict(run, status=INTERRUPTED)  # its runner died before finishing it
                result.append(run)
        return result

    # ------------------------------------------------------------------ summary
    def status(self) -> tuple[str, str | None]:
        """(state, stage): ``new``, ``running``, ``failed``, ``cancelled``, ``interrupted``, ``done``,
        or ``incomplete`` (some stages done, the next not started); stage names where it stands."""
        records = self.stage_records()
        for stage in STAGES:
            record = records.get(stage)
            if record is None:
                return ("new", None) if not records else ("incomplete", stage)
            if record.status != DONE:
                return record.status, stage
        return DONE, None

    def summary(self) -> dict[str, Any]:
        """The figures the library shows for this project."""
        records = self.stage_records()
        state, stage = self.status()
        train = records.get("train")
        filt = records.get("filter")
        gaussians = None
        kept = self.kept_result()  # the result shown while a re-run recomputes it
        if filt and filt.status == DONE:
            gaussians = filt.figures.get("remaining")
        elif kept is not None:
            gaussians = kept.get("gaussians")
        elif train and train.status == DONE:
            gaussians = train.figures.get("num_gaussians")
        size = None
        for rel in ("output/scene.splat", "output/point_cloud.ply", f"{KEPT_RESULT}/scene.splat",
                    f"{KEPT_RESULT}/point_cloud.ply"):
            if (self.folder / rel).exists():
                size = (self.folder / rel).stat().st_size
                break
        durations = [r.duration for r in records.values() if r.status == DONE and r.duration]
        error = next((r for r in records.values() if r.status in (FAILED,) and r.error), None)
        return {
            "id": self.id,
            "name": self.name,
            "folder": str(self.folder),
            "created": self.created,
            "status": state,
            "stage": stage,
            "image_count": len(self.image_names()),
            "gaussian_count": gaussians,
            "file_size": size,
            "processing_seconds": round(sum(durations), 3) if durations else None,
            "error": error.error.get("message") if error and error.error else None,
            "error_stage": error.stage if error else None,
        }

    def describe_status(self) -> str:
        state, stage = self.status()
        title = STAGE_TITLES.get(stage or "", stage)
        return {
            "new": "new",
            "done": "done",
            "running": f"running: {title}",
            "failed": f"failed at {title}",
            "cancelled": f"cancelled at {title}",
            "interrupted": f"interrupted at {title}",
            "incomplete": f"ready to run {title}",
        }.get(state, state)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _stamp(path: Path) -> list[int | str] | None:
    """What identifies a result without reading it all: a file's size and a hash of its first and last
    64 KiB; a folder's file count and total size; ``None`` when absent. Modification times are left out:
    copying a library to another disk changes them."""
    try:
        if path.is_dir():
            sizes = [item.stat().st_size for item in path.rglob("*") if item.is_file()]
            return [len(sizes), sum(sizes)]
        size = path.stat().st_size
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            digest.update(handle.read(1 << 16))
            if size > 1 << 16:
                handle.seek(max(1 << 16, size - (1 << 16)))
                digest.update(handle.read(1 << 16))
        return [size, digest.hexdigest()[:16]]
    except FileNotFoundError:
        return None
    except OSError:  # present but unreadable: a change the stage's next reader would trip on
        return [-1, "unreadable"]
