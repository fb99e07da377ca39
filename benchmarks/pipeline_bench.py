"""Benchmark the pipeline stages on a real photo set: median stage times over several runs.

    .venv/bin/python benchmarks/pipeline_bench.py ../shared/data/monstree/images --runs 3 --until undistort
    .venv/bin/python benchmarks/pipeline_bench.py PHOTOS --runs 1 --set iterations=7000

Each run creates a fresh project in a temporary library and runs the real stage processes (the same
commands as `splatstudio reconstruct`). Prints per-stage median / min / max seconds, registered photos
and, when training ran, Gaussians and held-out PSNR.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from splatstudio.model.library import Library
from splatstudio.model.project import STAGES
from splatstudio.model.settings import load_settings, parse_assignments


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", nargs="+")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--until", choices=STAGES, default=STAGES[-1])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    figures: list[dict] = []
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
            figures.append(row)
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


if __name__ == "__main__":
    sys.exit(main())
