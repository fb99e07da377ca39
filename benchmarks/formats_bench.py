#!/usr/bin/env python3
"""Read/write speed and size of every registered splat format, and the memory of a large conversion.

    python benchmarks/formats_bench.py [--count 1000000] [--sh-degree 3] [--runs 3] [--formats sog,spz]
                                       [--decimate 0.25] [--convert-count 5000000] [--dir /tmp]

For each format (all registered ones, or --formats): median write and read seconds over --runs, bytes per
splat; decimation of the cloud to --decimate of its splats (the most visible, as `export --target-count`
does; 0 skips it); then PLY -> .splat conversion time against the time to read the PLY (target: within
2x), and the peak memory of converting --convert-count splats PLY -> .splat in a fresh process, as a
multiple of one in-memory copy of the cloud (target: at most two copies). Figures print as JSON lines with
the load average (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from splatstudio.io.decimate import keep_most_important
from splatstudio.io.formats import FORMATS, convert, load_splats, save_splats
from splatstudio.model.splatcloud import SplatCloud, sh_rest_count


def make_cloud(n: int, degree: int, seed: int = 0) -> SplatCloud:
    """A plausible trained scene: clustered positions, small scales, mostly opaque, modest SH."""
    rng = np.random.default_rng(seed)
    return SplatCloud(
        positions=rng.normal(0.0, 2.0, (n, 3)).astype(np.float32),
        scales=rng.normal(-4.5, 0.8, (n, 3)).astype(np.float32),
        rotations=rng.normal(0.0, 1.0, (n, 4)).astype(np.float32),
        opacities=rng.normal(1.0, 2.0, n).astype(np.float32),
        sh_dc=rng.normal(0.0, 1.0, (n, 3)).astype(np.float32),
        sh_rest=rng.normal(0.0, 0.1, (n, sh_rest_count(degree), 3)).astype(np.float32),
    )


def cloud_bytes(cloud: SplatCloud) -> int:
    return sum(a.nbytes for a in (cloud.positions, cloud.scales, cloud.rotations, cloud.opacities, cloud.sh_dc,
                                  cloud.sh_rest))


def timed(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_formats(args: argparse.Namespace, work: Path) -> None:
    cloud = make_cloud(args.count, args.sh_degree)
    if args.decimate:
        keep = max(1, round(args.count * args.decimate))
        seconds = timed(lambda: keep_most_important(cloud, keep), args.runs)
        print(json.dumps({"decimate": args.decimate, "splats": args.count, "kept": keep,
                          "seconds": round(seconds, 3), "load_avg": os.getloadavg()[0]}), flush=True)
    chosen = sorted(FORMATS) if not args.formats else ["." + f.strip().lstrip(".") for f in args.formats.split(",")]
    for ext in chosen:
        path = work / f"bench{ext}"
        write_s = timed(lambda p=path: save_splats(cloud, p), args.runs)
        read_s = timed(lambda p=path: load_splats(p), args.runs)
        size = path.stat().st_size
        print(json.dumps({"format": ext, "splats": args.count, "sh_degree": args.sh_degree,
                          "write_s": round(write_s, 3), "read_s": round(read_s, 3),
                          "bytes_per_splat": round(size / args.count, 2), "file_mb": round(size / 1e6, 1),
                          "load_avg": os.getloadavg()[0]}), flush=True)
    if ".ply" not in chosen:
        return
    ply, splat = work / "bench.ply", work / "convert.splat"
    read_s = timed(lambda: load_splats(ply), args.runs)
    convert_s = timed(lambda: convert(ply, splat), args.runs)
    print(json.dumps({"ply_to_splat_s": round(convert_s, 3), "ply_read_s": round(read_s, 3),
                      "ratio": round(convert_s / read_s, 2), "target_ratio": 2.0,
                      "load_avg": os.getloadavg()[0]}), flush=True)


def _vm_hwm_kb() -> int:
    """This process's peak resident memory (VmHWM: reset at exec, unlike ru_maxrss which a child inherits
    from the parent that forked it)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def convert_child(src: str, dst: str) -> None:
    """In a fresh process: convert and print the peak RSS above the baseline after imports."""
    base = _vm_hwm_kb()
    t0 = time.perf_counter()
    result = convert(src, dst)
    peak = _vm_hwm_kb()
    print(json.dumps({"seconds": time.perf_counter() - t0, "peak_extra_mb": (peak - base) / 1024,
                      "splats": result.written}))


def bench_memory(args: argparse.Namespace, work: Path) -> None:
    cloud = make_cloud(args.convert_count, args.sh_degree, seed=1)
    one_copy = cloud_bytes(cloud)
    src, dst = work / "big.ply", work / "big.splat"
    save_splats(cloud, src)
    del cloud
    out = subprocess.run([sys.executable, __file__, "--convert-child", str(src), str(dst)], capture_output=True,
                         text=True, check=True)
    child = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps({"convert_splats": args.convert_count, "ply_mb": round(src.stat().st_size / 1e6),
                      "seconds": round(child["seconds"], 2), "peak_extra_mb": round(child["peak_extra_mb"]),
                      "one_copy_mb": round(one_copy / 2**20), "copies": round(child["peak_extra_mb"] * 2**20 / one_copy, 2),
                      "target_copies": 2.0, "load_avg": os.getloadavg()[0]}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--sh-degree", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--formats", default="", help="comma-separated extensions to time (default: every format)")
    ap.add_argument("--decimate", type=float, default=0.25, help="fraction of splats to keep (0 skips it)")
    ap.add_argument("--convert-count", type=int, default=5_000_000, help="0 skips the memory measurement")
    ap.add_argument("--dir", default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--convert-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.convert_child:
        return convert_child(*args.convert_child)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        bench_formats(args, work)
        if args.convert_count:
            bench_memory(args, work)


if __name__ == "__main__":
    main()
