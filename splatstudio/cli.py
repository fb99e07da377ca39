"""The ``splatstudio`` command: the headless face of the app.

Exit codes: 0 success, 1 the work failed (the message says why), 2 usage error (bad arguments or settings).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from splatstudio import __version__
from splatstudio.cli_common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    ProgressPrinter,
    UsageError,
    given,
    library_of,
    settings_for,
)
from splatstudio.cli_files import add_file_commands
from splatstudio.model import paths
from splatstudio.model.atomic import DISK_FULL_HINT, disk_full_message
from splatstudio.model.humanize import format_duration, format_size
from splatstudio.model.library import Library, LibraryError
from splatstudio.model.project import (
    STAGE_TITLES,
    STAGES,
    Project,
    ProjectError,
)
from splatstudio.model.run_slots import RunSlot, RunSlots, SlotHolder, describe_wait
from splatstudio.model.settings import (
    PRESETS,
    Settings,
    SettingsError,
    load_settings,
)

# ------------------------------------------------------------------------------------------- progress


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
    library = library_of(args)
    settings = settings_for(args.set, args.preset)
    if args.original_resolution:
        settings = settings.updated({"original_resolution": True})
    project = _new_project(library, args.name, settings, args.photos)
    return EXIT_OK if project is not None else EXIT_FAILED


def cmd_open(args: argparse.Namespace) -> int:
    from splatstudio.ingest.datasets import dataset_report, import_dataset
    from splatstudio.pipeline.plan import plan_run

    library = library_of(args)
    project = import_dataset(library, args.path, args.name, settings_for(args.set, args.preset))
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
    library = library_of(args)
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


def _take_run_slot(library: Library, project: Project, stop: threading.Event,
                   limit: int) -> tuple[RunSlot | None, bool]:
    """One of the library's run slots for ``project`` (model/run_slots.py), waiting while ``limit`` runs
    are going on, in this or any other process. Returns the slot (None when ``stop`` was set while
    waiting) and whether it had to wait."""
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
    # max_concurrent_runs is the ceiling; a cluster holds no more runs than it has room for stages
    limit = min(_max_concurrent_runs(), _cluster_room(runner))
    stop = threading.Event()

    def cancel(*_) -> None:  # Ctrl+C or SIGTERM, while waiting for a run slot or while a stage runs
        stop.set()
        runner.cancel()

    previous = {sig: signal.signal(sig, cancel) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            slot, waited = _take_run_slot(library, project, stop, limit)
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


def _cluster_room(runner: Any) -> int:
    """How many runs the cluster a runner sends stages to holds at once (at least 1); no limit here."""
    info = getattr(runner, "info", None)
    return max(1, info.slots) if info is not None else 1 << 30


def cmd_run(args: argparse.Namespace) -> int:
    if len(args.name) > 1:
        return _run_many(args)
    args.name = args.name[0]
    library = library_of(args)
    project = library.get(args.name)
    _not_busy(library, project, "its settings were not changed" if args.set else "nothing was started")
    if args.set:
        changes = given(args.set)
        project.set_settings(project.settings.updated(changes, "--set"))
        print(f"{project.name}: settings changed: {', '.join(f'{k}={v}' for k, v in changes.items())}")
    return _run_project(library, project, args.from_stage, args.until, args.verbose, args.executor)


class _ManyRuns:
    """``splatstudio run A B C``: each project's run is ``splatstudio run NAME`` in a process of its own
    (a Ray connection belongs to one process; a failure stays with its project), their lines prefixed with
    ``[NAME]``, as many at once as ``max_concurrent_runs`` allows and, with a cluster, as it holds (asked
    again every :data:`ROOM_EVERY` seconds while runs wait: nodes come and go). Each run also takes one of
    the library's run slots, so runs from other terminals and the window count."""

    ROOM_EVERY = 30.0

    def __init__(self, args: argparse.Namespace, library: Library, names: list[str], address: str | None,
                 executor: str, ceiling: int):
        self.args, self.library, self.names = args, library, names
        self.address, self.executor, self.ceiling = address, executor, ceiling
        self.limit = ceiling
        self.stop = threading.Event()
        self.done = threading.Event()
        self.running: dict[str, Any] = {}
        self.codes: dict[str, int] = {}
        self._print_lock = threading.Lock()

    def room(self) -> int:
        """What the cluster holds now (:class:`ClusterError` when it cannot be used)."""
        from splatstudio.pipeline.cluster import probe_info

        assert self.address is not None
        info = probe_info(self.address)
        return max(1, info.slots)

    def _watch_room(self) -> None:
        from splatstudio.pipeline.cluster import ClusterError

        while not self.done.wait(self.ROOM_EVERY):
            try:
                limit = min(self.ceiling, self.room())
            except ClusterError:
                continue  # the runs say it themselves
            if limit != self.limit:
                self.say(f"the cluster now holds {limit} run{'s' if limit != 1 else ''} at once")
                self.limit = limit

    def say(self, text: str, stream: Any = None) -> None:
        with self._print_lock:
            print(text, file=stream or sys.stdout, flush=True)

    def _argv(self, name: str) -> list[str]:
        args = self.args
        argv = [sys.executable, "-m", "splatstudio", "--library", str(self.library.folder)]
        if args.verbose:
            argv.append("--verbose")
        argv += ["run", name, "--executor", self.executor]
        if args.from_stage:
            argv += ["--from", args.from_stage]
        if args.until:
            argv += ["--until", args.until]
        for item in args.set:
            argv += ["--set", item]
        return argv

    def _start(self, name: str) -> None:
        import subprocess

        process = subprocess.Popen(self._argv(name), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   bufsize=1, env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True)
        readers = []
        for pipe, stream in ((process.stdout, sys.stdout), (process.stderr, sys.stderr)):
            reader = threading.Thread(target=self._pump, args=(name, pipe, stream), daemon=True)
            reader.start()
            readers.append(reader)
        self.running[name] = (process, readers)

    def _pump(self, name: str, pipe: Any, stream: Any) -> None:
        for line in pipe:
            self.say(f"[{name}] {line.rstrip()}", stream)

    def cancel(self, *_: Any) -> None:
        """Ctrl+C or SIGTERM: no more runs start, those going on stop as a single run's do (resumable)."""
        self.stop.set()
        for process, _readers in list(self.running.values()):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    def run(self) -> int:
        waiting = list(self.names)
        if self.address is not None:
            threading.Thread(target=self._watch_room, name="cluster-room", daemon=True).start()
        previous = {sig: signal.signal(sig, self.cancel) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while waiting or self.running:
                while waiting and len(self.running) < self.limit and not self.stop.is_set():
                    self._start(waiting.pop(0))
                for name, (process, readers) in list(self.running.items()):
                    if process.poll() is not None:
                        for reader in readers:
                            reader.join(timeout=10)
                        self.codes[name] = process.returncode
                        del self.running[name]
                if self.stop.is_set() and not self.running:
                    break
                time.sleep(0.2)
        finally:
            self.done.set()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        for name in self.names:
            code = self.codes.get(name)
            state = "not started" if code is None else "done" if code == EXIT_OK else f"failed (exit {code})"
            self.say(f"{name}: {state}")
        return EXIT_OK if all(self.codes.get(name) == EXIT_OK for name in self.names) else EXIT_FAILED


def _run_many(args: argparse.Namespace) -> int:
    """``splatstudio run A B C`` (:class:`_ManyRuns`)."""
    from splatstudio.pipeline.cluster import ClusterError, parse_executor

    library = library_of(args)
    names = [library.get(name).name for name in args.name]  # an unknown name stops everything before a start
    if len(set(names)) != len(names):
        raise UsageError("a project is named twice: " + ", ".join(sorted({n for n in names if names.count(n) > 1})))
    for name in names:
        _not_busy(library, library.get(name), "nothing was started")
    executor = args.executor if args.executor is not None else load_settings(paths.user_settings_file()).executor
    address = parse_executor(executor)
    ceiling = _max_concurrent_runs()
    runs = _ManyRuns(args, library, names, address, executor, ceiling)
    if address is not None:
        try:
            room = runs.room()
        except ClusterError as exc:
            raise ClusterError(f"{exc}; nothing was started") from None
        runs.limit = min(ceiling, room)
        print(f"stages run on the Ray cluster at {address}, which holds {room} run{'s' if room != 1 else ''} "
              f"at once; max_concurrent_runs is {ceiling}", flush=True)
    print(f"running {len(names)} projects, {runs.limit} at a time: {', '.join(names)}", flush=True)
    return runs.run()


def cmd_reconstruct(args: argparse.Namespace) -> int:
    if args.executor is not None:  # a bad value is said before any photo is imported
        from splatstudio.pipeline.cluster import parse_executor

        parse_executor(args.executor)
    library = library_of(args)
    settings = settings_for(args.set, args.preset)
    if args.original_resolution:
        settings = settings.updated({"original_resolution": True})
    from splatstudio.model.video import is_video

    first = Path(args.photos[0]).expanduser().resolve()
    name = args.name or (first.stem if is_video(first) else first.name) or "Untitled"
    project = _new_project(library, name, settings, args.photos)
    if project is None:
        return EXIT_FAILED
    return _run_project(library, project, None, args.until, args.verbose, args.executor)


def cmd_gui(args: argparse.Namespace) -> int:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                                                 or os.environ.get("QT_QPA_PLATFORM")):
        print("error: no screen to open the SplatStudio window on (DISPLAY is not set); use the commands "
              "below, or start it under a display", file=sys.stderr)
        build_parser().print_help(sys.stderr)
        return EXIT_FAILED
    from splatstudio.ui.app import run_app

    return run_app(library_of(args))


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

    p = sub.add_parser("run", help="run, resume or retry a project's stages (several projects: as many at "
                       "once as max_concurrent_runs and the cluster allow)")
    p.add_argument("name", nargs="+", metavar="NAME", help="the project; several: each in a process of its own, "
                   "their lines prefixed with [NAME], as many at once as max_concurrent_runs and the cluster allow")
    p.add_argument("--from", dest="from_stage", choices=STAGES, help="start at this stage (retry)")
    p.add_argument("--until", choices=STAGES, help="stop after this stage")
    with_set(p, presets=False)
    with_executor(p)
    p.set_defaults(func=cmd_run)

    add_file_commands(sub)
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
        from splatstudio.pipeline.cluster import ClusterError
        from splatstudio.pipeline.plan import PlanError

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
