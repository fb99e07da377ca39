"""What going through Ray costs per stage (issue 24): the same project run here and on a Ray cluster, stage by
stage — wall seconds each way, the stage's own seconds (its record), and the bytes shipped to the worker and
brought back.

    # the generated sample scene (24 photos, 640x480) on a head + one worker started on this machine
    .venv/bin/python benchmarks/ray_overhead.py

    # monstree (../shared/data/monstree/images), or any photo folder; an existing cluster with --address
    .venv/bin/python benchmarks/ray_overhead.py ../shared/data/monstree/images --set iterations=2000
    .venv/bin/python benchmarks/ray_overhead.py --address ray://gpu-box:10001

Both runs use the real runners of ``splatstudio run`` (``StageRunner`` and ``RemoteStageRunner``) on two
copies of one freshly imported project, local first. The cluster started here is the tests' (a head and one
worker node, one CPU each: tests/cluster/ray_cluster.py). Needs the cluster extra.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from splatstudio.model.library import Library
from splatstudio.model.project import STAGES, Project
from splatstudio.model.settings import load_settings, parse_assignments

REPO = Path(__file__).resolve().parent.parent
TINY = {"iterations": 300, "min_image_size": 200}


def run_plan(runner, project: Project) -> dict[str, float]:
    """Wall seconds of each stage (from its start to the next one's, or to the end)."""
    from splatstudio.pipeline.plan import plan_run

    starts: list[tuple[str, float]] = []
    outcome = runner.run(plan_run(project), on_stage=lambda stage: starts.append((stage, time.monotonic())))
    end = time.monotonic()
    if outcome.status != "done":
        raise SystemExit(f"{project.name}: {outcome.status} at {outcome.stage}: {outcome.message}")
    return {stage: (starts[i + 1][1] if i + 1 < len(starts) else end) - start for i, (stage, start) in
            enumerate(starts)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", nargs="?", help="a photo folder (default: the generated sample scene)")
    parser.add_argument("--address", help="a running cluster (default: start a head and a worker here)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"settings of the project (default: {', '.join(f'{k}={v}' for k, v in TINY.items())})")
    args = parser.parse_args(argv)

    from splatstudio.model.images import import_photos
    from splatstudio.pipeline.remote import RemoteStageRunner
    from splatstudio.pipeline.runner import StageRunner

    with tempfile.TemporaryDirectory(prefix="splatstudio-ray-bench-") as tmp:
        root = Path(tmp)
        os.environ["SPLATSTUDIO_CONFIG_DIR"] = str(root / "config")
        photos = args.photos
        if photos is None:
            from splatstudio.model.sample import generate_sample

            photos = str(generate_sample(root / "photos").directory)
        library = Library(root / "library")
        values = {**TINY, **parse_assignments(args.set)}
        project = library.create_project("here", load_settings(environ={}, overrides=values))
        report = import_photos(project.images_dir, project.path("import.json"), [photos], project.settings)
        shutil.copytree(project.folder, library.folder / "ray")
        remote = Project(library.folder / "ray")
        remote.rename("ray")
        print(f"{len(report.accepted)} photos from {photos}; settings {values}", flush=True)

        quiet = lambda stage, event: None  # noqa: E731
        local_wall = run_plan(StageRunner(project, quiet), project)
        cluster = None
        address = args.address
        if address is None:
            sys.path.insert(0, str(REPO / "tests" / "cluster"))
            from ray_cluster import LocalRayCluster

            cluster = LocalRayCluster(root / "ray-cluster").start()
            address = cluster.address
        try:
            runner = RemoteStageRunner(remote, quiet, address)
            print(f"cluster {address}: {runner.prepare()}", flush=True)
            ray_wall = run_plan(runner, remote)
        finally:
            if cluster is not None:
                cluster.stop()

        here, there = project.stage_records(), remote.stage_records()
        shipped = {work.stage: (work.shipped_bytes, work.returned_bytes) for work in runner.done}
        print(f"\n{'stage':<10} {'local s':>8} {'ray s':>8} {'overhead':>9} {'stage s here/ray':>17} "
              f"{'shipped MB':>11} {'back MB':>8}")
        for stage in STAGES:
            sent, back = shipped.get(stage, (0, 0))
            print(f"{stage:<10} {local_wall[stage]:8.2f} {ray_wall[stage]:8.2f} "
                  f"{ray_wall[stage] - local_wall[stage]:+9.2f} "
                  f"{here[stage].duration:8.2f}/{there[stage].duration:<8.2f} {sent / 1e6:11.2f} {back / 1e6:8.2f}")
        total_local, total_ray = sum(local_wall.values()), sum(ray_wall.values())
        print(f"{'total':<10} {total_local:8.2f} {total_ray:8.2f} {total_ray - total_local:+9.2f} "
              f"{'':>17} {sum(s for s, _ in shipped.values()) / 1e6:11.2f} "
              f"{sum(b for _, b in shipped.values()) / 1e6:8.2f}")
        for work in runner.done:
            biggest = sorted(work.returned_files.items(), key=lambda item: -item[1])[:3]
            print(f"  {work.stage} brought back {len(work.returned_files)} files, the largest "
                  + ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in biggest))
        print(f"held-out PSNR here {here['train'].figures.get('test_psnr')}, ray {there['train'].figures.get('test_psnr')}"
              f"; load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
