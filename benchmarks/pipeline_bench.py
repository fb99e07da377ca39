"""Benchmark the pipeline stages: stage times on a photo set, today's SfM against the new default on the
shared photo sets, and structure from motion on generated video-like sequences with known cameras.

    # stage times of one photo set (median / min / max over several runs)
    .venv/bin/python benchmarks/pipeline_bench.py ../shared/data/monstree/images --runs 3 --until undistort

    # today's SfM against the new default, interleaved, on the shared sets
    .venv/bin/python benchmarks/pipeline_bench.py compare --sets monstree lund sacre_coeur --rounds 3

    # a generated sequence of the sample scene with known cameras (50, 100, 150 frames)
    .venv/bin/python benchmarks/pipeline_bench.py sequence --frames 50 100 150

Each run creates a fresh project in a temporary library and runs the real stage processes (the same commands
as `splatstudio run`). ``compare`` and ``sequence`` run every configuration of a set one after the other in
each round, alternating which goes first, so a change in the machine's load hits both; they print each
run's load average (1 minute) beside its figures. "today" is the SfM before issue 20, reached through
settings: features at 1024 px, every pair matched, the incremental mapper first; "new" is the defaults.
``--config NAME:KEY=VALUE,KEY=VALUE`` adds another configuration (e.g. ``global:sfm_mapper=global``).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from splatstudio.model.library import Library
from splatstudio.model.project import STAGES, Project
from splatstudio.model.settings import Settings, load_settings, parse_assignments

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SFM_STAGES = ("features", "matching", "mapping", "undistort")
TODAY = {"sfm_max_image_size": 1024, "max_features": 8192, "matcher": "exhaustive", "sfm_mapper": "incremental"}


# ------------------------------------------------------------------------------------------ stage times

def stage_times(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", nargs="+")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--until", choices=STAGES, default=STAGES[-1])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="splatstudio-bench-") as tmp:
            library = Library(Path(tmp) / "library")
            settings = load_settings(environ={}, overrides=parse_assignments(args.set))
            project = library.create_project(f"bench-{run}", settings)
            from splatstudio.model.images import import_photos

            started = time.perf_counter()
            report = import_photos(project.images_dir, project.path("import.json"), args.photos, settings)
            import_seconds = time.perf_counter() - started
            command = [sys.executable, "-m", "splatstudio", "--library", str(library.folder), "run",
                       project.name, "--until", args.until]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                print(result.stdout[-3000:], result.stderr[-3000:], sep="\n")
                return 1
            records = project.stage_records()
            for stage, record in records.items():
                times[stage].append(record.duration or 0.0)
            row = {"import_s": round(import_seconds, 2), "accepted": len(report.accepted)}
            if "mapping" in records:
                m = records["mapping"].figures
                row.update(registered=m["registered"], total=m["total"], points=m["points"],
                           reproj_px=m["mean_reprojection_error"])
            if "train" in records:
                t = records["train"].figures
                row.update(gaussians=t.get("num_gaussians"), test_psnr=t.get("test_psnr"),
                           s_per_it=t.get("sec_per_iter_median"))
            print(f"run {run + 1}/{args.runs}: " + ", ".join(f"{s} {records[s].duration:.1f}s" for s in records)
                  + f" | {row}", flush=True)

    print(f"\n{'stage':<12} {'median s':>9} {'min':>7} {'max':>7}  (n={args.runs})")
    total = 0.0
    for stage in STAGES:
        if times[stage]:
            med = statistics.median(times[stage])
            total += med
            print(f"{stage:<12} {med:9.1f} {min(times[stage]):7.1f} {max(times[stage]):7.1f}")
    print(f"{'total':<12} {total:9.1f}")
    return 0


# ------------------------------------------------------------------------------------- shared machinery

def _configs(extra: list[str], names: list[str]) -> dict[str, dict[str, object]]:
    configs: dict[str, dict[str, object]] = {"today": dict(TODAY), "new": {}}
    for item in extra:
        name, _, assignments = item.partition(":")
        configs[name] = parse_assignments([a for a in assignments.split(",") if a])
    return {name: configs[name] for name in names}


def _template(library: Library, name: str, photos: list[str]) -> Project:
    from splatstudio.model.images import import_photos

    project = library.create_project(name, Settings())
    import_photos(project.images_dir, project.path("import.json"), photos, project.settings)
    return project


def _run_sfm(library: Library, template: Project, name: str, overrides: dict[str, object]) -> dict:
    """Copy the imported template project, apply ``overrides``, run features..undistort; figures of the run."""
    target = library.folder / name
    shutil.copytree(template.folder, target, ignore=shutil.ignore_patterns(".lock"))
    project = Project(target)
    project.rename(name)
    project.set_settings(Settings().updated(overrides))
    load = os.getloadavg()[0]
    row: dict = {"project": project}
    for stage in SFM_STAGES:  # one stage a process, to measure each one's CPU time
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = subprocess.run([sys.executable, "-m", "splatstudio", "--library", str(library.folder), "run", name,
                                 "--from", stage, "--until", stage], capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        row[f"{stage}_cpu"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        if result.returncode != 0:
            break
    row.update(ok=result.returncode == 0, load=round((load + os.getloadavg()[0]) / 2, 2))
    records = project.stage_records()
    for stage in SFM_STAGES:
        row[stage] = records[stage].duration if stage in records and records[stage].duration else math.nan
    if "matching" in records:
        row["pairs"] = records["matching"].figures.get("pairs", records["matching"].figures.get("matched_pairs"))
        row["matcher"] = records["matching"].figures.get("matcher")
    mapping = records.get("mapping")
    if mapping is not None and mapping.figures:
        m = mapping.figures
        row.update(registered=m.get("registered", 0), total=m.get("total"), points=m.get("points", 0),
                   reproj=m.get("mean_reprojection_error", math.nan), strategy=m.get("strategy", ""),
                   steps=len(m.get("attempts", [])))
    else:
        row.update(registered=0, total=len(project.image_names()), points=0, reproj=math.nan, strategy="failed",
                   steps=0)
        if result.returncode != 0:
            row["error"] = (result.stderr.strip().splitlines() or ["?"])[-1][:300]
    row["sfm"] = sum(row[stage] for stage in SFM_STAGES if not math.isnan(row[stage]))
    row["cpu"] = sum(row.get(f"{stage}_cpu", 0.0) for stage in SFM_STAGES)
    return row


def _median(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and not math.isnan(r[key])]
    return statistics.median(values) if values else math.nan


def _print_row(label: str, row: dict) -> None:
    steps = " ".join(f"{row[s]:6.1f}" for s in SFM_STAGES)
    print(f"{label:<28} {steps} {row['sfm']:7.1f} {row['cpu']:7.1f}  {row['registered']:>3}/{row.get('total', '?'):<3} "
          f"{row['points']:>6} {row['reproj']:6.3f} {row.get('pairs', ''):>6}  load {row['load']:.2f}  "
          f"{row.get('strategy', '')}" + (f"  ERROR {row['error']}" if row.get("error") else ""), flush=True)


HEADER = (f"{'run':<28} {'feat':>6} {'match':>6} {'map':>6} {'undis':>6} {'SfM s':>7} {'CPU s':>7}  {'reg':>7} "
          f"{'points':>6} {'px':>6} {'pairs':>6}")


def _summary(results: dict[tuple[str, str], list[dict]], sets: list[str], configs: list[str]) -> None:
    print("\nmedians per set and configuration (wall seconds per step and in all, CPU seconds of all steps; "
          "ratio = median of the per-round ratios to the first configuration, wall / CPU; px = mean reprojection "
          "error)")
    print(f"{'set / config':<28} {'feat':>6} {'match':>6} {'map':>6} {'undis':>6} {'SfM s':>7} {'CPU s':>7}  "
          f"{'reg':>7} {'points':>6} {'px':>6} {'pairs':>6}  {'ratio wall/CPU':>14}  load (min-max)")
    for name in sets:
        base_rows = results.get((name, configs[0]), [])
        for config in configs:
            rows = results.get((name, config), [])
            if not rows:
                continue
            steps = " ".join(f"{_median(rows, s):6.1f}" for s in SFM_STAGES)
            loads = [r["load"] for r in rows]
            regs = sorted({f"{r['registered']}/{r.get('total')}" for r in rows})
            ratios = [(r["sfm"] / b["sfm"], r["cpu"] / b["cpu"]) for r, b in zip(rows, base_rows, strict=False)
                      if b["sfm"] and b["cpu"]]
            ratio = (f"{statistics.median(x for x, _ in ratios):.2f} / {statistics.median(y for _, y in ratios):.2f}"
                     if ratios else "")
            print(f"{name + ' / ' + config:<28} {steps} {_median(rows, 'sfm'):7.1f} {_median(rows, 'cpu'):7.1f}  "
                  f"{','.join(regs):>7} {_median(rows, 'points'):6.0f} {_median(rows, 'reproj'):6.3f} "
                  f"{_median(rows, 'pairs'):6.0f}  {ratio:>14}  {min(loads):.2f}-{max(loads):.2f}  (n={len(rows)})")


# ----------------------------------------------------------------------------------------------- compare

def _config_options(parser: argparse.ArgumentParser, rounds: int) -> None:
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--config", action="append", default=[], metavar="NAME:KEY=VALUE,...")
    parser.add_argument("--only", nargs="+", default=None, help="configurations to run (default: today new)")


def _configs_of(args: argparse.Namespace) -> dict:
    """The configurations ``--only`` / ``--config`` ask for, said with the load average at the start."""
    configs = _configs(args.config, args.only or ["today", "new"])
    print(f"configurations: {configs}; load average at start {os.getloadavg()}", flush=True)
    return configs


def compare(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pipeline_bench.py compare")
    parser.add_argument("--sets", nargs="+", default=["monstree", "lund", "sacre_coeur"])
    _config_options(parser, rounds=3)
    args = parser.parse_args(argv)
    configs = _configs_of(args)
    names = list(configs)
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="splatstudio-bench-") as tmp:
        library = Library(Path(tmp) / "library")
        templates = {}
        for name in args.sets:
            folder = SHARED / name / "images"
            if not folder.is_dir():
                print(f"skipping {name}: {folder} is not there")
                continue
            templates[name] = _template(library, f"tpl-{name}", [str(folder)])
        print(HEADER)
        for round_ in range(args.rounds):
            order = names if round_ % 2 == 0 else names[::-1]
            for name, template in templates.items():
                for config in order:
                    row = _run_sfm(library, template, f"{name}-{config}-{round_}", configs[config])
                    results.setdefault((name, config), []).append(row)
                    _print_row(f"{name} {config} #{round_ + 1}", row)
                    shutil.rmtree(row.pop("project").folder, ignore_errors=True)
    _summary(results, list(templates), names)
    print(f"load average at end {os.getloadavg()}")
    return 0


# ---------------------------------------------------------------------------------------------- sequence

def render_sequence(folder: Path, count: int, width: int = 400, height: int = 300, seed: int = 0) -> dict:
    """``count`` frames of one smooth loop around the sample scene (a walk with the camera bobbing up and
    down and the distance changing), like a video's frames; returns the true poses by frame name."""
    import numpy as np
    from PIL import Image

    from splatstudio.model.sample import (
        HORIZONTAL_FOV_DEG,
        LOOK_AT,
        Intrinsics,
        build_scene,
        look_at_camera,
        render_view,
    )

    scene = build_scene(seed)
    intrinsics = Intrinsics.from_fov_x(width, height, HORIZONTAL_FOV_DEG)
    folder.mkdir(parents=True, exist_ok=True)
    poses = {}
    for i in range(count):
        t = i / count
        azimuth = 2 * math.pi * t
        elevation = math.radians(30 + 8 * math.sin(4 * math.pi * t))
        distance = 4.4 + 0.4 * math.sin(6 * math.pi * t)
        centre = LOOK_AT + distance * np.array([math.cos(elevation) * math.cos(azimuth),
                                                math.cos(elevation) * math.sin(azimuth), math.sin(elevation)])
        camera = look_at_camera(f"frame_{i + 1:04d}.jpg", centre, LOOK_AT + 0.1 * np.array([math.sin(azimuth), 0, 0]))
        path = folder / camera.name
        if not path.exists():
            Image.fromarray(render_view(scene, camera, intrinsics)).save(path, quality=92)
        poses[camera.name] = (camera.rotation, camera.translation)
    return poses


def sequence(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pipeline_bench.py sequence")
    parser.add_argument("--frames", type=int, nargs="+", default=[50, 100, 150])
    _config_options(parser, rounds=1)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "splatstudio-sequence-frames",
                        help="where rendered frames are kept between runs")
    args = parser.parse_args(argv)
    from splatstudio.io.colmap import read_model
    from splatstudio.model.poses import pose_errors

    configs = _configs_of(args)
    names = list(configs)
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="splatstudio-bench-") as tmp:
        library = Library(Path(tmp) / "library")
        templates, truths = {}, {}
        for count in args.frames:
            started = time.perf_counter()
            folder = args.cache / f"loop-{count}"
            truths[count] = render_sequence(folder, count)
            templates[count] = _template(library, f"tpl-seq-{count}", [str(folder / n) for n in sorted(truths[count])])
            print(f"{count} frames ready in {time.perf_counter() - started:.0f} s", flush=True)
        print(HEADER + "   position error % (median / max), rotation deg (median)")
        for round_ in range(args.rounds):
            order = names if round_ % 2 == 0 else names[::-1]
            for count, template in templates.items():
                for config in order:
                    row = _run_sfm(library, template, f"seq{count}-{config}-{round_}", configs[config])
                    project = row.pop("project")
                    sparse = project.path("sfm", "sparse", "0")
                    if sparse.is_dir():
                        model = read_model(sparse)
                        estimated = {img.name: (img.rotation_matrix(), img.tvec) for img in model.images.values()}
                        errors = pose_errors(estimated, truths[count])
                        row["position"] = (100 * errors.median_position, 100 * errors.max_position)
                        row["rotation"] = errors.median_rotation_deg
                    results.setdefault((f"{count} frames", config), []).append(row)
                    _print_row(f"{count} frames {config} #{round_ + 1}", row)
                    if "position" in row:
                        print(f"{'':<28} position error {row['position'][0]:.3f} % median, {row['position'][1]:.3f} % "
                              f"max of the scene size; rotation {row['rotation']:.3f} deg median; matching "
                              f"{row['matching'] / count:.3f} s ({row['matching_cpu'] / count:.3f} CPU s) a frame, "
                              f"{row.get('pairs', 0) / count:.1f} pairs a frame", flush=True)
                    shutil.rmtree(project.folder, ignore_errors=True)
    _summary(results, [f"{count} frames" for count in args.frames], names)
    print(f"load average at end {os.getloadavg()}")
    return 0


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["compare"]:
        return compare(argv[1:])
    if argv[:1] == ["sequence"]:
        return sequence(argv[1:])
    return stage_times(argv)


if __name__ == "__main__":
    sys.exit(main())
