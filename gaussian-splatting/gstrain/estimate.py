"""What a run will cost on this machine, answered without a dataset and without importing torch.

`train.py --estimate --views V --width W --height H [--iterations N | --time_budget MIN] [...]` prints one JSON
object: the plan (iterations, resolution levels, Gaussian budget), the expected training time, the time
per iteration and the peak memory at the budget, and the same two figures at each of `--detail_steps`
budgets (the app's "scene detail" list shows them).  The app calls it when it needs a duration before a
dataset exists (the new-project page: only the photos' number and size are known then).

The time comes from the trainer's cost model (plan.CostModel) times this machine's speed factor, which
every CPU training run measures and keeps in the speed profile (`speed_profile_path()`, JSON, keyed by
thread count); with no profile yet the development VM's figures are used and `"calibrated": false` says
so.  The memory model's constants are the trainer's peak RSS measured on monstree (NOTES.md).
"""
from __future__ import annotations

import json
import os
import sys
import time
from types import SimpleNamespace

from .plan import CostModel, make_plan, plan_cost, resolve_sparse, solve_iterations

PROFILE_FORMAT = 3  # 3: the cost model refitted in session 18 (a factor kept against an older one is dropped)
# Peak RSS of a training run ~ base + per Gaussian + per photo pixel (all views), fitted to the whole runs
# of NOTES.md (session 11: monstree Fast, Balanced and time budgets, sacre_coeur Fast)
MEMORY_BASE_MB = 415.0
MEMORY_PER_GAUSSIAN_KB = 1.6
MEMORY_PER_PIXEL_B = 9.0
# an app run of the trainer spends this long loading before the first iteration (numba cache, images)
STARTUP_SEC = 8.0


def speed_profile_path() -> str:
    env = os.environ.get("SPLATSTUDIO_TRAINER_PROFILE")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "splatstudio", "trainer-speed.json")


def load_speed_factor(threads: int) -> tuple[float, bool]:
    """(speed factor, measured on this machine?) for runs with `threads` threads."""
    try:
        with open(speed_profile_path(), encoding="utf-8") as f:
            data = json.load(f)
        entry = data.get("threads", {}).get(str(int(threads)))
        if data.get("format") == PROFILE_FORMAT and entry and float(entry["speed_factor"]) > 0:
            return float(entry["speed_factor"]), True
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return 1.0, False


def save_speed_factor(threads: int, factor: float, weight: float = 0.5) -> None:
    """Blend a run's measured speed factor into the profile (atomically; a broken file is replaced)."""
    if not factor > 0:
        return
    path = speed_profile_path()
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict) or data.get("format") != PROFILE_FORMAT:
            raise ValueError
    except (OSError, ValueError):
        data = {"format": PROFILE_FORMAT, "threads": {}}
    entry = data.setdefault("threads", {}).get(str(int(threads)))
    old = float(entry["speed_factor"]) if isinstance(entry, dict) and entry.get("speed_factor") else None
    new = factor if old is None else (1 - weight) * old + weight * factor
    data["threads"][str(int(threads))] = {"speed_factor": round(new, 4), "updated": time.strftime("%Y-%m-%d %H:%M:%S"),
                                          "runs": int((entry or {}).get("runs", 0)) + 1}
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs the next estimate its calibration


def memory_mb(gaussians: int, pixels_all_views: float) -> float:
    return MEMORY_BASE_MB + MEMORY_PER_GAUSSIAN_KB * gaussians / 1024.0 + MEMORY_PER_PIXEL_B * pixels_all_views / 2**20


def estimate(args) -> dict:
    threads = args.threads if args.threads > 0 else (os.cpu_count() or 1)
    threads = min(threads, os.cpu_count() or threads)
    views, W, H = max(1, args.views), max(1, args.width), max(1, args.height)
    resolve_sparse(args, views)
    factor, calibrated = load_speed_factor(threads)
    cost = CostModel(s=factor)
    pixels = float(W * H)
    min_side = min(W, H)
    budget_sec = 60.0 * args.time_budget

    def make(n):
        return make_plan(args, n, min_side)

    initial = 10_000  # a typical SfM point count; the budget dominates the cost
    if budget_sec > 0:
        left = max(1.0, budget_sec - STARTUP_SEC)
        n = solve_iterations(make, lambda p: plan_cost(p, pixels, initial, cost), 1,
                             args.iterations or 200_000, left)
    else:
        n = args.iterations or 30000
    plan = make(n)
    train_sec = plan_cost(plan, pixels, initial, cost)
    budget = plan.max_gaussians or initial
    out = {"event": "estimate", "iterations": plan.iterations, "strategy": plan.strategy,
           "max_gaussians": plan.max_gaussians, "dropout": args.dropout, "levels": [list(x) for x in plan.levels],
           "expected_train_sec": round(train_sec, 1), "expected_total_sec": round(train_sec + STARTUP_SEC, 1),
           "sec_per_iter_full_resolution": round(cost(pixels, budget), 4),
           "memory_mb": round(memory_mb(budget, pixels * views)), "threads": threads, "speed_factor": round(factor, 3),
           "calibrated": calibrated, "describe": plan.describe()}
    if args.detail_steps:
        out["detail_steps"] = [{"max_gaussians": g, "sec_per_iter": round(cost(pixels, g or budget), 4),
                                "memory_mb": round(memory_mb(g or budget, pixels * views))}
                               for g in args.detail_steps]
    return out


def main(argv=None) -> int:
    from .cli import build_parser
    args = build_parser().parse_args(argv)
    print(json.dumps(estimate(SimpleNamespace(**vars(args)))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
