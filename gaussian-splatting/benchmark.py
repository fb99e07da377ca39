#!/usr/bin/env python3
"""Per-iteration benchmark of the trainer (forward + backward + Adam), plus an optional full training run.

  python benchmark.py [-s /work/shared/data/monstree/colmap] [--resolutions 2 1] [--counts 0 50000 100000]
                      [--iters 30] [--warmup 5] [--threads N] [--backend cpu] [--stages]
  python benchmark.py --full [--full_iterations 7000] [--full_resolution 2] [-m DIR] [-- TRAINER ARGS...]
  python benchmark.py --compare COMMIT [--resolutions 2 1] [--counts 0 50000 100000] [--thread_counts 1 2]
                      [--rounds 2] [--ply TRAINED.ply]

--compare runs this benchmark for the trainer of COMMIT (extracted with git archive into a cache folder)
and for this checkout, alternating, each configuration in a fresh process per round, and prints s/it, CPU
per iteration, cores kept busy and the process's peak RSS for both with their ratios.

Count 0 means the SfM initialisation as is; larger counts are reached by jittered copies of the SfM
Gaussians (smaller scales so the coverage stays comparable): round, faint Gaussians, unlike a trained
scene's; --ply times a trained model instead (e.g. a Balanced run's point_cloud.ply).  Figures are medians over --iters iterations
after --warmup iterations; wall-clock and process CPU time are both reported (the machine may be shared).
"""
import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# the trainer whose kernels are timed: this checkout's, or another's (--compare with --ply runs this script
# against an older trainer's gstrain so that both load the same trained model)
TRAINER = os.environ.get("BENCH_TRAINER_DIR", HERE)
sys.path.insert(0, TRAINER)
# the threads wait as that trainer's own train.py makes them (older trainers: asleep, PASSIVE); what the user
# set is kept, and is all that --compare passes on to both sides
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
USER_WAITING = {k: os.environ[k] for k in WAIT_VARIABLES if k in os.environ}
try:
    from gstrain.waiting import configure_waiting
except ImportError:
    def configure_waiting():
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
configure_waiting()

import torch  # noqa: E402
from gstrain.dataset import load_scene  # noqa: E402
from gstrain.losses import fused_train_loss, train_loss  # noqa: E402
from gstrain.model import GaussianModel  # noqa: E402
from gstrain.raster_cpu import set_threads  # noqa: E402
from gstrain.rasterize import render  # noqa: E402

DEFAULT_SRC = "/work/shared/data/monstree/colmap"


def grow(model, target, seed=0):
    """Jittered copies of the initial Gaussians until `target` Gaussians exist."""
    n = model.num
    if target <= n:
        return
    g = torch.Generator().manual_seed(seed)
    reps = -(-target // n)
    p = {k: v.detach() for k, v in model.params.items()}
    idx = torch.arange(n).repeat(reps)[:target]
    scale = torch.exp(p["log_scales"][idx])
    new = {k: v[idx].clone() for k, v in p.items()}
    new["means"] = new["means"] + torch.randn(target, 3, generator=g) * scale
    shrink = float(reps) ** (1.0 / 3.0)
    new["log_scales"] = new["log_scales"] - torch.log(torch.tensor(shrink))
    model._set_params(new)
    model.reset_stats()


def bench(scene, count, iters, warmup, backend, stages, sh_degree=3, ply=None):
    model = GaussianModel(sh_degree)
    if ply:  # a trained model: anisotropic, with the opacities and sizes training gives (count is ignored)
        model.load_ply(ply)
    else:
        model.create_from_points(scene.xyz, scene.rgb, scene.extent)
        grow(model, count)
    model.setup_optimizer()
    model.active_sh_degree = sh_degree
    bg = torch.zeros(3)
    cams = [c.render_camera() for c in scene.train]
    # the trainer's loop reads the statistics in place; an older trainer (--compare with --ply runs this script
    # against it) takes the visible rows gathered
    in_place = "full" in inspect.signature(model.add_densification_stats).parameters
    wall, cpu = [], []
    st = {"render_fwd": [], "loss": [], "backward": [], "adam": []}
    for i in range(warmup + iters):
        vi = i % len(cams)
        t0, c0 = time.perf_counter(), time.process_time()
        out = render(model, cams[vi], bg, backend=backend, sh_degree=model.active_sh_degree)
        t1 = time.perf_counter()
        view = scene.train[vi]
        gt = view.image.cuda() if backend == "cuda" else getattr(view, "pixels", None)
        if gt is None:  # an older trainer (--compare with --ply) keeps float images only
            gt = view.image
        loss = (train_loss if backend == "cuda" else fused_train_loss)(out["image"], gt)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        with torch.no_grad():
            vis = out["idx"]
            if in_place:
                model.add_densification_stats(vis, out["means2d"].grad, out["radii"], out["grad_scale"], full=True)
            else:
                model.add_densification_stats(vis, out["means2d"].grad[vis], out["radii"][vis], out["grad_scale"])
        model.optimizer.step(model.params)
        model.zero_grad()
        t4, c4 = time.perf_counter(), time.process_time()
        if i >= warmup:
            wall.append(t4 - t0)
            cpu.append(c4 - c0)
            st["render_fwd"].append(t1 - t0)
            st["loss"].append(t2 - t1)
            st["backward"].append(t3 - t2)
            st["adam"].append(t4 - t3)
    res = {"num_gaussians": model.num, "s_per_it_median": statistics.median(wall), "s_per_it_min": min(wall),
           "cpu_s_per_it_median": statistics.median(cpu)}
    if stages:
        res["stages_median"] = {k: statistics.median(v) for k, v in st.items()}
    return res


def full_run(args):
    """One real training run; its JSON events are kept in MODEL/events.jsonl and summarised."""
    out_dir = args.model_path or os.path.join("/tmp", f"splat_bench_{int(time.time())}")
    os.makedirs(out_dir, exist_ok=True)
    cmd = [sys.executable, os.path.join(HERE, "train.py"), "-s", args.source, "-m", out_dir, "--iterations",
           str(args.full_iterations), "--eval", "--test_iterations",
           *[str(i) for i in range(1000, args.full_iterations, 1000)], str(args.full_iterations),
           "--progress", "json", "--quiet", "--resolution", str(args.full_resolution), *args.train_args]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    t0 = time.time()
    evs = []
    with open(os.path.join(out_dir, "events.jsonl"), "w") as log, \
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        for line in p.stdout:
            if line.startswith("{"):
                log.write(line)
                log.flush()
                evs.append(json.loads(line))
        err = p.stderr.read()
    wall = time.time() - t0
    evals = {e["iteration"]: (e["psnr"], e["ssim"]) for e in evs if e["event"] == "eval"}
    done = next((e for e in evs if e["event"] == "done"), {})
    prog = [e for e in evs if e["event"] == "progress"]
    # s/it near given Gaussian counts: median over progress windows whose count is within 20 %
    by_count = {}
    for target in (10_000, 50_000, 100_000, 200_000):
        near = [e["sec_per_iter"] for e in prog if abs(e["num_gaussians"] - target) <= 0.2 * target]
        if near:
            by_count[target] = round(statistics.median(near), 4)
    # the quality criterion: held-out PSNR at the end minus at iteration 2000 (positive = still improving)
    final = evals.get(args.full_iterations)
    gain = round(final[0] - evals[2000][0], 3) if final and 2000 in evals and args.full_iterations > 2000 else None
    print(json.dumps({"full_run": {
        "exit_code": p.returncode, "iterations": args.full_iterations, "resolution": args.full_resolution,
        "trainer_args": args.train_args,
        "wall_sec": round(wall, 1), "peak_rss_mb": done.get("peak_rss_mb"),
        "num_gaussians": done.get("num_gaussians"), "eval_psnr_ssim": evals, "heldout_psnr_gain_from_2000": gain,
        "s_per_it_median": round(statistics.median(e["sec_per_iter"] for e in prog), 4) if prog else None,
        "s_per_it_near_count": by_count, "load_avg_at_end": os.getloadavg(),
        "model_path": out_dir}}, indent=1))
    if p.returncode != 0:
        print(err[-2000:], file=sys.stderr)


def _trainer_at(commit):
    """gaussian-splatting/ of `commit`, extracted once into a cache folder (numba caches its kernels there)."""
    root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "splatstudio-bench",
                        f"trainer-{commit}")
    if not os.path.isfile(os.path.join(root, "gaussian-splatting", "benchmark.py")):
        os.makedirs(root, exist_ok=True)
        archive = subprocess.run(["git", "-C", os.path.dirname(HERE), "archive", commit, "gaussian-splatting"], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", root], input=archive, check=True)
    return os.path.join(root, "gaussian-splatting")


def _run_config(folder, args, res, count, threads):
    """One configuration in a process of its own: its JSON result and the process's peak RSS in MB (GNU time's
    maximum resident set size)."""
    script = os.path.join(HERE if args.ply else folder, "benchmark.py")
    cmd = ["/usr/bin/time", "-f", "MAXRSS_KB %M", sys.executable, script, "-s",
           args.source, "--resolutions", str(res), "--counts", str(count), "--threads", str(threads), "--iters",
           str(args.iters), "--warmup", str(args.warmup)] + (["--ply", args.ply] if args.ply else [])
    env = {k: v for k, v in os.environ.items() if k not in WAIT_VARIABLES}
    env.update(USER_WAITING, BENCH_TRAINER_DIR=folder)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    rss = [int(x.split()[1]) / 1024.0 for x in p.stderr.splitlines() if x.startswith("MAXRSS_KB")]
    if p.returncode != 0 or not lines:
        raise SystemExit(f"benchmark in {folder} failed: {p.stderr[-1500:]}")
    return lines[-1], (rss[-1] if rss else None)


def compare(args):
    old_dir = _trainer_at(args.compare)
    print(f"# compare {args.compare} (old) with this checkout (new); load_avg_at_start={os.getloadavg()}", flush=True)
    rows = []
    for res in args.resolutions:
        for count in args.counts:
            for threads in args.thread_counts:
                got = {"old": [], "new": []}
                for rnd in range(args.rounds):
                    order = (("old", old_dir), ("new", HERE)) if rnd % 2 == 0 else (("new", HERE), ("old", old_dir))
                    for name, folder in order:
                        got[name].append(_run_config(folder, args, res, count, threads))
                row = {"resolution": res, "count": count, "threads": threads}
                for name in ("old", "new"):
                    r = got[name]
                    row[name] = {"s_per_it": statistics.median(x[0]["s_per_it_median"] for x in r),
                                 "cpu_s_per_it": statistics.median(x[0]["cpu_s_per_it_median"] for x in r),
                                 "peak_rss_mb": max(x[1] for x in r), "width": r[0][0]["width"],
                                 "height": r[0][0]["height"], "num_gaussians": r[0][0]["num_gaussians"]}
                row["ratio_s_per_it"] = round(row["new"]["s_per_it"] / row["old"]["s_per_it"], 3)
                row["ratio_peak_rss"] = round(row["new"]["peak_rss_mb"] / row["old"]["peak_rss_mb"], 3)
                row["load_avg_1min"] = os.getloadavg()[0]
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| size | Gaussians | threads | old s/it | new s/it | new/old | old cores | new cores | old RSS | new RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        o, n = r["old"], r["new"]
        print(f"| {n['width']}x{n['height']} | {n['num_gaussians']:,} | {r['threads']} | {o['s_per_it']:.4f} | "
              f"{n['s_per_it']:.4f} | **{r['ratio_s_per_it']:.2f}** | {o['cpu_s_per_it'] / o['s_per_it']:.2f} | "
              f"{n['cpu_s_per_it'] / n['s_per_it']:.2f} | {o['peak_rss_mb']:.0f} MB | {n['peak_rss_mb']:.0f} MB |")
    print(f"\n# load_avg_at_end={os.getloadavg()}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-s", "--source", default=DEFAULT_SRC)
    ap.add_argument("--resolutions", nargs="+", type=int, default=[2, 1])
    ap.add_argument("--counts", nargs="+", type=int, default=[0, 50000, 100000])
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--stages", action="store_true")
    ap.add_argument("--ply", default=None, help="time a trained model (its point_cloud.ply) instead of the SfM points "
                    "grown to --counts (with --compare: both trainers load it)")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--full_iterations", type=int, default=7000)
    ap.add_argument("--full_resolution", type=int, default=2)
    ap.add_argument("-m", "--model_path", default=None)
    ap.add_argument("--compare", default=None, metavar="COMMIT", help="also run the trainer of COMMIT, interleaved")
    ap.add_argument("--thread_counts", nargs="+", type=int, default=[1, 2], help="with --compare")
    ap.add_argument("--rounds", type=int, default=2, help="with --compare: runs of each side per configuration")
    args, args.train_args = ap.parse_known_args()
    if args.train_args[:1] == ["--"]:
        args.train_args = args.train_args[1:]
    if args.train_args and not args.full:
        ap.error(f"unrecognised arguments: {' '.join(args.train_args)} (trainer arguments go with --full)")
    if args.full:
        return full_run(args)
    if args.ply:
        args.counts = [0]  # a trained model has its own count: one configuration per resolution
    if args.compare:
        return compare(args)
    threads = set_threads(args.threads or os.cpu_count() or 1)
    spin = os.environ.get("GOMP_SPINCOUNT", "none: threads sleep")
    print(f"# threads={threads} backend={args.backend} load_avg_at_start={os.getloadavg()} spin_count={spin}",
          flush=True)
    for res in args.resolutions:
        scene = load_scene(args.source, res, eval_split=False)
        W, H = scene.train[0].width, scene.train[0].height
        for count in args.counts:
            r = bench(scene, count, args.iters, args.warmup, args.backend, args.stages, ply=args.ply)
            r.update(resolution=res, width=W, height=H)
            r["load_avg_1min"] = os.getloadavg()[0]
            r["spin_count"] = int(os.environ.get("GOMP_SPINCOUNT", "0"))
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
