"""Structure-from-motion stages with pycolmap (CPU, no system COLMAP needed).

features → matching → mapping → undistort. Each stage runs its pycolmap call in a worker thread with a
cancellation token (SIGTERM stops it), turns COLMAP's own log lines into progress, and reports figures a
user can act on: registered / total photos and which were dropped, mean reprojection error, points, and,
when photos are left out or mapping fails, why in plain words and what to try.

Matching matches every pair of a few photos, and otherwise only the pairs mapping needs
(:mod:`splatstudio.pipeline.pairing`: retrieval by the photos' own features, or sequential with loop closure
for video frames and ordered photos), and says which and why. Mapping climbs a ladder
(:func:`mapping_ladder`): the measured first mapper, the other mapper, a relaxed start, more pairs, fewer
camera parameters, a fixed focal length; it stops once enough photos are placed, skips what cannot help
(photos that share no matches with the placed ones), keeps the largest model, and records every step.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from splatstudio.model.atomic import read_json, write_json_atomic
from splatstudio.pipeline import pairing
from splatstudio.pipeline.colmap_engines import MapperTry, make_engine
from splatstudio.pipeline.context import StageContext, StageFailed
from splatstudio.pipeline.pairing import MatcherChoice
from splatstudio.pipeline.sfm_database import load_pycolmap, number_in_name_order, photo_similarity
from splatstudio.pipeline.sfm_diagnosis import diagnose

DATABASE = "sfm/database.db"
SPARSE = "sfm/sparse"
MIN_REGISTERED = 3
MAPPABLE_INLIERS = 15
"""Matches a verified pair needs for the mappers to use it (COLMAP's default ``min_num_matches``)."""


def _threads(ctx: StageContext) -> int:
    return ctx.settings.colmap_threads or (os.cpu_count() or 1)


# ------------------------------------------------------------------------------------------- features

def camera_groups(images_dir: Path, names: list[str]) -> list[list[str]]:
    """Group photos that should share one camera (intrinsics).

    The frames of one imported video share one camera, in time order (``model.video.frame_sequences``;
    split by size, should a video change size midway), whatever the other photos are. Other photos share
    a camera when their size and EXIF camera (make, model, focal length) agree. Photos without EXIF share
    one only when *every* other photo lacks EXIF and all have the same size (a single camera or frames
    exported from a video); otherwise each gets its own, which is right for internet photo sets.
    Grouping by size also keeps COLMAP from dropping photos held the other way round, which a single
    shared camera would reject. Groups come in the order of their first photo in ``names``.
    """
    from splatstudio.model.video import frame_sequences

    wanted = set(names)
    video_groups: list[list[str]] = []
    in_video: set[str] = set()
    for sequence in frame_sequences(images_dir):
        by_size: dict[tuple[int, int], list[str]] = defaultdict(list)
        for name in sequence:
            if name in wanted and name not in in_video:
                with Image.open(images_dir / name) as image:
                    by_size[image.size].append(name)
                in_video.add(name)
        video_groups.extend(by_size.values())
    photos = [name for name in names if name not in in_video]
    keys: dict[str, tuple[Any, ...]] = {}
    any_exif = False
    for name in photos:
        with Image.open(images_dir / name) as image:
            exif = image.getexif()
            sub = exif.get_ifd(0x8769) if len(exif) else {}
            make, model = exif.get(0x010F), exif.get(0x0110)
            focal = sub.get(0x920A) or sub.get(0xA405)
            has_camera = bool(make or model or focal)
            any_exif |= has_camera
            keys[name] = (image.size, make, model, str(focal) if focal else None) if has_camera else (image.size,)
    if not any_exif and len({key for key in keys.values()}) > 1:
        photo_groups = [[name] for name in photos]
    else:
        groups: dict[tuple[Any, ...], list[str]] = defaultdict(list)
        for name in photos:
            groups[keys[name]].append(name)
        photo_groups = list(groups.values())
    order = {name: index for index, name in enumerate(names)}
    return sorted(video_groups + photo_groups, key=lambda group: order[group[0]])


def run_features(ctx: StageContext) -> dict[str, Any]:
    pycolmap = load_pycolmap()
    project, settings = ctx.project, ctx.settings
    names = project.image_names()
    database = project.path(DATABASE)
    database.parent.mkdir(parents=True, exist_ok=True)
    tmp_database = database.with_suffix(".db.part")
    tmp_database.unlink(missing_ok=True)

    groups = camera_groups(project.images_dir, names)
    ctx.log(f"{len(names)} photos in {len(groups)} camera group(s); camera model {settings.camera_model}, "
            f"up to {settings.max_features} features each at up to {settings.sfm_max_image_size} px, "
            f"{_threads(ctx)} threads")
    done_before = 0
    pattern = re.compile(r"Processed file \[(\d+)/(\d+)\]")

    def hook(line: str) -> None:
        match = pattern.search(line)
        if match:
            count = done_before + int(match.group(1))
            ctx.progress(count / len(names), f"features in {count}/{len(names)} photos")

    ctx.tee_hook(hook)
    engine = make_engine(ctx, _threads(ctx))
    for group in groups:
        engine.extract(tmp_database, project.images_dir, group, single_camera=len(group) > 1)
        done_before += len(group)
    ctx.tee_hook(None)
    number_in_name_order(tmp_database)

    db = pycolmap.Database.open(tmp_database)
    try:
        counts = {image.name: db.num_keypoints_for_image(image.image_id) for image in db.read_all_images()}
        cameras = db.num_cameras()
    finally:
        db.close()
    tmp_database.replace(database)
    missing = sorted(set(names) - set(counts))
    weak = sorted(name for name, n in counts.items() if n < 200)
    if missing:
        ctx.log(f"warning: COLMAP could not read {len(missing)} photo(s): {', '.join(missing)}")
    if weak:
        ctx.log(f"warning: few features (<200) in {', '.join(weak)}: blurred, dark or plain surfaces?")
    values = list(counts.values()) or [0]
    return {"images": len(counts), "cameras": cameras, "features_total": int(sum(values)),
            "features_mean": round(sum(values) / max(len(values), 1)), "features_min": int(min(values)),
            "few_features": weak, "unreadable": missing}


# ------------------------------------------------------------------------------------------- matching

PAIRS_FILE = "sfm/pairs.txt"


def choose_matcher(setting: str, count: int, sequences: list[list[str]] | None = None,
                   ordered_photos: bool = False) -> MatcherChoice:
    """Which pairs to match, and why (see :mod:`splatstudio.pipeline.pairing`)."""
    return pairing.choose_matcher(setting, count, sequences or [], ordered_photos)


def _frame_sequences(images_dir: Path, names: list[str]) -> list[list[str]]:
    """Each imported video's frames in time order (``model.video``), limited to ``names``; ``[]`` when the
    video import is not available or tells nothing."""
    try:
        from splatstudio.model.video import frame_sequences
    except ImportError:
        return []
    try:
        sequences = frame_sequences(images_dir)
    except (OSError, ValueError):
        return []
    wanted = set(names)
    return [kept for sequence in sequences if len(kept := [name for name in sequence if name in wanted]) >= 2]


def plan_pairs(ctx: StageContext, database: Path, names: list[str]) -> tuple[MatcherChoice, list[tuple[str, str]]]:
    """Decide the pairing and list its pairs (an empty list means every pair)."""
    count = len(names)
    setting = ctx.settings.matcher
    sequences = _frame_sequences(ctx.project.images_dir, names)
    if setting == "exhaustive" or (setting == "auto" and count <= pairing.EXHAUSTIVE_LIMIT):
        return choose_matcher(setting, count, sequences), []

    def described(done: int, total: int) -> None:
        ctx.progress(0.1 * done / total, f"choosing pairs: comparing the photos ({100 * done // total}%)")

    scores = photo_similarity(database, names, described)
    ordered = not sequences and pairing.looks_ordered(scores)
    choice = choose_matcher(setting, count, sequences, ordered)
    index = {name: i for i, name in enumerate(names)}
    if choice.kind == "sequential" and not sequences:
        sequences = [list(names)]  # photos in name order (ordered, or sequential asked for)
    chosen = pairing.select_pairs(scores, choice.kind, [[index[n] for n in seq] for seq in sequences])
    return choice, [(names[i], names[j]) for i, j in chosen]


def run_matching(ctx: StageContext) -> dict[str, Any]:
    pycolmap = load_pycolmap()
    database = ctx.project.path(DATABASE)
    pairs_file = ctx.project.path(PAIRS_FILE)
    names = ctx.project.image_names()
    all_pairs = len(names) * (len(names) - 1) // 2
    block = re.compile(r"Processing block \[(\d+)/(\d+), (\d+)/(\d+)\]")
    imported = re.compile(r"Processing block \[(\d+)/(\d+)\]")
    seq = re.compile(r"Matching image \[(\d+)/(\d+)\]")
    start = [0.0]  # the share of the stage spent choosing pairs

    def report(fraction: float, message: str) -> None:
        ctx.progress(start[0] + (1.0 - start[0]) * fraction, message)

    def hook(line: str) -> None:
        if match := block.search(line):
            i, n, j, m = map(int, match.groups())
            done = (i - 1) * m + j - 1
            report(done / (n * m), f"matching block {done + 1}/{n * m}")
        elif match := imported.search(line):
            i, n = map(int, match.groups())
            report((i - 1) / n, f"matching block {i}/{n}")
        elif match := seq.search(line):
            i, n = map(int, match.groups())
            report((i - 1) / n, f"matching photo {i}/{n}")

    shutil.copyfile(database, database.with_suffix(".db.bak"))  # cancel/failure restores the features
    pairs_file.unlink(missing_ok=True)
    try:
        db = pycolmap.Database.open(database)
        try:  # a re-run matches afresh (COLMAP would otherwise skip pairs matched before)
            db.clear_two_view_geometries()
            db.clear_matches()
        finally:
            db.close()
        started = time.monotonic()
        choice, pairs = plan_pairs(ctx, database, names)
        choosing = time.monotonic() - started
        ctx.log(f"pairing: {choice.kind} — {choice.reason}")
        ctx.tee_hook(hook)
        engine = make_engine(ctx, _threads(ctx))
        if choice.kind == "exhaustive":
            ctx.log(f"exhaustive matching of {all_pairs} pairs")
            engine.match_all(database, len(names))
        else:
            start[0] = 0.1
            ctx.log(f"{len(pairs)} of {all_pairs} pairs chosen in {choosing:.1f} s; list in {PAIRS_FILE}")
            tmp = pairs_file.with_suffix(".txt.part")
            tmp.write_text("".join(f"{a} {b}\n" for a, b in pairs), encoding="utf-8")
            tmp.replace(pairs_file)
            engine.match_pairs(database, pairs_file, len(pairs))
    except BaseException:
        database.with_suffix(".db.bak").replace(database)
        pairs_file.unlink(missing_ok=True)
        raise
    finally:
        ctx.tee_hook(None)
    database.with_suffix(".db.bak").unlink(missing_ok=True)
    db = pycolmap.Database.open(database)
    try:
        matched, verified = db.num_matched_image_pairs(), db.num_verified_image_pairs()
    finally:
        db.close()
    ctx.log(f"{verified} of {matched} matched pairs verified geometrically")
    if verified == 0:
        raise StageFailed("no two photos share enough matching features to be related",
                          "take photos with more overlap (each scene point in 3+ photos, 60-80% overlap "
                          "between neighbours) of a textured, static subject")
    return {"matcher": choice.kind, "matcher_reason": choice.reason, "pairs": len(pairs) if pairs else all_pairs,
            "all_pairs": all_pairs, "pairing_seconds": round(choosing, 2), "matched_pairs": matched,
            "verified_pairs": verified}


# ------------------------------------------------------------------------------------------- mapping

FIRST_MAPPER = "incremental"
"""The mapper tried first (setting ``sfm_mapper`` = auto). Chosen from measurements (NOTES, "The right mapper
first"): at equal photos placed and equal error the incremental mapper took less time on most sets; the global
mapper comes second, where it places the sets on which the incremental one finds no starting pair."""

WHY = {
    "global": "the global mapper places every photo at once from all pairs, so no single starting pair "
              "has to be good",
    "incremental": "the incremental mapper grows the model photo by photo from the best starting pair",
    "relaxed": "accepts a weaker first pair of photos (little parallax, few shared features)",
    "pairs": "the chosen pairs may have missed overlaps: the pairs not matched yet are matched too",
    "distortion": "fewer camera parameters: lens distortion is not estimated (it can run away on weak "
                  "geometry)",
    "focal": "the focal length is kept at the photos' EXIF value (or 1.2 x the photo's size) instead of being "
             "estimated",
}


SKIPPED_LABELS = {"more_pairs": "more pairs", "no_distortion": "no lens distortion",
                  "fixed_focal": "no lens distortion, focal length fixed"}


@dataclass(frozen=True)
class Rung:
    """One step of the mapping ladder. ``kind``: ``map`` (map as ``how`` says); ``more_pairs`` (match more
    pairs, then map as the best way so far); ``no_distortion`` / ``fixed_focal`` (the best way so far with
    fewer camera parameters / the focal length fixed too)."""

    kind: str
    why: str
    how: MapperTry | None = None


def mapping_ladder(first: str, matcher: str, engine: str = "pycolmap") -> list[Rung]:
    """The order in which mapping is tried until enough photos are placed.

    ``first`` is the mapper tried first ("global" or "incremental"); ``matcher`` the pairing the matching
    stage used (a non-exhaustive one adds a step that matches more pairs). The steps after the mappers
    relax the camera (fewer parameters, then the focal length fixed) on whichever mapper did best; they
    are resolved by :func:`run_mapping` (their ``how`` is ``None`` here). The external COLMAP 3 executable has
    no global mapper: its steps are left out.
    """
    if first not in ("global", "incremental"):
        raise ValueError(f"unknown mapper {first!r}")
    glob = Rung("map", WHY["global"], MapperTry("global"))
    incremental = Rung("map", WHY["incremental"], MapperTry("incremental"))
    relaxed = Rung("map", WHY["relaxed"], MapperTry("incremental", relaxed_start=True))
    rungs = [glob, incremental, relaxed] if first == "global" else [incremental, glob, relaxed]
    if matcher != "exhaustive":
        rungs.append(Rung("more_pairs", WHY["pairs"]))
    rungs += [Rung("no_distortion", WHY["distortion"]), Rung("fixed_focal", WHY["focal"])]
    if engine != "pycolmap":
        rungs = [rung for rung in rungs if rung.how is None or rung.how.mapper != "global"]
    return rungs


def _reconstruction_figures(rec: Any) -> dict[str, Any]:
    return {"registered": rec.num_reg_images(), "points": rec.num_points3D(),
            "mean_reprojection_error": round(float(rec.compute_mean_reprojection_error()), 4),
            "mean_track_length": round(float(rec.compute_mean_track_length()), 3)}


def _placed(rec: Any) -> set[str]:
    return {image.name for image in rec.images.values() if image.has_pose}


_GLOBAL_PHASES = (("Running rotation averaging", 0.05, "orienting the photos"),
                  ("Running track establishment", 0.1, "linking features into tracks"),
                  ("Running global positioning", 0.15, "placing the photos"),
                  ("Running iterative bundle adjustment", 0.55, "refining"),
                  ("Running iterative retriangulation", 0.85, "refining the points"))


def _mapping_hooks(ctx: StageContext, label: str, total: int, fraction) -> tuple[Any, Any]:
    """Progress for one ladder step: the incremental mapper's per-photo callback and a log-line parser
    (the external executable's "Registering image", the global mapper's phases)."""
    registered = [0]
    registering = re.compile(r"Registering image #\d+ \((\d+)\)")
    bundle = re.compile(r"Global bundle adjustment iteration (\d+) / (\d+)")

    def on_image() -> None:
        registered[0] += 1
        ctx.progress(fraction(min(registered[0] / total, 0.99)), f"{label}: placed {registered[0]} of {total} photos")

    def hook(line: str) -> None:
        if match := registering.search(line):
            registered[0] = int(match.group(1))
            ctx.progress(fraction(min(registered[0] / total, 0.99)),
                         f"{label}: placed {registered[0]} of {total} photos")
            return
        if match := bundle.search(line):
            i, n = map(int, match.groups())
            ctx.progress(fraction(0.55 + 0.3 * i / n), f"{label}: refining ({i}/{n})")
            return
        for text, share, words in _GLOBAL_PHASES:
            if text in line:
                ctx.progress(fraction(share), f"{label}: {words}")
                return

    return on_image, hook


def _match_more_pairs(ctx: StageContext, engine: Any, database: Path, names: list[str], fraction) -> str:
    """The ladder's other pairing: every pair when affordable, else three times the neighbours. Pairs matched
    before are skipped. Returns what was done, in words."""
    count = len(names)
    backup = database.with_suffix(".db.ladder")
    shutil.copyfile(database, backup)
    blocks = re.compile(r"Processing block \[(\d+)/(\d+)(?:, (\d+)/(\d+))?\]")

    def hook(line: str) -> None:
        if match := blocks.search(line):
            i, n, j, m = (int(g) if g else 1 for g in match.groups())
            done = ((i - 1) * m + j - 1) / (n * m)
            ctx.progress(fraction(0.5 * done), f"matching more pairs: block {(i - 1) * m + j}/{n * m}")

    ctx.tee_hook(hook)
    try:
        if count <= pairing.EXHAUSTIVE_AFFORDABLE:
            engine.match_all(database, count)
            done = f"matched every pair ({count * (count - 1) // 2})"
        else:
            scores = photo_similarity(database, names)
            chosen = pairing.select_pairs(scores, "retrieval", neighbours=3 * pairing.RETRIEVAL_NEIGHBOURS)
            pairs_file = ctx.project.path("sfm", "sparse.part", "pairs-more.txt")  # removed with the step's work
            pairs_file.parent.mkdir(parents=True, exist_ok=True)
            pairs_file.write_text("".join(f"{names[i]} {names[j]}\n" for i, j in chosen), encoding="utf-8")
            engine.match_pairs(database, pairs_file, len(chosen))
            done = f"matched each photo with its {3 * pairing.RETRIEVAL_NEIGHBOURS} most similar ({len(chosen)} pairs)"
    except BaseException:
        backup.replace(database)
        raise
    finally:
        ctx.tee_hook(None)
    backup.unlink(missing_ok=True)
    return done


@dataclass
class _Climb:
    """The mapping ladder so far: the photos, their verified links (read again after matching more pairs), the
    largest model and the way that made it, the other models of that way, and every step tried."""

    names: list[str]
    links: dict[str, set[str]]
    best: Any = None
    best_how: MapperTry | None = None
    best_models: list[Any] = field(default_factory=list)
    tried: list[dict[str, Any]] = field(default_factory=list)


def run_mapping(ctx: StageContext) -> dict[str, Any]:
    project = ctx.project
    names = project.image_names()
    database = project.path(DATABASE)
    work_root = project.path("sfm", "sparse.part")
    shutil.rmtree(work_root, ignore_errors=True)
    total = len(names)
    enough = max(MIN_REGISTERED, math.ceil(0.8 * total))
    engine = make_engine(ctx, _threads(ctx))
    matching = project.stage_record("matching")
    matcher = (matching.figures or {}).get("matcher", "exhaustive") if matching else "exhaustive"
    first = FIRST_MAPPER if ctx.settings.sfm_mapper == "auto" else ctx.settings.sfm_mapper
    ladder = mapping_ladder(first, matcher, engine.name)
    ctx.log(f"mapping: up to {len(ladder)} ways, until {enough} of {total} photos are placed")
    climb = _Climb(names, _links(database))
    for step, rung in enumerate(ladder):
        best = climb.best
        if best is not None and best.num_reg_images() >= enough:
            # enough: stop, unless the first way left out photos that share matches with the placed ones;
            # then the other mapper (the second step) gets one try at them
            if best.num_reg_images() == total or step != 1 or not _reachable(climb.links, _placed(best)):
                break
            ctx.log(f"  {total - best.num_reg_images()} photo(s) left out share matches with the placed ones: "
                    "one more try")
        ctx.check_cancelled()
        if best is not None and rung.kind != "more_pairs" and not _reachable(climb.links, _placed(best)):
            reason = ("skipped: the photos left out share no matches with the placed ones, which no mapper "
                      "setting can change")
            climb.tried.append({"step": step + 1, "how": rung.how.label if rung.how else SKIPPED_LABELS[rung.kind],
                                "why": rung.why, "skipped": reason, "registered": 0, "models": 0, "seconds": 0.0,
                                "outcome": reason})
            ctx.log(f"mapping step {step + 1}: {climb.tried[-1]['how']} — {reason}")
            continue
        _climb_step(ctx, engine, climb, ladder, step, work_root)
    return _keep_best(ctx, climb, work_root)


def _climb_step(ctx: StageContext, engine: Any, climb: _Climb, ladder: list[Rung], step: int,
                work_root: Path) -> None:
    """Map with the way of rung `step` (built on the way that did best so far), into ``work_root/step``; a
    larger model than the best becomes the best."""
    project, rung = ctx.project, ladder[step]
    names, database, total = climb.names, project.path(DATABASE), len(climb.names)
    started = time.monotonic()
    base = climb.best_how or ladder[0].how
    assert base is not None
    how = rung.how or base  # the later steps build on the way that did best so far
    span = (step / len(ladder), (step + 1) / len(ladder))

    def fraction(x: float, span=span) -> float:
        return span[0] + (span[1] - span[0]) * x

    def mapping_fraction(x: float, more=rung.kind == "more_pairs") -> float:
        return fraction(0.5 + 0.5 * x if more else x)  # after matching more pairs: the second half

    extra = ""
    if rung.kind == "more_pairs":
        ctx.log(f"mapping step {step + 1}: more pairs — {rung.why}")
        extra = _match_more_pairs(ctx, engine, database, names, fraction) + ", then "
        climb.links = _links(database)
    elif rung.kind == "no_distortion":
        how = MapperTry(base.mapper, base.relaxed_start, fixed_distortion=True)
    elif rung.kind == "fixed_focal":
        how = MapperTry(base.mapper, base.relaxed_start, fixed_distortion=True, fixed_focal=True)
    label = extra + how.label
    out = work_root / str(step)
    out.mkdir(parents=True)
    on_image, hook = _mapping_hooks(ctx, how.label, total, mapping_fraction)
    ctx.log(f"mapping step {step + 1}: {label} — {rung.why}")
    ctx.progress(mapping_fraction(0.0), f"step {step + 1}: {how.label}", force=True)
    ctx.tee_hook(hook)
    try:
        models = engine.map(how, database, project.images_dir, out, on_image)
    except StageFailed as exc:  # one way failing is what the ladder is for
        ctx.log(f"  {exc}")
        models = []
    finally:
        ctx.tee_hook(None)
    models = sorted(models, key=lambda r: r.num_reg_images(), reverse=True)
    top = models[0] if models else None
    entry = {"step": step + 1, "how": label, "why": rung.why, "models": len(models),
             "model_sizes": [m.num_reg_images() for m in models[:5]],
             "registered": top.num_reg_images() if top else 0,
             "mean_reprojection_error": round(float(top.compute_mean_reprojection_error()), 4) if top else None,
             "seconds": round(time.monotonic() - started, 1)}
    entry["outcome"] = _outcome_words(entry, total)
    climb.tried.append(entry)
    ctx.log(f"  {entry['outcome']} in {entry['seconds']} s")
    if top is not None and (climb.best is None or top.num_reg_images() > climb.best.num_reg_images()):
        climb.best, climb.best_how, climb.best_models = top, how, models


def _keep_best(ctx: StageContext, climb: _Climb, work_root: Path) -> dict[str, Any]:
    """Keep the largest model as ``sfm/sparse/0`` with its points and report (why photos were left out), or
    fail saying why none could be built."""
    project, best, tried = ctx.project, climb.best, climb.tried
    names, database, out_root = climb.names, project.path(DATABASE), project.path(SPARSE)
    total = len(names)
    figures_tried = {"total": total, "attempts": tried}
    if best is None or best.num_reg_images() < MIN_REGISTERED:
        diagnosis = diagnose(database, project.images_dir, names, set(), [])
        shutil.rmtree(work_root, ignore_errors=True)
        write_json_atomic(project.path("sfm", "report.json"), {**figures_tried, "failed": True, "registered": 0,
                                                               "diagnosis": diagnosis})
        head = (f"only {best.num_reg_images()} of {total} photos could be placed in 3D" if best is not None
                and best.num_reg_images() else f"no 3D model could be built from the {total} photos")
        raise StageFailed(f"{head}: {diagnosis['cause']}. Tried: {_tried_words(tried)}", diagnosis["advice"])

    tmp_model = out_root.with_name("sparse.best")
    shutil.rmtree(tmp_model, ignore_errors=True)
    (tmp_model / "0").mkdir(parents=True)
    best.write_binary(str(tmp_model / "0"))
    shutil.rmtree(out_root, ignore_errors=True)
    tmp_model.replace(out_root)
    shutil.rmtree(work_root, ignore_errors=True)

    placed = _placed(best)
    dropped = sorted(set(names) - placed)
    assert climb.best_how is not None
    figures = {**figures_tried, **_reconstruction_figures(best), "dropped": dropped,
               "strategy": next(t["how"] for t in tried if t["registered"] == best.num_reg_images())}
    if dropped:
        figures["diagnosis"] = diagnose(database, project.images_dir, names, placed,
                                        [_placed(m) for m in climb.best_models[1:]])
    _write_points(project.path("output", "sparse_points.ply"), best)
    write_json_atomic(project.path("sfm", "report.json"), figures)
    ctx.log(f"placed {figures['registered']} of {total} photos ({figures['strategy']}); {figures['points']} points, "
            f"mean reprojection error {figures['mean_reprojection_error']:.3f} px")
    if dropped:
        diagnosis = figures["diagnosis"]
        ctx.log(f"warning: {len(dropped)} photo(s) could not be placed and are left out: {', '.join(dropped)}")
        ctx.log(f"  why: {diagnosis['cause']}")
        for name, reason in diagnosis["photos"].items():
            ctx.log(f"  {name}: {reason}")
        ctx.log(f"  what to try: {diagnosis['advice']}")
    return figures


def _links(database: Path) -> dict[str, set[str]]:
    """Each photo's partners in geometrically verified pairs (as many inliers as COLMAP's mappers need)."""
    pycolmap = load_pycolmap()
    db = pycolmap.Database.open(database)
    try:
        images = {image.image_id: image.name for image in db.read_all_images()}
        pair_ids, inliers = db.read_two_view_geometry_num_inliers()
    finally:
        db.close()
    links: dict[str, set[str]] = defaultdict(set)
    for pair_id, count in zip(pair_ids, inliers, strict=True):
        if count >= MAPPABLE_INLIERS:
            id1, id2 = pycolmap.pair_id_to_image_pair(pair_id)
            if id1 in images and id2 in images:
                links[images[id1]].add(images[id2])
                links[images[id2]].add(images[id1])
    return links


def _reachable(links: dict[str, set[str]], placed: set[str]) -> bool:
    """Whether a photo left out is linked, through matches, to a placed one (so another way of mapping
    could place it)."""
    return any(other not in placed for name in placed for other in links.get(name, ()))


def _outcome_words(entry: dict[str, Any], total: int) -> str:
    if not entry["models"]:
        return "no model"
    words = f"placed {entry['registered']} of {total} photos"
    if entry["models"] > 1:
        words += f" ({entry['models']} separate models of {', '.join(map(str, entry['model_sizes']))} photos)"
    return words


def _tried_words(tried: list[dict[str, Any]]) -> str:
    return "; ".join(f"{t['how']} ({t['outcome']})" for t in tried)


def _write_points(path: Path, rec: Any) -> None:
    """COLMAP points3D → coloured PLY (what the reference trainer calls input.ply)."""
    import numpy as np

    from splatstudio.io.ply import write_points_ply

    points = list(rec.points3D.values())
    xyz = np.array([p.xyz for p in points], dtype=np.float32).reshape(-1, 3)
    rgb = np.array([p.color for p in points], dtype=np.uint8).reshape(-1, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_points_ply(path, xyz, rgb)


# ------------------------------------------------------------------------------------------- undistort

def run_undistort(ctx: StageContext) -> dict[str, Any]:
    pycolmap = load_pycolmap()
    project = ctx.project
    model = project.path(SPARSE, "0")
    final = project.path("dataset")
    work = project.path("dataset.part")
    shutil.rmtree(work, ignore_errors=True)
    names = project.image_names()
    count = len(names)
    pattern = re.compile(r"Undistorting image \[(\d+)/(\d+)\]")

    def hook(line: str) -> None:
        if match := pattern.search(line):
            i, n = map(int, match.groups())
            ctx.progress(i / n, f"undistorted {i}/{n} photos")

    ctx.tee_hook(hook)
    try:
        make_engine(ctx, _threads(ctx)).undistort(model, project.images_dir, work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        ctx.tee_hook(None)
    # COLMAP writes sparse/*.bin; trainers expect sparse/0/*.bin. Drop the MVS helpers.
    sparse = work / "sparse"
    (work / "sparse0").mkdir()
    for item in sparse.iterdir():
        item.replace(work / "sparse0" / item.name)
    sparse.rmdir()
    (work / "sparse").mkdir()
    (work / "sparse0").replace(work / "sparse" / "0")
    shutil.rmtree(work / "stereo", ignore_errors=True)
    for script in work.glob("run-colmap-*.sh"):
        script.unlink()
    rec = pycolmap.Reconstruction(str(work / "sparse" / "0"))
    sizes = sorted({(cam.width, cam.height) for cam in rec.cameras.values()})
    models = sorted({cam.model_name for cam in rec.cameras.values()})
    written = len(list((work / "images").iterdir()))
    shutil.rmtree(final, ignore_errors=True)
    work.replace(final)
    report = read_json(project.path("sfm", "report.json"), {}) or {}
    ctx.log(f"{written} undistorted photos, cameras {', '.join(models)}, sizes "
            f"{', '.join(f'{w}x{h}' for w, h in sizes)}")
    return {"images": written, "registered": report.get("registered", count), "camera_models": models,
            "sizes": [f"{w}x{h}" for w, h in sizes]}
