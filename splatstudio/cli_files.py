"""The ``splatstudio`` commands on the library and on splat files: ``projects``, ``show``, ``export``, ``edit``
(wired in from `cli_edit`), ``convert``, ``sample``, ``view``, ``settings`` and ``delete`` (`add_file_commands`
adds them to the parser). The commands that run stages are `cli`'s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from splatstudio.cli_common import EXIT_OK, UsageError, figure_text, library_of, settings_for
from splatstudio.cli_edit import add_edit_command
from splatstudio.model import paths, programs
from splatstudio.model.humanize import format_duration, format_size, printable
from splatstudio.model.library import LibraryError
from splatstudio.model.project import (
    RESULT_PLY,
    STAGE_TITLES,
    STAGES,
    TRAIN_CAMERAS,
    Project,
    ProjectError,
    result_ply,
)
from splatstudio.model.settings import (
    SPECS,
    load_settings,
    parse_assignments,
)


def add_file_commands(sub: Any) -> None:
    """Add this module's commands to the ``splatstudio`` parser's subcommands `sub`."""
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
    p.add_argument("--format", choices=export_formats(), help="file format (default: from the file name)")
    p.add_argument("-o", "--output", help="output file")
    p.add_argument("--raw", action="store_true", help="export the trainer's output without outlier filtering")
    p.add_argument("--cleanup", type=float, metavar="STRENGTH",
                   help="the guided clean-up's strength, 0 (none) to 1 (default: the one kept with the project, "
                        "set in the window)")
    p.add_argument("--no-edits", action="store_true", help="export without the hand edits kept with the project "
                   "(deletions, orientation and scale; see `splatstudio edit`)")
    add_export_options(p)
    p.set_defaults(func=cmd_export)

    add_edit_command(sub, cmd_edit)

    p = sub.add_parser("convert", help=f"convert a splat file to another format ({', '.join(export_formats())})")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--old-spz", action="store_true",
                   help="the input is a .spz written by SplatStudio before December 2026 (its axes were turned "
                        "for other tools): read it the old way, e.g. to write it again the right way up")
    add_export_options(p)
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


def cmd_projects(args: argparse.Namespace) -> int:
    library = library_of(args)
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
    library = library_of(args)
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
        figures = figure_text(stage, record.figures) if record else ""
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


def add_export_options(p: argparse.ArgumentParser) -> None:
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
    library = library_of(args)
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
        return run_edit(args, library_of(args))
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


def export_formats() -> list[str]:
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
    settings = settings_for()
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
    library = library_of(args)
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

