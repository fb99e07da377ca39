"""Peak memory of a photo import against the number of photos (findings file, defect 5: it grew ~36 MB per
12 MP photo because every photo was decoded ahead of the one thread storing them).

    .venv/bin/python benchmarks/import_memory.py                       # 25 / 100 / 400 photos of 12 MP
    .venv/bin/python benchmarks/import_memory.py --counts 25 100 --old /tmp/old-tree --rounds 2

Generates one 4000x3000 JPEG (a phone photo's size) and makes every photo different by a comment segment
(same pixels, new content hash, so none is taken for a duplicate). Each import is the real
``splatstudio new NAME FOLDER`` in a fresh process and a fresh library; its peak RSS (the high-water mark) and
time are printed. With ``--old CHECKOUT`` the same imports run with that checkout's code too, old and new
alternating, for a ratio measured in one run.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parents[1]


def _base_photo(path: Path, seed: int = 0) -> bytes:
    """A 12 MP photo that compresses like a real one (smooth shapes and fine grain), about 3-4 MB."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:3000, 0:4000].astype(np.float32)
    picture = np.empty((3000, 4000, 3), np.float32)
    for channel in range(3):
        fx, fy, phase = rng.uniform(0.001, 0.01, 2).tolist() + [rng.uniform(0, 6.3)]
        picture[..., channel] = 128 + 90 * np.sin(x * fx + phase) * np.cos(y * fy)
    picture += rng.normal(0, 12, picture.shape).astype(np.float32)
    Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=92)
    return path.read_bytes()


def _photo_set(pool: Path, count: int) -> Path:
    """``count`` different photos (hard links into one pool of distinct files)."""
    pool.mkdir(exist_ok=True)
    base = pool / "base.bin"
    data = base.read_bytes() if base.exists() else _base_photo(base)
    folder = pool.parent / f"set-{count}"
    if folder.exists():
        return folder
    folder.mkdir()
    for i in range(count):
        photo = pool / f"photo-{i:04d}.jpg"
        if not photo.exists():
            comment = f"SplatStudio import benchmark photo {i}".encode()
            segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
            photo.write_bytes(data[:2] + segment + data[2:])  # after the start-of-image marker
        os.link(photo, folder / photo.name)
    return folder


def _measure(folder: Path) -> None:
    """Child process: import ``folder`` with the CLI in-process; print seconds and peak RSS in MB."""
    from splatstudio.cli import main

    with tempfile.TemporaryDirectory(prefix="splatstudio-importmem-") as library:
        os.environ["SPLATSTUDIO_LIBRARY"] = library
        started = time.perf_counter()
        with open(os.devnull, "w") as quiet:
            stdout, sys.stdout = sys.stdout, quiet
            try:
                code = main(["new", "Bench", str(folder)])
            finally:
                sys.stdout = stdout
        elapsed = time.perf_counter() - started
    print(f"{code} {elapsed:.2f} {_peak_rss_mb():.1f}")


def _peak_rss_mb() -> float:
    """This process's peak RSS. Linux's ``ru_maxrss`` keeps the parent's peak across fork and exec (it
    would show the photo generator's), so read the memory map's own high-water mark where there is one."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def _run(code_root: Path, folder: Path) -> tuple[float, float]:
    env = dict(os.environ, PYTHONPATH=str(code_root))
    done = subprocess.run([sys.executable, __file__, "--measure", str(folder)], capture_output=True, text=True,
                          env=env, cwd=code_root)
    fields = done.stdout.split()
    if done.returncode != 0 or len(fields) != 3 or fields[0] != "0":
        raise SystemExit(f"the import of {folder} with {code_root} failed:\n{done.stdout}{done.stderr}")
    return float(fields[1]), float(fields[2])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[25, 100, 400])
    parser.add_argument("--rounds", type=int, default=1, help="imports per count and code (median printed)")
    parser.add_argument("--old", type=Path, help="another checkout to compare with, in the same run")
    parser.add_argument("--old-max", type=int, default=100, help="largest count to import with --old "
                        "(the old code needs ~36 MB per photo)")
    parser.add_argument("--work", type=Path, help="folder for the generated photos (default: a temporary one)")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        _measure(args.measure)
        return 0

    codes = {"new": HERE} | ({"old": args.old.resolve()} if args.old else {})
    with tempfile.TemporaryDirectory(prefix="splatstudio-importmem-photos-", dir=args.work) as work:
        sets = {count: _photo_set(Path(work) / "pool", count) for count in sorted(args.counts)}
        results: dict[tuple[str, int], list[tuple[float, float]]] = {}
        for _ in range(args.rounds):
            for count in sorted(args.counts):
                for label, root in codes.items():  # old and new alternate
                    if label == "old" and count > args.old_max:
                        continue
                    results.setdefault((label, count), []).append(_run(root, sets[count]))
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"{os.cpu_count()} CPUs; {args.rounds} round(s), medians")
    print(f"{'code':<5} {'photos':>6} {'seconds':>8} {'s/photo':>8} {'peak RSS MB':>12}")
    for (label, count), runs in sorted(results.items()):
        seconds = statistics.median(r[0] for r in runs)
        peak = statistics.median(r[1] for r in runs)
        print(f"{label:<5} {count:>6} {seconds:>8.1f} {seconds / count:>8.2f} {peak:>12.0f}")
    for label in codes:
        peaks = {count: statistics.median(r[1] for r in runs) for (lab, count), runs in results.items()
                 if lab == label}
        if len(peaks) > 1:
            low, high = min(peaks), max(peaks)
            print(f"{label}: peak RSS at {high} photos / at {low} photos = {peaks[high] / peaks[low]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
