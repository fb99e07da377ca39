"""Guided clean-up timings (issue 23, item 1): scoring a model once, then the mask for a strength.

    .venv/bin/python benchmarks/cleanup_bench.py [--splats 1000000] [--cameras 30] [--repeat 3]

Prints the median seconds of ``cleanup_scores`` (once per model, in a worker) and of ``cleanup_mask`` (every
move of the strength), and the load average: run it on a quiet machine, or read the figures as ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from dataset_builders import ring_views  # noqa: E402

from splatstudio.model.cleanup import cleanup_mask, cleanup_scores  # noqa: E402
from splatstudio.model.splatcloud import SplatCloud  # noqa: E402


def cloud_of(n: int, seed: int = 0) -> SplatCloud:
    rng = np.random.default_rng(seed)
    return SplatCloud(positions=rng.normal(scale=0.6, size=(n, 3)).astype(np.float32),
                      scales=np.log(rng.uniform(0.002, 0.05, (n, 3))).astype(np.float32),
                      rotations=np.tile([1, 0, 0, 0], (n, 1)).astype(np.float32),
                      opacities=rng.normal(size=n).astype(np.float32),
                      sh_dc=rng.normal(size=(n, 3)).astype(np.float32))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splats", type=int, default=1_000_000)
    parser.add_argument("--cameras", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cloud, views = cloud_of(args.splats), ring_views(args.cameras)
    score_times, mask_times = [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        scores = cleanup_scores(cloud, views)
        score_times.append(time.perf_counter() - start)
        for strength in (0.25, 0.5, 0.75):
            start = time.perf_counter()
            mask, _ = cleanup_mask(scores, strength)
            mask_times.append(time.perf_counter() - start)
    print(f"{args.splats:,} splats, {args.cameras} cameras, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"scores (once per model): median {statistics.median(score_times):.2f} s of {args.repeat}")
    print(f"mask (each strength):    median {1000 * statistics.median(mask_times):.1f} ms of {len(mask_times)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
