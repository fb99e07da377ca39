"""The ``splatstudio`` command: the headless face of the app.

Exit codes: 0 success, 1 the work failed (the message says why), 2 usage error (bad arguments or settings).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from splatstudio import __version__
from splatstudio.model import paths, programs
from splatstudio.model.atomic import DISK_FULL_HINT, disk_full_message
from splatstudio.model.humanize import format_duration, format_size, printable, quality_words
from splatstudio.model.library import Library, LibraryError
from splatstudio.model.project import (
    RESULT_PLY,
    STAGE_TITLES,
    STAGES,
    TRAIN_CAMERAS,
    Project,
    ProjectError,
    result_ply,
)
from splatstudio.model.run_slots import RunSlot, RunSlots, SlotHolder, describe_wait
from splatstudio.model.settings import (
    APP_KEYS,
    PRESETS,
    SPEC_BY_KEY,
    SPECS,
    Settings,
    SettingsError,
    load_settings,
    parse_assignments,
    preset,
    read_dotenv,
    unknown_variables,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def _settings(overrides: Sequence[str] = (), preset_name: str | None = None) -> Settings:
    """User settings (file, .env, environment), then the preset, then ``--set`` values."""
    dotenv = Path.cwd() / ".env"
    settings = load_settings(paths.user_settings_file(), dotenv)
    notes = unknown_variables(os.environ)
    if dotenv.is_file():
        found = read_dotenv(dotenv)
        notes += unknown_variables(found, str(dotenv))
        for key in APP_KEYS:  # application settings reach this command's stages through the environment
            name = SPEC_BY_KEY[key].env_var
            if name in found and name not in os.environ:
                os.environ[name] = found[name]
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if preset_name:
        settings = settings.updated(preset(preset_name).values, f"preset {preset_name}")
    return settings.updated(_given(overrides), "--set")


def _given(assignments: Sequence[str]) -> dict:
    """``--set`` values for a project; a program named there is the user's choice: made absolute and
    approved for the project's stages (model/programs.py). An application setting (log detail, live
    preview...) is no project's to keep: it applies to this command and its stages, through the
    environment they share, and the user hears how to keep it."""
    changes = programs.absolute(parse_assignments(assignments))
    for key in [key for key in changes if key in APP_KEYS]:
        value = changes.pop(key)
        os.environ[SPEC_BY_KEY[key].env_var] = str(value).lower() if isinstance(value, bool) else str(value)
        print(f"note: {key} is an application setting, not a project's: it applies to this command only "
              f"(`splatstudio settings --set {key}={value}` or Preferences keep it)", file=sys.stderr)
    programs.approve(changes)
    return changes


def _library(args: argparse.Namespace) -> Library:
    return Library(Path(args.library) if args.library else paths.default_library_dir())


# ------------------------------------------------------------------------------------------- progress

class ProgressPrinter:
    """Stage progress bars on a terminal; one line per stage event when output is a file or pipe."""

    def __init__(self, stream=None, verbose: bool = False):
        self.stream = stream or sys.stdout
        self.verbose = verbose
        self.tty = self.stream.isatty()
        self._last: dict[str, float] = {}
        self._started: dict[str, float] = {}
        self._line_open = False

    def __call__(self, stage: str, event: Any) -> None:
        from splatstudio.pipeline.events import LogLine, Progress, Result

        if isinstance(event, Progress):
            self._progress(stage, event)
        elif isinstance(event, Result):
            self._result(stage, event)
        elif isinstance(event, LogLine) and (self.verbose or event.level in ("warning", "error")):
            if event.level == "error" and event.text.startswith(("error: ", "Traceback ")):
                return  # the runner reports the failure itself (a traceback is in the stage's log)
            self._print(f"  {event.text}")

    def _print(self, text: str) -> None:
        if self._line_open:
            self.stream.write("\n")
            self._line_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def _progress(self, stage: str, event: Any) -> None:
        self._started.setdefault(stage, time.monotonic())
        title = STAGE_TITLES.get(stage, stage)
        if self.tty:
            width = 30
            filled = int(event.fraction * width)
            bar = "#" * filled + "-" * (width - filled)
            elapsed = format_duration(time.monotonic() - self._started[stage])
            self.stream.write(f"\r{title:<28} [{bar}] {event.fraction * 100:5.1f}% {elapsed:>6} {event.message[:40]:<40}")
            self.stream.flush()
            self._line_open = True
            return
        previous = self._last.get(stage, -1.0)
        if event.fraction - previous >= 0.1 or (event.fraction >= 1.0 > previous):
            self._last[stage] = event.fraction
            self._print(f"{title}: {event.fraction * 100:3.0f}% {event.message}")

    def _result(self, stage: str, event: Any) -> None:
        title = STAGE_TITLES.get(stage, stage)
        elapsed = format_duration(time.monotonic() - self._started.get(stage, time.monotonic()))
        figures = _figure_text(stage, event.figures)
        mark = {"done": "done", "failed": "FAILED", "cancelled": "cancelled"}.get(event.status, event.status)
        self._print(f"{title}: {mark} in {elapsed}" + (f" — {figures}" if figures else ""))


def _figure_text(stage: str, figures: dict[str, Any]) -> str:
    keys = {
        "features": ("images", "features_mean"),
        "matching": ("matcher", "pairs", "all_pairs", "verified_pairs"),
        "mapping": ("registered", "total", "points", "mean_reprojection_error"),
        "undistort": ("images", "sizes"),
        "train": ("iterations", "num_gaussians", "held_out_views", "test_psnr", "quality", "sec_per_iter_median"),
        "filter": ("total", "removed", "remaining"),
        "splat": ("splats", "bytes"),
    }.get(stage, ())
    def show(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    if stage == "train" and isinstance(figures.get("test_psnr"), (int, float)):
        figures = {**figures, "quality": quality_words(float(figures["test_psnr"]))[0]}

    return ", ".join(f"{k.replace('_', ' ')} {show(figures[k])}" for k in keys if figures.get(k) is not None)


# ------------------------------------------------------------------------------------------- commands

def _import(library: Library, project: Project, sources: list[str], out) -> int:
    from splatstudio.model.images import import_photos

    report = import_photos(project.images_dir, project.path("import.json"), sources, project.settings)
    skipped = [r for r in report.rejected if r.reason.startswith("unsupported file type")]
    for item in report.rejected:
        if item not in skipped:
            print(f"  rejected {item.source}: {item.reason}", file=out)
    if skipped:
        names = ", ".join(Path(r.source).name for r in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        print(f"  skipped {len(skipped)} file(s) that are not photos or videos: {names}", file=out)
    for item in report.accepted:
        for note in item.notes:
            print(f"  note {item.source}: {note}", file=out)
    for video in report.videos:
        print(f"  video {video.source}: {video.describe()}", file=out)
        for note in video.notes:
            print(f"  note {video.source}: {note}", file=out)
    frames = sum(video.chosen for video in report.videos)
    from_videos = f" ({frames} of them frames of {len(report.videos)} video(s))" if report.videos else ""
    print(f"{project.name}: {len(report.accepted)} photo(s) imported{from_videos}, "
          f"{len(report.rejected) - len(skipped)} rejected ({len(project.image_names())} in the project)", file=out)
    library.sync(project)
    return len(report.accepted)


def _invalidate_all(project: Project) -> None:
    project.keep_result()  # the photos changed: the old result stays viewable until a run replaces it
    for stage in STAGES:
        project.clear_stage(stage)


def _new_project(library: Library, name: str, settings: Settings, photos: list[str]) -> Project | None:
    """Create a project and import ``photos`` into it. A project whose import fails, is cancelled or accepts
    no photo is removed again (``None``), so the same command can simply be run again."""
    project = library.create_project(name, settings)
    print(f"created project {project.name!r} in {project.folder}")
    if not photos:
        return project
    try:
        accepted = _import(library, project, photos, sys.stdout)
    except BaseException:
        library.delete(project)
        print(f"{project.name}: the import did not finish; the new project was removed", file=sys.stderr)
        raise
    if accepted == 0:
        library.delete(project)
        print(f"error: none of the files could be imported (see the reasons above), so project {project.name!r} "
              "was not kept", file=sys.stderr)
        return None
    return project


def cmd_new(args: argparse.Namespace) -> int:
    library = _library(args)
    settings = _settings(args.set, args.preset)
    if args.original_resolution:
        settings = settings.updated({"original_resolution": True})
    project = _new_project(library, args.name, settings, args.photos)
    return EXIT_OK if project is not None else EXIT_FAILED


def cmd_open(args: argparse.Namespace) -> int:
    from splatstudio.ingest.datasets import dataset_report, import_dataset
    from splatstudio.pipeline.plan import plan_run

    library = _library(args)
    project = import_dataset(library, args.path, args.name, _settings(args.set, args.preset))
    report = dataset_report(project) or {}
    print(f"created project {project.name!r} in {project.folder} from the {report.get('description', args.path)}")
    for note in report.get("notes", []):
        print(f"  note: {note}")
    imported = [stage for stage in STAGES if stage in report.get("imported", [])]
    plan = plan_run(project)
    print(f"{project.name}: {len(project.image_names())} photo(s); imported: {', '.join(imported) or 'nothing'}; "
          f"left to run: {', '.join(plan.stages) or 'nothing'}")
    if args.run:
        return _run_project(library, project, None, None, args.verbose)
    if not plan.empty:
        print(f"run it with: splatstudio run {project.name!r}")
    return EXIT_OK


def cmd_add(args: argparse.Namespace) -> int:
    library = _library(args)
    project = library.get(args.name)
    _not_busy(library, project, "no photos were added")
    accepted = _import(library, project, args.photos, sys.stdout)
    if not accepted:
        print(f"error: none of the files could be added to {project.name!r} (see the reasons above)",
              file=sys.stderr)
        return EXIT_FAILED
    _invalidate_all(project)  # new photos change everything downstream
    library.sync(project)
    return EXIT_OK


def _not_busy(library: Library, project: Project, consequence: str) -> None:
    """A project a stage is working on, or that a run in another process holds (between two of its stages
    too), is not changed or started again (its result would be out of date)."""
    holder = RunSlots(library.folder).holder_of(project.folder)
    if holder is not None or project.is_locked():
        why = f"it is running {holder.where}" if holder is not None else "a stage is running on it"
        raise ProjectError(f"project {project.name!r} is busy: {why}, so {consequence}; "
                           "wait for it or cancel it (Ctrl+C where it runs)")


def _max_concurrent_runs() -> int:
    """The library-wide limit of runs at once: an application setting, read as the window reads it (the
    user's settings file and environment)."""
    return load_settings(paths.user_settings_file()).max_concurrent_runs


def _take_run_slot(library: Library, project: Project, stop: threading.Event) -> tuple[RunSlot | None, bool]:
    """One of the library's run slots for ``project`` (model/run_slots.py), waiting while
    ``max_concurrent_runs`` runs are going on, in this or any other process. Returns the slot (None when
    ``stop`` was set while waiting) and whether it had to wait."""
    limit = _max_concurrent_runs()
    waited, said = False, ""

    def on_wait(holders: list[SlotHolder]) -> None:
        nonlocal waited, said
        waited = True
        line = describe_wait(holders, limit)
        # said once, and again when other runs hold the slots (a try can also fail on a moment's contention)
        if len(holders) >= limit and line != said:
            said = line
            print(line, flush=True)

    slot = RunSlots(library.folder).wait_take(limit, project.name, project.folder, stop, on_wait)
    return slot, waited


def _storage_failure(what: str, folder: Path, exc: OSError) -> LibraryError:
    """``what`` failed writing under ``folder``: a full disk said as such, with what to do."""
    full = disk_full_message(folder, exc)
    return LibraryError(f"{what}: {full or exc}" + (f"; {DISK_FULL_HINT}" if full else ""))


def _nothing_to_do(project: Project, plan: Any) -> int:
    print(f"{project.name}: nothing to do ({plan.reason}); use --from STAGE to run a stage again")
    return EXIT_OK


def _run_project(library: Library, project: Project, from_stage: str | None, until: str | None,
                 verbose: bool, executor: str | None = None) -> int:
    from splatstudio.pipeline.plan import plan_run
    from splatstudio.pipeline.remote import make_runner

    plan = plan_run(project, from_stage, until)
    if plan.empty:
        return _nothing_to_do(project, plan)
    if executor is None:  # an application setting: Preferences, the environment, or --set executor=...
        executor = load_settings(paths.user_settings_file()).executor
    runner = make_runner(project, ProgressPrinter(verbose=verbose), executor)
    where = runner.prepare()  # a cluster that cannot be reached says so before anything starts
    if where:
        print(f"{project.name}: {where}", flush=True)
    stop = threading.Event()

    def cancel(*_) -> None:  # Ctrl+C or SIGTERM, while waiting for a run slot or while a stage runs
        stop.set()
        runner.cancel()

    previous = {sig: signal.signal(sig, cancel) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            slot, waited = _take_run_slot(library, project, stop)
        except OSError as exc:  # the slot's record cannot be written: nor could anything a stage writes
            raise _storage_failure(f"{project.name}: nothing was started", library.folder, exc) from None
        if slot is None:
            print(f"{project.name}: cancelled while waiting for a run slot; nothing was started", file=sys.stderr)
            return EXIT_FAILED
        with slot:  # held for the whole plan, so no other run starts between two of its stages
            if waited:  # another process may have run or changed the project meanwhile
                plan = plan_run(Project(project.folder), from_stage, until)
                if plan.empty:
                    return _nothing_to_do(project, plan)
            print(f"{project.name}: running {', '.join(plan.stages)} ({plan.reason})")
            try:
                outcome = runner.run(plan, on_stage=slot.set_stage)
            except OSError as exc:  # the run's record cannot be written
                raise _storage_failure(f"{project.name}: the run could not start", project.folder, exc) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    try:
        summary = library.sync(project)
    except LibraryError as exc:  # the project's own files hold the outcome; the index catches up later
        print(f"note: {exc}", file=sys.stderr)
        summary = project.summary()
    if outcome.status == "done" and plan.stages[-1] != STAGES[-1]:
        print(f"{project.name}: stopped after {STAGE_TITLES[plan.stages[-1]]} as asked")
        return EXIT_OK
    if outcome.status == "done":
        print(f"{project.name}: done in {format_duration(summary['processing_seconds'])} — "
              f"{summary['gaussian_count'] or '-'} Gaussians, {format_size(summary['file_size'])}; "
              f"results in {project.path('output')}")
        return EXIT_OK
    title = STAGE_TITLES.get(outcome.stage or "", outcome.stage)
    if outcome.status == "cancelled":
        print(f"{project.name}: cancelled at {title}; `splatstudio run {project.name!r}` resumes", file=sys.stderr)
        return EXIT_FAILED
    print(f"error: {project.name}: {title} failed: {outcome.message}", file=sys.stderr)
    if outcome.hint:
        print(f"what to try: {outcome.hint}", file=sys.stderr)
    print(f"log: {project.log_path(outcome.stage or '')}", file=sys.stderr)
    return EXIT_FAILED


def cmd_run(args: argparse.Namespace) -> int:
    library = _library(args)
    project = library.get(args.name)
    _not_busy(library, project, "its settings were not changed" if args.set else "nothing was started")
    if args.set:
        changes = _given(args.set)
        project.set_settings(project.settings.updated(changes, "--set"))
        print(f"{project.name}: settings changed: {', '.join(f'{k}={v}' for k, v in changes.items())}")
    return _run_project(library, project, args.from_stage, args.until, args.verbose, args.executor)


def cmd_reconstruct(args: argparse.Namespace) -> int:
    if args.executor is not None:  # a bad value is said before any photo is imported
        from splatstudio.pipeline.remote import parse_executor

        parse_executor(args.executor)
    library = _library(args)
    settings = _settings(args.set, args.preset)
    if args.original_resolution:
        settings = settings.updated({"original_resolution": True})
    from splatstudio.model.video import is_video

    first = Path(args.photos[0]).expanduser().resolve()
    name = args.name or (first.stem if is_video(first) else first.name) or "Untitled"
    project = _new_project(library, name, settings, args.photos)
    if project is None:
        return EXIT_FAILED
    return _run_project(library, project, None, args.until, args.verbose, args.executor)


def cmd_projects(args: argparse.Namespace) -> int:
    library = _library(args)
    if args.rebuild:
        print(f"index rebuilt from {library.rebuild()} project folder(s)")
    library.refresh()
    for note in library.notes:
        print(f"note: {note}", file=sys.stderr)
    rows = library.list_projects(args.sort)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print(f"no projects yet in {library.folder} — try `splatstudio sample ~/sample-photos` and "
              f"`splatstudio reconstruct ~/sample-photos`")
        return EXIT_OK
    header = f"{'NAME':<24} {'STATUS':<34} {'PHOTOS':>6} {'GAUSSIANS':>10} {'SIZE':>9} {'TIME':>7}  CREATED"
    print(header)
    for row in rows:
        project = Project(row["folder"])
        print(f"{printable(row['name'])[:24]:<24} {project.describe_status()[:34]:<34} {row['image_count'] or 0:>6} "
              f"{row['gaussian_count'] if row['gaussian_count'] is not None else '-':>10} "
              f"{format_size(row['file_size']):>9} {format_duration(row['processing_seconds']):>7}  "
              f"{(row['created'] or '')[:16].replace('T', ' ')}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    library = _library(args)
    project = library.get(args.name)
    library.sync(project)
    print(f"{printable(project.name)} — {project.describe_status()}\n  folder: {project.folder}\n"
          f"  created: {project.created}")
    print(f"  photos: {len(project.image_names())}")
    records = project.stage_records()
    for stage in STAGES:
        record = records.get(stage)
        state = record.status if record else "-"
        took = format_duration(record.duration) if record and record.duration else ""
        figures = _figure_text(stage, record.figures) if record else ""
        print(f"  {STAGE_TITLES[stage]:<28} {state:<12} {took:>7}  {figures}")
        if record and record.message and record.status != "done":
            print(f"      {record.message}")
        problem = project.result_problem(stage, record) if record else None
        if problem:
            print(f"      ! {problem}: `splatstudio run {project.name!r}` makes it again")
    errors = library.errors(project)
    if errors:
        print("  error log:")
        for error in errors[-5:]:
            print(f"    {error['created']} {error['stage']}: {error['error_type']}: {error['message']}")
    return EXIT_OK


def _floats(text: str, counts: tuple[int, ...], option: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        raise UsageError(f"{option} expects comma-separated numbers, got {text!r}") from None
    if len(values) not in counts:
        raise UsageError(f"{option} expects {' or '.join(map(str, counts))} numbers, got {len(values)}")
    return values


def export_options(args: argparse.Namespace) -> Any:
    """The :class:`ExportOptions` of ``export``/``convert`` arguments."""
    from splatstudio.io.export import CropBox, ExportOptions

    crop = None
    try:
        if args.crop and args.crop_box:
            raise UsageError("give --crop or --crop-box, not both")
        if args.crop:
            v = _floats(args.crop, (6,), "--crop")
            crop = CropBox.from_min_max(v[:3], v[3:])
        elif args.crop_box:
            v = _floats(args.crop_box, (6, 10), "--crop-box")
            crop = CropBox.oriented(v[:3], [x / 2 for x in v[3:6]], v[6:] if len(v) == 10 else (1, 0, 0, 0))
        target_size = None
        if args.target_size is not None:
            from splatstudio.io.decimate import parse_size

            target_size = parse_size(args.target_size)
        return ExportOptions(raw=getattr(args, "raw", False), min_opacity=args.min_opacity,
                             sh_degree=args.sh_degree, crop=crop, target_count=args.target_count,
                             target_size=target_size)
    except ValueError as exc:
        raise UsageError(f"--target-size: {exc}" if "a size such as" in str(exc) else str(exc)) from None


def _add_export_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-opacity", type=float, default=0.0, metavar="ALPHA",
                   help="drop splats less opaque than ALPHA (0..1, default 0: keep all)")
    p.add_argument("--sh-degree", type=int, choices=[0, 1, 2, 3],
                   help="reduce view-dependent colour to this SH degree (smaller files)")
    p.add_argument("--crop", metavar="X0,Y0,Z0,X1,Y1,Z1", help="keep splats inside this axis-aligned box (write --crop=-1,... when the first "
                        "number is negative)")
    p.add_argument("--crop-box", metavar="CX,CY,CZ,SX,SY,SZ[,QW,QX,QY,QZ]",
                   help="keep splats inside a box of centre C and size S, rotated by quaternion Q")
    p.add_argument("--target-count", type=int, metavar="N",
                   help="keep at most N splats, the most visible (opacity times size)")
    p.add_argument("--target-size", metavar="SIZE",
                   help="keep as many of the most visible splats as fit a file of SIZE (e.g. 20MB, 500kB, 1.5GB)")


def cmd_export(args: argparse.Namespace) -> int:
    from splatstudio.io.export import export_splats
    from splatstudio.io.formats import load_splats

    options = export_options(args)
    library = _library(args)
    project = library.get(args.name)
    result_stage = "train" if options.raw else "filter"
    problem = project.result_problem(result_stage)
    if problem:  # never another file in its place without a word
        raise LibraryError(f"project {project.name!r}: the result of {STAGE_TITLES[result_stage]} cannot be "
                           f"exported: {problem}; `splatstudio run {project.name!r}` makes it again")
    shown = project.shown_result()
    if not options.raw and shown is not None and shown[2]:
        source = shown[0]
        print(f"note: {project.name} is being computed again; its previous result, kept until the new one "
              "replaces it, is exported")
    else:
        try:
            source = result_ply(project.folder, raw=options.raw)
        except ProjectError as exc:
            raise LibraryError(f"project {project.name!r} has no trained result yet; run it first") from exc
        if not options.raw and source != project.path(RESULT_PLY):
            print(f"note: {project.name} has no outlier-filtered result yet, so the trainer's output is exported")
    if args.format:
        output = Path(args.output) if args.output else Path.cwd() / f"{project.folder.name}.{args.format}"
        if not output.name.lower().endswith("." + args.format):
            output = output.with_name(f"{output.name}.{args.format}")
    elif args.output:
        output = Path(args.output)  # the format comes from its extension (an unknown one is an error)
    else:
        raise UsageError("give --format or an output file name with an extension")
    cloud = load_splats(source)
    strength = args.cleanup if args.cleanup is not None else project.cleanup_strength()
    if not 0.0 <= strength <= 1.0:
        raise UsageError(f"--cleanup {strength}: a strength is between 0 and 1")
    if strength > 0:
        cameras = shown[1] if shown is not None and source == shown[0] else project.path(*TRAIN_CAMERAS.split("/"))
        options = dataclasses.replace(options, remove=_cleanup_mask(cameras, cloud, strength))
    from splatstudio.cli_edit import apply_saved_edits

    options = apply_saved_edits(project, cloud, options, ignore=args.no_edits)
    result = export_splats(cloud, output, options)
    kept = f"{result.count} of {len(cloud)} splats (the most visible)" if (
        options.target_count or options.target_size) and result.count < len(cloud) else f"{result.count} splats"
    print(f"exported {kept} to {output} ({format_size(result.size)})")
    return EXIT_OK


def cmd_edit(args: argparse.Namespace) -> int:
    from splatstudio.cli_edit import EditUsageError, run_edit

    try:
        return run_edit(args, _library(args))
    except EditUsageError as exc:
        raise UsageError(str(exc)) from None


def _cleanup_mask(cameras: Path | None, cloud: Any, strength: float) -> Any:
    """The splats the guided clean-up at ``strength`` removes from ``cloud`` (``model/cleanup.py``), with the
    photos' ``cameras`` when they can be read; said on the terminal."""
    from splatstudio.model.cleanup import cleanup_mask, cleanup_scores, describe
    from splatstudio.render.camera import cleanup_views_from

    views, problem = cleanup_views_from(cameras)
    if views is None:
        print(f"note: {problem}: the clean-up uses only the detectors that need none")
    removed, counts = cleanup_mask(cleanup_scores(cloud, views), strength)
    print(f"clean-up at strength {strength:g}: {describe(removed, counts)}")
    return removed


def _export_formats() -> list[str]:
    from splatstudio.io.formats import FORMATS

    return sorted(ext.lstrip(".") for ext in FORMATS)


def cmd_convert(args: argparse.Namespace) -> int:
    from splatstudio.io.export import export_splats
    from splatstudio.io.formats import format_for, load_splats

    options = export_options(args)
    format_for(args.output)  # an unknown output extension fails before the input is read
    if args.old_spz:
        from splatstudio.io.spz import read_spz

        if not args.input.lower().endswith(".spz"):
            raise UsageError(f"--old-spz reads a .spz file; {args.input} is not one")
        cloud = read_spz(Path(args.input), rub=True)
    else:
        cloud = load_splats(Path(args.input))
    result = export_splats(cloud, Path(args.output), options)
    print(f"converted {result.count} of {len(cloud)} splats: {args.input} -> {args.output} "
          f"({format_size(result.size)})")
    return EXIT_OK


def cmd_sample(args: argparse.Namespace) -> int:
    from splatstudio.model.sample import generate_sample

    width, height = _parse_size(args.size)
    out = Path(args.folder).expanduser()

    def progress(fraction: float, message: str) -> None:
        print(f"\r{fraction * 100:3.0f}% {message:<50}", end="", flush=True)

    generate_sample(out, count=args.count, width=width, height=height, seed=args.seed, progress=progress)
    print(f"\nwrote {args.count} photos of a generated object to {out}\n"
          f"try: splatstudio reconstruct {out} --name Sample --preset fast   (a few minutes on a CPU)")
    return EXIT_OK


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size expects WIDTHxHEIGHT, got {text!r}") from None
    if not (32 <= width <= 8192 and 32 <= height <= 8192):
        raise UsageError(f"--size {text}: each side must be between 32 and 8192 pixels")
    return width, height


def cmd_settings(args: argparse.Namespace) -> int:
    settings_file = paths.user_settings_file()
    if args.set:
        current = load_settings(settings_file, environ={})
        updated = current.updated(programs.absolute(parse_assignments(args.set)), "--set")
        programs.save_user_settings(settings_file, updated)
        print(f"saved to {settings_file}")
    settings = _settings()
    if args.json:
        print(json.dumps(settings.to_dict(), indent=2))
        return EXIT_OK
    group = None
    for spec in SPECS:
        if spec.group != group:
            group = spec.group
            print(f"\n[{group}]")
        value = settings[spec.key]
        mark = "" if value == spec.default else "   (changed)"
        print(f"  {spec.key:<28} = {value!s:<22}{mark}\n      {spec.help} Env: {spec.env_var}")
    print(f"\nuser settings file: {settings_file}")
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    library = _library(args)
    project = library.get(args.name)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("refusing to delete without confirmation: pass --yes")
        answer = input(f"Delete project {project.name!r} and everything in {project.folder}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("kept")
            return EXIT_OK
    library.delete(project)
    print(f"deleted {project.name!r}")
    return EXIT_OK


def cmd_view(args: argparse.Namespace) -> int:
    from splatstudio.render.headless import cli_view

    return cli_view(args.args)


def cmd_gui(args: argparse.Namespace) -> int:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                                                 or os.environ.get("QT_QPA_PLATFORM")):
        print("error: no screen to open the SplatStudio window on (DISPLAY is not set); use the commands "
              "below, or start it under a display", file=sys.stderr)
        build_parser().print_help(sys.stderr)
        return EXIT_FAILED
    from splatstudio.ui.app import run_app

    return run_app(_library(args))


# ------------------------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="splatstudio", description="Turn photos into 3D Gaussian Splatting scenes.")
    parser.add_argument("--version", action="version", version=f"SplatStudio {__version__}")
    parser.add_argument("--library", help=f"library folder (default: ${paths.LIBRARY_ENV} or "
                                          f"{paths.default_library_dir()})")
    parser.add_argument("-v", "--verbose", action="store_true", help="show every log line of the stages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def with_set(p: argparse.ArgumentParser, presets: bool = True) -> None:
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="change a setting for this project (see `splatstudio settings`)")
        if presets:
            p.add_argument("--preset", choices=[item.key for item in PRESETS],
                           help="; ".join(f"{item.key}: {item.name.lower()} ({item.values['iterations']} iterations)"
                                          for item in PRESETS) + " (default: your settings)")

    def with_executor(p: argparse.ArgumentParser) -> None:
        p.add_argument("--executor", metavar="WHERE", help="where the stages run: local, auto (the Ray cluster "
                       "this computer belongs to) or ray://HOST:PORT (default: the executor setting)")

    p = sub.add_parser("reconstruct", help="photos → new project → trained, filtered splats")
    p.add_argument("photos", nargs="+", help="photo and video files and/or folders")
    p.add_argument("--name", help="project name (default: the first folder's name)")
    p.add_argument("--original-resolution", action="store_true", help="import photos without resizing")
    p.add_argument("--until", choices=STAGES, help="stop after this stage")
    with_set(p)
    with_executor(p)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("new", help="create a project and import photos (no processing)")
    p.add_argument("name")
    p.add_argument("photos", nargs="*", help="photo and video files and/or folders")
    p.add_argument("--original-resolution", action="store_true", help="import photos without resizing")
    with_set(p)
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("open", help="open a COLMAP folder, a reference-trainer output or a nerfstudio dataset "
                       "as a new project that skips the stages it already has")
    p.add_argument("path", help="the dataset folder (or its transforms.json)")
    p.add_argument("--name", help="project name (default: the folder's name)")
    p.add_argument("--run", action="store_true", help="run the remaining stages right away")
    with_set(p)
    p.set_defaults(func=cmd_open)

    p = sub.add_parser("add", help="import more photos into a project (its stages will run again)")
    p.add_argument("name")
    p.add_argument("photos", nargs="+")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("run", help="run, resume or retry a project's stages")
    p.add_argument("name")
    p.add_argument("--from", dest="from_stage", choices=STAGES, help="start at this stage (retry)")
    p.add_argument("--until", choices=STAGES, help="stop after this stage")
    with_set(p, presets=False)
    with_executor(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("projects", help="list the library")
    p.add_argument("--sort", default="created", choices=["created", "name", "status", "image_count",
                                                         "gaussian_count", "file_size", "processing_seconds"])
    p.add_argument("--json", action="store_true")
    p.add_argument("--rebuild", action="store_true", help="rebuild the index from the project folders")
    p.set_defaults(func=cmd_projects)

    p = sub.add_parser("show", help="a project's stages, figures and errors")
    p.add_argument("name")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("export", help="export a project's splats")
    p.add_argument("name")
    p.add_argument("--format", choices=_export_formats(), help="file format (default: from the file name)")
    p.add_argument("-o", "--output", help="output file")
    p.add_argument("--raw", action="store_true", help="export the trainer's output without outlier filtering")
    p.add_argument("--cleanup", type=float, metavar="STRENGTH",
                   help="the guided clean-up's strength, 0 (none) to 1 (default: the one kept with the project, "
                        "set in the window)")
    p.add_argument("--no-edits", action="store_true", help="export without the hand edits kept with the project "
                   "(deletions, orientation and scale; see `splatstudio edit`)")
    _add_export_options(p)
    p.set_defaults(func=cmd_export)

    from splatstudio.cli_edit import add_edit_command

    add_edit_command(sub, cmd_edit)

    p = sub.add_parser("convert", help=f"convert a splat file to another format ({', '.join(_export_formats())})")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--old-spz", action="store_true",
                   help="the input is a .spz written by SplatStudio before December 2026 (its axes were turned "
                        "for other tools): read it the old way, e.g. to write it again the right way up")
    _add_export_options(p)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("sample", help="write a generated photo set to try the app on")
    p.add_argument("folder")
    p.add_argument("--count", type=int, default=24, help="number of photos (default 24)")
    p.add_argument("--size", default="640x480", help="photo size WIDTHxHEIGHT (default 640x480)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("view", add_help=False, help="open a splat file in the 3D viewer, or render a screenshot "
                       "(FILE [--screenshot OUT.png] [--size WxH] [--camera cameras.json:INDEX] [--cameras SPEC]; "
                       "`splatstudio view --help` for more)")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_view)

    p = sub.add_parser("settings", help="show the effective settings, or change user defaults with --set")
    p.add_argument("--json", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="save a default in the user settings file")
    p.set_defaults(func=cmd_settings)

    p = sub.add_parser("delete", help="delete a project and its folder")
    p.add_argument("name")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_delete)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _dispatch(argv)
        sys.stdout.flush()  # here, where a closed pipe can still be handled, not at the interpreter's exit
        return code
    except BrokenPipeError:  # the reader went away (`| head`): nothing more to say, and no one to say it to
        _silence_stdout()
        return EXIT_FAILED


def _dispatch(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args, extra = parser.parse_known_args(argv)
        if getattr(args, "command", None) == "view":
            # the viewer parses its own options (and --help): everything after the command word, as given
            args.args = argv[argv.index("view") + 1:]
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:
        return int(exc.code or 0)
    func = getattr(args, "func", cmd_gui)
    try:
        return func(args)
    except KeyboardInterrupt:
        print("cancelled (Ctrl+C)", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        raise
    except (UsageError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (LibraryError, ProjectError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # formats, plans, file system: say what and where, never a traceback wall
        from splatstudio.io.errors import FormatError
        from splatstudio.model.images import ImportFailed
        from splatstudio.pipeline.plan import PlanError
        from splatstudio.pipeline.remote import ClusterError

        if isinstance(exc, FileNotFoundError) and exc.filename:
            print(f"error: {exc.filename}: no such file or folder", file=sys.stderr)
            return EXIT_FAILED
        if isinstance(exc, OSError) and exc.filename:
            print(f"error: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAILED
        if isinstance(exc, (FormatError, PlanError, ImportFailed, OSError, ClusterError)):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        raise


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush of a closed pipe raises nothing (the recipe
    of the Python documentation, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
