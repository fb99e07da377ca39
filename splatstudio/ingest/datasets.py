"""Datasets in: open an existing dataset as a project that skips the stages it already has.

Three kinds of folder are recognised (:func:`detect_dataset`):

* **COLMAP** — ``images/`` + ``sparse/0`` (``cameras``, ``images``, ``points3D`` as ``.bin`` or ``.txt``),
  any camera model COLMAP knows. Features, matching and mapping are done: the model is written to
  ``sfm/sparse/0`` (binary), ``sfm/report.json`` and ``output/sparse_points.ply`` as the mapping stage
  writes them. When every camera is ``PINHOLE``/``SIMPLE_PINHOLE`` (nothing to undistort) ``dataset/``
  is laid out as the undistort stage would and that stage is done too; otherwise it runs for real.
  A camera whose distortion parameters are all zero (an OPENCV camera with k1 = k2 = p1 = p2 = 0...) is
  stored as the pinhole it is: COLMAP's undistorter would copy it unchanged and the trainer refuse it.
* **Reference-trainer output** — ``point_cloud/iteration_N/point_cloud.ply`` (+ ``cameras.json``,
  ``cfg_args``): training is done (the latest iteration's PLY goes to ``train/point_cloud/iteration_N``,
  ``cameras.json`` stays beside it for the viewer's camera list); filtering and ``.splat`` conversion are
  left to the normal run. The project's ``iterations`` and ``sh_degree`` settings are set from the
  model. If ``cfg_args``' ``source_path`` is a reachable, undistorted dataset its photos and model are
  imported as for COLMAP; otherwise the project has no photos and the stages before training are
  recorded as done but empty (they cannot run again; a retrain needs the photos).
* **nerfstudio** — ``transforms.json`` (see :mod:`splatstudio.io.nerfstudio` for the conventions),
  converted to a COLMAP model; as for COLMAP, undistortion is skipped when no camera has distortion.
  Points come from ``ply_file_path``; without one the scene has no sparse points and, as the reference
  3DGS does for its synthetic scenes, training starts from :data:`~dataset_readers.RANDOM_POINTS` random grey points
  in the cameras' bounding volume (the reference uses a fixed cube; here a cube around the point the
  cameras look at, see :func:`random_points`). The import report says so. A COLMAP model without
  points gets the same.

Photos are hard-linked (copied across file systems) into ``images/`` *as they are*: no EXIF rotation and
no resizing, because the cameras describe the stored pixels (unlike the photo import). Names are
flattened (``cam0/1.jpg`` → ``1.jpg``, or ``cam0_1.jpg`` on a clash) and the model renamed to match.

Everything is read and checked before anything is written; the project is built in a hidden folder
(``.importing/`` inside the library) and renamed into place at the end, so a failure leaves nothing
behind. Stage records are written as the stage processes write them (status done, the fingerprint of
the project's settings, the stage's figures) with ``imported_from`` in the figures and an "imported
from" message, plus one finished run in ``runs/`` holding them. Reading and checking the folder is `dataset_readers`. Pure: no Qt, no pycolmap.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from splatstudio.ingest.dataset_readers import (
    COLMAP,
    EXIF_ORIENTATION,
    NERFSTUDIO,
    TRAINER_OUTPUT,
    DatasetError,
    DatasetKind,
    ProgressFn,
    Sparse,
    Trained,
    check_images,
    colmap_model_folder,
    detect_dataset,
    random_points,
    read_cfg_args,
    read_colmap,
    read_nerfstudio,
    read_trained,
    read_trainer_source,
    trainer_source,
    without_null_distortion,
)
from splatstudio.io import colmap
from splatstudio.model.atomic import read_json, sha256_of, write_json_atomic
from splatstudio.model.library import Library, LibraryError
from splatstudio.model.project import (
    DONE,
    STAGE_TITLES,
    STAGES,
    Project,
    StageRecord,
    now_iso,
    slugify,
)
from splatstudio.model.settings import Settings, load_settings

SFM_STAGES = ("features", "matching", "mapping")
STAGING = ".importing"

__all__ = [
    "COLMAP",
    "EXIF_ORIENTATION",
    "NERFSTUDIO",
    "TRAINER_OUTPUT",
    "DatasetError",
    "DatasetKind",
    "colmap_model_folder",
    "dataset_report",
    "default_name",
    "detect_dataset",
    "import_dataset",
    "random_points",
    "read_cfg_args",
    "without_null_distortion",
]


# ------------------------------------------------------------------------------------------ writing

def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _store_photos(project: Project, sparse: Sparse, progress: ProgressFn) -> None:
    accepted = []
    ids = sorted(sparse.model.images)
    for done, image_id in enumerate(ids):
        source, name = sparse.files[image_id], sparse.names[image_id]
        try:
            _link_or_copy(source, project.images_dir / name)
            digest = sha256_of(source)
        except OSError as exc:
            raise DatasetError(f"{source}: cannot be copied into the project ({exc.strerror or exc})") from None
        width, height = sparse.sizes[image_id]
        accepted.append({"name": name, "source": str(source), "width": width, "height": height,
                         "original_width": width, "original_height": height, "sha256": digest,
                         "notes": ["stored as it is (no EXIF rotation or resizing): the cameras describe its "
                                   "pixels", *sparse.image_notes.get(image_id, [])]})
        progress(0.3 + 0.5 * (done + 1) / len(ids), f"copied {done + 1}/{len(ids)} photos")
    write_json_atomic(project.path("import.json"), {"accepted": accepted, "rejected": sparse.rejected})


def _model_for_project(sparse: Sparse) -> colmap.ColmapModel:
    images = {}
    for image_id, image in sparse.model.images.items():
        images[image_id] = colmap.Image(image.id, image.qvec, image.tvec, image.camera_id, sparse.names[image_id],
                                        image.xys, image.point3d_ids)
    return colmap.ColmapModel(sparse.model.cameras, images, sparse.model.points)


def _store_model(project: Project, sparse: Sparse) -> dict[str, dict[str, Any]]:
    """sfm/sparse/0, output/sparse_points.ply and sfm/report.json as the mapping stage writes them (and
    dataset/ as the undistort stage does when there is nothing to undistort); figures per stage."""
    model = _model_for_project(sparse)
    sparse_dir = project.path("sfm", "sparse", "0")
    colmap.write_model(model, sparse_dir, binary=True)
    colmap.points3d_to_ply(sparse_dir, project.path("output", "sparse_points.ply"))
    points = model.points
    errors = points.errors[points.errors >= 0]
    tracked = points.track_lengths[points.track_lengths > 0]
    total = len(model.images)
    mapping = {"total": total, "registered": total, "points": len(points),
               "mean_reprojection_error": round(float(errors.mean()), 4) if len(errors) else None,
               "mean_track_length": round(float(tracked.mean()), 3) if len(tracked) else None,
               "dropped": [], "strategy": "imported", "attempts": [], "random_points": sparse.random_points}
    write_json_atomic(project.path("sfm", "report.json"), mapping)
    figures: dict[str, dict[str, Any]] = {
        "features": {"images": total, "cameras": len(model.cameras)},
        "matching": {"matcher": "imported"},
        "mapping": mapping,
    }
    if sparse.undistorted:
        dataset = project.path("dataset")
        for name in sparse.names.values():
            _link_or_copy(project.images_dir / name, dataset / "images" / name)
        colmap.write_model(model, dataset / "sparse" / "0", binary=True)
        sizes = sorted({(c.width, c.height) for c in model.cameras.values()})
        figures["undistort"] = {"images": total, "registered": total,
                                "camera_models": sorted({c.model for c in model.cameras.values()}),
                                "sizes": [f"{w}x{h}" for w, h in sizes]}
    return figures


def _store_training(project: Project, trained: Trained) -> dict[str, Any]:
    target = project.path("train", "point_cloud", f"iteration_{trained.iteration}", "point_cloud.ply")
    try:
        # copied, not linked: a trainer writing that file again in its own folder would change ours
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(trained.ply, target)
        for extra in (trained.cameras_json, trained.cfg_args):
            if extra is not None:
                shutil.copy2(extra, project.path("train", extra.name))
    except OSError as exc:
        raise DatasetError(f"{exc.filename or trained.folder}: cannot be copied into the project "
                           f"({exc.strerror or exc})") from None
    return {"iterations": trained.iteration, "num_gaussians": trained.gaussians, "sh_degree": trained.sh_degree}


def _write_records(project: Project, figures: dict[str, dict[str, Any]], messages: dict[str, str]) -> None:
    """Stage records as the stage processes write them, and one finished run holding them."""
    stages = [stage for stage in STAGES if stage in figures]
    run_id = project.new_run(stages)
    settings = project.settings
    for stage in stages:
        stamp = now_iso()
        message = messages[stage]
        record = StageRecord(stage, DONE, started=stamp, ended=stamp, duration=0.0, run_id=run_id,
                             fingerprint=settings.fingerprint(stage), figures=figures[stage], message=message,
                             results=project.result_stamps(stage))
        project.write_stage_record(record)
        project.add_attempt(run_id, record)
        project.log_path(stage).write_text(f"=== {STAGE_TITLES[stage]} ({stage}) {message} at {stamp} ===\n",
                                           encoding="utf-8")
    project.finish_run(run_id, DONE)


# ------------------------------------------------------------------------------------------ import

def dataset_report(project: Project) -> dict[str, Any] | None:
    """What :func:`import_dataset` recorded about a project's origin (``import.json``'s ``dataset``)."""
    manifest = read_json(project.path("import.json"), {}) or {}
    report = manifest.get("dataset")
    return report if isinstance(report, dict) else None


def default_name(found: DatasetKind) -> str:
    """The dataset folder's name; for a trainer output (often a random id) its source dataset's, if found."""
    folder = found.path.parent if found.path.is_file() else found.path
    if found.kind == TRAINER_OUTPUT:
        folder = trainer_source(folder) or folder
    return folder.resolve().name or "Dataset"


def import_dataset(library_or_folder: Library | str | os.PathLike[str], path: str | os.PathLike[str],
                   name: str | None = None, settings: Settings | None = None,
                   progress: ProgressFn | None = None) -> Project:
    """Open the dataset at ``path`` as a new project and return it, its finished stages recorded.

    ``library_or_folder`` is a :class:`Library` (the project gets a folder there and the index is
    updated) or the folder to create the project in (it must not exist, or be empty). ``settings``
    default to the user's (settings file, environment). Raises :class:`DatasetError` (a
    :class:`ProjectError`) naming the file and the problem, or :class:`LibraryError` for a taken name;
    either way nothing is left behind.
    """
    report = progress or (lambda fraction, message: None)
    source = Path(path).expanduser()
    if not source.exists():
        raise DatasetError(f"{source}: no such file or folder")
    found = detect_dataset(source)
    if found is None:
        raise DatasetError(f"{source}: not a dataset SplatStudio can open — expected a COLMAP folder (images/ + "
                           "sparse/0), a reference-trainer output (point_cloud/iteration_N/point_cloud.ply) or a "
                           "nerfstudio dataset (transforms.json)")
    if settings is None:
        from splatstudio.model import paths

        settings = load_settings(paths.user_settings_file())
    library = library_or_folder if isinstance(library_or_folder, Library) else None
    name, staging, target = _destination(library_or_folder, found, name)

    # 1. read and check everything (nothing written yet)
    report(0.0, f"reading the {found.title}")
    sparse, trained, settings = _read_dataset(found, settings, report)

    # 2. build the project in a hidden folder, then move it into place
    staging.mkdir(parents=True, exist_ok=True)
    work = staging / f".import-{uuid.uuid4().hex}"
    work.mkdir()
    try:
        _build_project(Project.create(work, name, settings), found, sparse, trained, report)
        report(0.95, "moving the project into place")
        final = _move_into_place(work, library, target, name)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        if library is not None:
            try:
                staging.rmdir()  # only when empty: another import may be using it
            except OSError:
                pass
    project = Project(final)
    if library is not None:
        library.sync(project)
    report(1.0, f"opened {found.title} as project {name!r}")
    return project


def _destination(library_or_folder: Library | str | os.PathLike[str], found: DatasetKind,
                 name: str | None) -> tuple[str, Path, Path | None]:
    """The project's name (a default one made unique in the library; a given one must be), the folder to
    build it in, and the folder it becomes (None: a new folder in the library)."""
    library = library_or_folder if isinstance(library_or_folder, Library) else None
    if name is None:  # a default name is made unique; a given one must be
        base = name = default_name(found)
        n = 2
        while library is not None and library.find(name) is not None:
            name, n = f"{base} ({n})", n + 1
    name = name.strip()
    if not name:
        raise DatasetError("a project needs a name")
    if library is not None:
        if library.find(name) is not None:
            raise LibraryError(f"a project named {name!r} already exists in {library.folder}")
        return name, library.folder / STAGING, None
    target = Path(library_or_folder).expanduser()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DatasetError(f"{target}: already exists and is not an empty folder")
    return name, target.parent, target


def _read_dataset(found: DatasetKind, settings: Settings,
                  report: ProgressFn) -> tuple[Sparse | None, Trained | None, Settings]:
    """The dataset's cameras, photos and points (checked), its trained model (a trainer output), and the
    project's settings (a trained model's iterations and SH degree)."""
    trained = None
    if found.kind == TRAINER_OUTPUT:
        trained = read_trained(found.path)
        sparse = read_trainer_source(trained)
        iterations = min(max(trained.iteration, 1), 1_000_000)
        settings = settings.updated({"iterations": iterations, "sh_degree": trained.sh_degree})
        trained.notes.append(f"settings iterations={iterations} and sh_degree={trained.sh_degree} taken from the "
                             "trained model")
    elif found.kind == COLMAP:
        sparse = read_colmap(found.path)
    else:
        sparse = read_nerfstudio(found.path)
    if sparse is not None:
        check_images(sparse, report)
    return sparse, trained, settings


def _build_project(project: Project, found: DatasetKind, sparse: Sparse | None, trained: Trained | None,
                   report: ProgressFn) -> None:
    """Write the photos, the model and the trained model into `project`, its stage records and the import
    report."""
    figures: dict[str, dict[str, Any]] = {}
    messages: dict[str, str] = {}
    notes: list[str] = []
    if sparse is not None:
        _store_photos(project, sparse, report)
        report(0.85, "writing the sparse model")
        for stage, values in _store_model(project, sparse).items():
            figures[stage] = {**values, "imported_from": str(sparse.source)}
            messages[stage] = f"imported from {sparse.origin}"
        notes += sparse.notes
        if not sparse.undistorted:
            models = sorted({c.model for c in sparse.model.cameras.values()})
            notes.append(f"the cameras ({', '.join(models)}) have distortion: the undistort stage will run")
    else:
        write_json_atomic(project.path("import.json"), {"accepted": [], "rejected": []})
    if trained is not None:
        if sparse is None:
            for stage in (*SFM_STAGES, "undistort"):
                figures[stage] = {"photos": 0, "imported_from": str(found.path)}
                messages[stage] = (f"not part of the import: the trained model in {found.path} came without "
                                   "its photos")
        figures["train"] = {**_store_training(project, trained), "imported_from": str(found.path)}
        messages["train"] = f"imported from {found.title} {found.path}"
        notes += trained.notes
    _write_records(project, figures, messages)
    manifest = read_json(project.path("import.json"), {}) or {}
    manifest["dataset"] = {"kind": found.kind, "title": found.title, "source": str(found.path),
                           "description": found.description,
                           "imported": [stage for stage in figures if "photos" not in figures[stage]],
                           "notes": notes,
                           "random_points": bool(sparse and sparse.random_points), "created": now_iso()}
    write_json_atomic(project.path("import.json"), manifest)


def _move_into_place(work: Path, library: Library | None, target: Path | None, name: str) -> Path:
    if target is not None:
        if target.exists():
            target.rmdir()  # empty (checked before); fails if something appeared meanwhile
        os.rename(work, target)
        return target
    assert library is not None
    if library.find(name) is not None:
        raise LibraryError(f"a project named {name!r} already exists in {library.folder}")
    base = slugify(name)
    folder, n = library.folder / base, 2
    while True:
        if not folder.exists():
            try:
                os.rename(work, folder)
                return folder
            except OSError:
                if not folder.exists():
                    raise
        folder, n = library.folder / f"{base}-{n}", n + 1
