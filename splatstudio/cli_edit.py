"""``splatstudio edit PROJECT``: the project's hand edit list, headless (issue 23, items 2, 3 and 5), and the
part of ``splatstudio export`` that applies it.

The edit list is what the window's edit mode saves in ``edits.json`` (``model/edits.py``): deletions, hidden
splats, the orientation and scale. ``edit`` lists it, applies one saved elsewhere (``--apply FILE``: another
copy's ``edits.json`` or an edit list alone, checked against this project's result), undoes and redoes steps,
forgets it (``--clear``), and adds the edits a script wants (``--delete-box``, ``--delete-sphere``, ``--level``,
``--origin``). ``export`` applies it (``--no-edits`` exports without). Lives one floor below ``cli_files.py``,
which wires the command in and turns :class:`EditUsageError` into its usage error, so that the command's many
lines stay out of the shared parser module.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np


class EditUsageError(ValueError):
    """Bad arguments of ``edit`` (the CLI exits with its usage code)."""


def add_edit_command(sub: Any, func: Any) -> None:
    """The ``edit`` subcommand on ``sub`` (the main parser's subparsers), run by ``func``."""
    p = sub.add_parser("edit", help="list, apply, undo or clear a project's hand edits (deletions, level, origin, "
                       "scale), as the window's edit mode keeps them; `export` applies them",
                       description="Without options: list the project's saved edits. Changes are saved as the "
                       "window saves them, and `splatstudio export` applies them.")
    p.add_argument("name")
    p.add_argument("--apply", metavar="FILE", help="use the edit list saved in FILE (another copy's edits.json, or "
                   "an edit list alone) in place of this project's, after checking it fits this result")
    p.add_argument("--clear", action="store_true", help="forget every hand edit (the clean-up's strength stays; a "
                   "damaged edits.json is replaced)")
    p.add_argument("--undo", type=int, nargs="?", const=1, default=0, metavar="N", help="undo the last N edits (1)")
    p.add_argument("--redo", type=int, nargs="?", const=1, default=0, metavar="N", help="redo N undone edits (1)")
    p.add_argument("--delete-box", metavar="X0,Y0,Z0,X1,Y1,Z1",
                   help="delete the splats inside this box (in the edited frame; --delete-box=-1,... for a "
                        "negative first number)")
    p.add_argument("--delete-sphere", metavar="CX,CY,CZ,R", help="delete the splats within R of the centre C")
    p.add_argument("--level", action="store_true", help="level the scene: the photos' average up becomes -y")
    p.add_argument("--origin", metavar="X,Y,Z", help="move the scene so that this point is the origin")
    p.set_defaults(func=func)


def _numbers(text: str, count: int, option: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != count or not all(np.isfinite(values)):
        raise EditUsageError(f"{option} expects {count} numbers separated by commas, got {text!r}")
    return values


def _result(project: Any) -> tuple[Path, Path | None]:
    """The result the edits apply to (the one the window shows and `export` exports) and its cameras."""
    from splatstudio.model.library import LibraryError
    from splatstudio.model.project import TRAIN_CAMERAS

    shown = project.shown_result()
    if shown is None:
        raise LibraryError(f"project {project.name!r} has no result to edit yet; run it first")
    cameras = shown[1] if shown[1] is not None else project.path(*TRAIN_CAMERAS.split("/"))
    return shown[0], cameras if cameras is not None and cameras.is_file() else None


def _session_of(project: Any, cloud: Any, stored: Any, forgiving: bool) -> tuple[Any, str]:
    """The saved edit list as a session over ``cloud``; with ``forgiving`` (the list is being replaced) a fresh
    session and the reason instead of an error for a stale or damaged one."""
    from splatstudio.model.edits import EditsError, EditSession, StaleEdits, model_fingerprint
    from splatstudio.model.library import LibraryError

    fingerprint = model_fingerprint(cloud)
    if stored is None:
        return EditSession(len(cloud), fingerprint), ""
    try:
        return EditSession.from_json(stored, len(cloud), fingerprint), ""
    except EditsError as exc:
        what = "do not fit its result" if isinstance(exc, StaleEdits) else "cannot be read"
        if forgiving:
            return EditSession(len(cloud), fingerprint), f"the saved edits {what} ({exc})"
        raise LibraryError(f"project {project.name!r}: the saved edits {what}: {exc}; "
                           f"`splatstudio edit {project.name!r} --clear` forgets them") from None


def run_edit(args: argparse.Namespace, library: Any) -> int:
    """``splatstudio edit`` on ``library``: 0 when done; `EditUsageError`, `LibraryError` or `ProjectError`
    with the reason otherwise."""
    from splatstudio.io.formats import load_splats
    from splatstudio.model.project import ProjectError

    if args.undo < 0 or args.redo < 0:
        raise EditUsageError("--undo and --redo take a number of steps, 1 or more")
    project = library.get(args.name)
    source, cameras = _result(project)
    replacing = args.clear or args.apply is not None
    try:
        stored = project.read_edits().get("edit_list")
        damaged = ""
    except ProjectError as exc:
        if not replacing:
            raise
        stored, damaged = None, str(exc)
    cloud = load_splats(source)
    session, problem = _session_of(project, cloud, stored, forgiving=replacing)
    if damaged or problem:
        print(f"note: {damaged or problem}; replaced")
    session, changed = _replace_list(args, project, session, len(cloud))
    changed |= _undo_redo(args, session)
    changed |= _transform(args, project, session, cameras)
    changed |= _delete(args, session, cloud)
    if changed:
        project.save_edit_list(None if session.is_empty() else session.to_json())
    _print_list(project.name, session)
    return 0


def _replace_list(args: argparse.Namespace, project: Any, session: Any, count: int) -> tuple[Any, bool]:
    """``--clear`` and ``--apply FILE``: the session that replaces the list, and whether it did."""
    from splatstudio.io.errors import load_json_text
    from splatstudio.model.edits import EditsError, EditSession, StaleEdits
    from splatstudio.model.library import LibraryError

    changed = False
    if args.clear:
        session = EditSession(count, session.fingerprint)
        changed = True
        print("cleared the edit list")
    if args.apply is not None:
        path = Path(args.apply)
        data = load_json_text(path, path.read_text(encoding="utf-8"))
        data = data.get("edit_list", data) if isinstance(data, dict) else data
        try:
            session = EditSession.from_json(data, count, session.fingerprint)
        except StaleEdits as exc:
            raise LibraryError(f"{path}: {exc}: it was made on another model than {project.name!r}'s result") \
                from None
        except EditsError as exc:
            raise LibraryError(f"{path}: {exc}") from None
        changed = True
        print(f"applied {len(session.edits)} edit(s) from {path}")
    return session, changed


def _undo_redo(args: argparse.Namespace, session: Any) -> bool:
    """``--undo N`` then ``--redo N``; whether anything was undone or redone."""
    changed = False
    for steps, step, verb, done_words in ((args.undo, session.undo, "undo", "undone"),
                                          (args.redo, session.redo, "redo", "redone")):
        for _ in range(steps):
            done = step()
            if done is None:
                print(f"nothing more to {verb}")
                break
            changed = True
            print(f"{done_words}: {done}")
    return changed


def _transform(args: argparse.Namespace, project: Any, session: Any, cameras: Path | None) -> bool:
    """``--level`` (from the photos' cameras) and ``--origin X,Y,Z``; whether either changed the frame."""
    from splatstudio.model.library import LibraryError
    from splatstudio.model.transform import TransformError, level_from_up, origin_at

    changed = False
    try:
        if args.level:
            from splatstudio.render.camera import CameraSpecError, average_up, load_training_cameras

            try:
                poses = [c.pose for c in load_training_cameras(cameras)] if cameras is not None else []
            except (CameraSpecError, OSError, ValueError) as exc:
                raise LibraryError(f"project {project.name!r}: its cameras cannot be read ({exc})") from None
            if not poses:
                raise LibraryError(f"project {project.name!r} has no photos' cameras to level by")
            up = session.transform.apply_direction(average_up(poses))
            changed |= session.apply_transform(level_from_up(up), "level from the cameras") is not None
        if args.origin is not None:
            point = _numbers(args.origin, 3, "--origin")
            changed |= session.apply_transform(origin_at(point), "set the origin") is not None
    except TransformError as exc:
        raise EditUsageError(str(exc)) from None
    return changed


def _delete(args: argparse.Namespace, session: Any, cloud: Any) -> bool:
    """``--delete-box`` and ``--delete-sphere`` (in the edited frame); whether they deleted anything."""
    from splatstudio.render.selection import in_box, in_sphere

    changed = False
    positions = None
    for option, text, count in (("--delete-box", args.delete_box, 6), ("--delete-sphere", args.delete_sphere, 4)):
        if text is None:
            continue
        v = _numbers(text, count, option)
        positions = session.transform.apply(cloud.positions) if positions is None else positions
        if count == 6:
            lo, hi = np.minimum(v[:3], v[3:]), np.maximum(v[:3], v[3:])
            mask = in_box(positions, (lo + hi) / 2, (hi - lo) / 2)
        else:
            if v[3] <= 0:
                raise EditUsageError(f"--delete-sphere: a radius must be more than 0, got {v[3]:g}")
            mask = in_sphere(positions, v[:3], v[3])
        edit = session.delete(mask, "delete a box" if count == 6 else "delete a sphere")
        print(f"{option}: " + (edit.describe() if edit is not None else "no splat left to delete there"))
        changed |= edit is not None
    return changed


def _print_list(name: str, session: Any) -> None:
    print(f"edits of {name} ({session.count:,} splats):")
    if not session.edits:
        print("  none")
    for i, edit in enumerate(session.edits, start=1):
        print(f"  {i}. {edit.describe()}")
    if session.undone:
        print("undone (--redo brings back):")
        for edit in session.undone:
            print(f"  - {edit.describe()}")
    print(f"result: {session.summary()}")


def apply_saved_edits(project: Any, cloud: Any, options: Any, ignore: bool) -> Any:
    """``options`` with the project's saved hand edits for exporting ``cloud``: the deleted splats added to
    ``remove`` and the transform set (said on the terminal). A raw export (another model) goes without them,
    said; edits made on another result, or a damaged edits file, are an error naming the way out."""
    from splatstudio.model.edits import EditsError, EditSession, model_fingerprint
    from splatstudio.model.library import LibraryError

    if ignore:
        return options
    stored = project.read_edits().get("edit_list")
    if stored is None:
        return options
    try:
        session = EditSession.from_json(stored, len(cloud), model_fingerprint(cloud))
    except EditsError as exc:
        if options.raw:
            print("note: the saved edits apply to the filtered result; the trainer's output is exported without "
                  "them")
            return options
        raise LibraryError(f"project {project.name!r}: the saved edits cannot be applied: {exc}; "
                           f"`splatstudio edit {project.name!r} --clear` forgets them, `--no-edits` exports "
                           "without them") from None
    if not session.deleted.any() and session.transform.is_identity():
        return options
    print(f"edits: {session.summary()}")
    remove = options.remove
    if session.deleted.any():
        remove = session.deleted.copy() if remove is None else np.asarray(remove, dtype=bool) | session.deleted
    return dataclasses.replace(options, remove=remove,
                               transform=None if session.transform.is_identity() else session.transform)
