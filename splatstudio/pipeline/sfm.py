"""Structure-from-motion stages with pycolmap (CPU, no system COLMAP needed).

features → matching → mapping → undistort. Each stage runs its pycolmap call in a worker thread with a
cancellation token (SIGTERM stops it), turns COLMAP's own log lines into progress, and reports figures a
user can act on: registered / total photos and which were dropped, mean reprojection error, points, and,
when mapping fails, why in plain words and what to try.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

from PIL import Image

from splatstudio.model.atomic import read_json, write_json_atomic
from splatstudio.pipeline.colmap_engines import MAPPING_STRATEGIES, make_engine
from splatstudio.pipeline.entry import StageContext, StageFailed

DATABASE = "sfm/database.db"
SPARSE = "sfm/sparse"
EXHAUSTIVE_LIMIT = 150
MIN_REGISTERED = 3


def _pycolmap():
    import pycolmap

    return pycolmap


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
    pycolmap = _pycolmap()
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

def choose_matcher(setting: str, count: int) -> str:
    if setting != "auto":
        return setting
    return "exhaustive" if count <= EXHAUSTIVE_LIMIT else "sequential"


def run_matching(ctx: StageContext) -> dict[str, Any]:
    pycolmap = _pycolmap()
    database = ctx.project.path(DATABASE)
    names = ctx.project.image_names()
    kind = choose_matcher(ctx.settings.matcher, len(names))
    block = re.compile(r"Processing block \[(\d+)/(\d+), (\d+)/(\d+)\]")
    seq = re.compile(r"Matching image \[(\d+)/(\d+)\]")

    def hook(line: str) -> None:
        if match := block.search(line):
            i, n, j, m = map(int, match.groups())
            done = (i - 1) * m + j - 1
            ctx.progress(done / (n * m), f"matching block {done + 1}/{n * m}")
        elif match := seq.search(line):
            i, n = map(int, match.groups())
            ctx.progress((i - 1) / n, f"matching photo {i}/{n}")

    ctx.tee_hook(hook)
    shutil.copyfile(database, database.with_suffix(".db.bak"))  # cancel/failure restores the features
    try:
        db = pycolmap.Database.open(database)
        try:  # a re-run matches afresh (COLMAP would otherwise skip pairs matched before)
            db.clear_two_view_geometries()
            db.clear_matches()
        finally:
            db.close()
        if kind == "exhaustive":
            ctx.log(f"exhaustive matching of {len(names) * (len(names) - 1) // 2} pairs")
        else:
            ctx.log("sequential matching (each photo with its 10 neighbours in name order)")
        make_engine(ctx, _threads(ctx)).match(database, kind, len(names))
    except BaseException:
        database.with_suffix(".db.bak").replace(database)
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
    return {"matcher": kind, "matched_pairs": matched, "verified_pairs": verified}


# ------------------------------------------------------------------------------------------- mapping

def _reconstruction_figures(rec: Any) -> dict[str, Any]:
    return {"registered": rec.num_reg_images(), "points": rec.num_points3D(),
            "mean_reprojection_error": round(float(rec.compute_mean_reprojection_error()), 4),
            "mean_track_length": round(float(rec.compute_mean_track_length()), 3)}


def run_mapping(ctx: StageContext) -> dict[str, Any]:
    project = ctx.project
    names = project.image_names()
    database = project.path(DATABASE)
    out_root = project.path(SPARSE)
    work_root = project.path("sfm", "sparse.part")
    shutil.rmtree(work_root, ignore_errors=True)
    total = len(names)
    best: Any = None
    best_label = ""
    attempts_report: list[dict[str, Any]] = []
    engine = make_engine(ctx, _threads(ctx))
    registering = re.compile(r"Registering image #\d+ \((\d+)\)")
    for attempt, label in enumerate(MAPPING_STRATEGIES):
        out = work_root / str(attempt)
        out.mkdir(parents=True)
        registered = [0]

        def on_image(registered=registered, label=label) -> None:
            registered[0] += 1
            ctx.progress(min(registered[0] / total, 0.99), f"{label}: placed {registered[0]} of {total} photos")

        def hook(line: str, registered=registered, label=label) -> None:  # the external executable's log
            if match := registering.search(line):
                registered[0] = int(match.group(1))
                ctx.progress(min(registered[0] / total, 0.99),
                             f"{label}: placed {registered[0]} of {total} photos")

        ctx.log(f"mapping attempt {attempt + 1}: {label} ({engine.name})")
        ctx.tee_hook(hook)
        try:
            models = engine.map(label, database, project.images_dir, out, on_image)
        finally:
            ctx.tee_hook(None)
        candidates = sorted(models, key=lambda r: r.num_reg_images(), reverse=True)
        top = candidates[0] if candidates else None
        attempts_report.append({"strategy": label, "models": len(models),
                                "registered": top.num_reg_images() if top else 0})
        ctx.log(f"  {len(models)} model(s); largest registers {attempts_report[-1]['registered']} of {total}")
        if top is not None and (best is None or top.num_reg_images() > best.num_reg_images()):
            best, best_label = top, label
        if best is not None and best.num_reg_images() >= max(MIN_REGISTERED, math.ceil(0.8 * total)):
            break
        ctx.check_cancelled()

    if best is None or best.num_reg_images() < MIN_REGISTERED:
        shutil.rmtree(work_root, ignore_errors=True)
        message, hint = diagnose_failure(database, names, best.num_reg_images() if best else 0)
        raise StageFailed(message, hint)

    tmp_model = out_root.with_name("sparse.best")
    shutil.rmtree(tmp_model, ignore_errors=True)
    (tmp_model / "0").mkdir(parents=True)
    best.write_binary(str(tmp_model / "0"))
    shutil.rmtree(out_root, ignore_errors=True)
    tmp_model.replace(out_root)
    shutil.rmtree(work_root, ignore_errors=True)

    registered_names = {image.name for image in best.images.values() if image.has_pose}
    dropped = sorted(set(names) - registered_names)
    figures = {"total": total, **_reconstruction_figures(best), "dropped": dropped, "strategy": best_label,
               "attempts": attempts_report}
    _write_points(project.path("output", "sparse_points.ply"), best)
    write_json_atomic(project.path("sfm", "report.json"), figures)
    ctx.log(f"placed {figures['registered']} of {total} photos ({best_label}); {figures['points']} points, "
            f"mean reprojection error {figures['mean_reprojection_error']:.3f} px")
    if dropped:
        ctx.log(f"warning: {len(dropped)} photo(s) could not be placed and are left out: {', '.join(dropped)}")
    return figures


def _write_points(path: Path, rec: Any) -> None:
    """COLMAP points3D → coloured PLY (what the reference trainer calls input.ply)."""
    import numpy as np

    from splatstudio.io.ply import write_points_ply

    points = list(rec.points3D.values())
    xyz = np.array([p.xyz for p in points], dtype=np.float32).reshape(-1, 3)
    rgb = np.array([p.color for p in points], dtype=np.uint8).reshape(-1, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_points_ply(path, xyz, rgb)


def diagnose_failure(database: Path, names: list[str], registered: int) -> tuple[str, str]:
    """Explain in a photographer's words why no model could be built, from the features and matches."""
    pycolmap = _pycolmap()
    db = pycolmap.Database.open(database)
    try:
        images = {image.image_id: image.name for image in db.read_all_images()}
        features = {name: db.num_keypoints_for_image(image_id) for image_id, name in images.items()}
        links: dict[str, int] = {name: 0 for name in images.values()}
        pair_ids, inliers = db.read_two_view_geometry_num_inliers()
        strong = 0
        for pair_id, count in zip(pair_ids, inliers, strict=True):
            if count >= 30:
                id1, id2 = pycolmap.pair_id_to_image_pair(pair_id)
                links[images[id1]] += 1
                links[images[id2]] += 1
                strong += 1
    finally:
        db.close()
    few_features = sorted(n for n, c in features.items() if c < 300)
    isolated = sorted(n for n, c in links.items() if c == 0)
    head = (f"only {registered} of {len(names)} photos could be placed in 3D" if registered
            else f"no 3D model could be built from the {len(names)} photos")
    reasons = []
    if len(few_features) > len(names) / 3:
        reasons.append(f"{len(few_features)} photos have too few distinctive details "
                       f"(e.g. {', '.join(few_features[:3])}): plain walls, sky, blur or darkness")
    if isolated:
        reasons.append(f"{len(isolated)} photos overlap with no other photo "
                       f"(e.g. {', '.join(isolated[:3])})")
    if strong < len(names) - 1:
        reasons.append(f"only {strong} photo pairs share enough features; a connected set needs at least "
                       f"{len(names) - 1}")
    if not reasons:
        reasons.append("the photos overlap but no pair sees the scene from different enough positions to "
                       "start a model (too little parallax: photos taken from one spot, or a flat scene)")
    hint = ("walk around the subject taking a photo every few steps so that each part appears in 3+ photos "
            "with 60-80% overlap; avoid zoom changes, motion blur, reflective or moving subjects; "
            "or try camera_model=SIMPLE_PINHOLE and matcher=exhaustive")
    return f"{head}: " + "; ".join(reasons), hint


# ------------------------------------------------------------------------------------------- undistort

def run_undistort(ctx: StageContext) -> dict[str, Any]:
    pycolmap = _pycolmap()
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
