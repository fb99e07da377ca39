"""Training entry point (CLI compatible with the reference 3DGS train.py).

What a run does is decided by the Plan (gstrain/plan.py: schedule, resolution levels, Gaussian budget),
the strategy (gstrain/strategy.py: MCMC by default, the reference's adaptive density control with
--strategy adc) and, with --time_budget, the TimeBudget below, which picks the number of iterations from
the speed this machine shows during the run.  This module parses the command line, sets the run up
(`setup`: scene, model or checkpoint, plan, strategy, time budget) and writes its first files; the loop
over the iterations, with the strategy's hooks, evaluation, progress and checkpoints, is gstrain/loop.py.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time

import numpy as np
import torch

from .checkpoint import load_checkpoint, set_rng_state
from .cli import DEFAULT_ITERATIONS, MAX_BUDGET_ITERATIONS, build_parser, check_args  # noqa: F401
from .colmap import DataError
from .dataset import load_scene
from .estimate import load_speed_factor
from .exposure import Exposure
from .loop import EXIT_INTERRUPTED, Run, target, train_loop  # noqa: F401
from .losses import fused_train_loss, train_loss
from .model import GaussianModel
from .plan import CostModel, fmt_minutes, make_plan, plan_cost, resolve_sparse, solve_iterations
from .ply import atomic_write_bytes, write_points_ply
from .progress import Reporter
from .rasterize import render
from .strategy import GaussianDropout, make_strategy, visible_rows  # noqa: F401


def pick_backend(name):
    if name in ("cpu", "reference"):
        return name
    from .raster_cuda import gsplat_available
    ok, why = gsplat_available()
    if name == "cuda" and not ok:
        raise DataError(f"--backend cuda needs a CUDA GPU and the gsplat package ({why})")
    return "cuda" if ok else "cpu"


def write_cfg_args(args):
    ns = argparse.Namespace(data_device=args.data_device, depths="", eval=args.eval, images=args.images,
                            model_path=os.path.abspath(args.model_path), resolution=args.resolution,
                            sh_degree=args.sh_degree, source_path=os.path.abspath(args.source_path),
                            train_test_exp=False, white_background=args.white_background)
    atomic_write_bytes(os.path.join(args.model_path, "cfg_args"), [str(ns).encode("utf-8")])


def write_cameras_json(path, scene):
    cams = scene.test + scene.train  # the reference writes test cameras first
    data = [c.to_json(i) for i, c in enumerate(cams)]
    atomic_write_bytes(path, [json.dumps(data).encode("utf-8")])


class TimeBudget:
    """Chooses the run's number of iterations so that it ends `seconds` after the process started.

    The first plan comes from a few timed renders (CostModel.calibrate); then every `replan_every`
    iterations the rest of the run is re-planned with the measured speed (CostModel.observe), and the
    plan is made again for the new length: the schedule stays a function of the run's share, and what has
    happened (the resolution reached, the Gaussians grown) is never undone.  Evaluation and saving are
    counted in proportion to the training time they have taken so far."""

    def __init__(self, seconds, t_start, make, pixels_full, initial_count, upper, cost, reserve=3.0):
        self.seconds = float(seconds)
        self.t_start = t_start
        self.make = make  # iterations -> Plan
        self.pixels_full = float(pixels_full)
        self.initial = int(initial_count)
        self.upper = int(upper)
        self.reserve = float(reserve)  # the final save and evaluation
        self.cost = cost
        self.train_sec = 0.0
        self.side_sec = 0.0
        self.replan_every = 20

    def remaining(self, now):
        return self.seconds - (now - self.t_start) - self.reserve

    def predict(self, plan, it, current_count, factor_cap):
        """Seconds the iterations after `it` of `plan` are expected to take, side work included."""
        rate = self.side_sec / self.train_sec if self.train_sec > 10.0 else 0.0
        return (1.0 + rate) * plan_cost(plan, self.pixels_full, self.initial, self.cost, it + 1, None, current_count,
                                        factor_cap)

    def choose(self, it, now, current_count, factor_cap):
        """The number of iterations (> it) that fits in what is left of the budget."""
        left = self.remaining(now)
        cheapest = max(self.cost(self.pixels_full / (factor_cap * factor_cap), self.initial), 1e-4)
        high = min(self.upper, it + max(2, int(left / cheapest) + 1))
        low = min(it + 1, high)
        n = solve_iterations(self.make, lambda p: self.predict(p, it, current_count, factor_cap), low, high, left)
        self.replan_every = max(20, n // 60)
        return n

    def account(self, train_sec, side_sec):
        self.train_sec += train_sec
        self.side_sec += side_sec

    def replan(self, it, now, current_count, factor_cap):
        """Called before iteration `it`: a new number of iterations when it is time to re-plan, else None."""
        if it < 2 or it % self.replan_every:
            return None
        return self.choose(it - 1, now, current_count, factor_cap)


def calibrate(model, cams, bg, backend, plan, loss_fn, lambda_dssim, repeats=2):
    """Times forward + backward of the first model at the plan's coarsest and full resolutions (no update,
    the gradients are dropped): samples (pixels, gaussians, seconds) for CostModel.calibrate."""
    samples = []
    factors = sorted({plan.levels[0][1], 1}, reverse=True)
    for r in range(repeats + 1):
        for f in factors:
            cam = cams[r % len(cams)]
            t0 = time.perf_counter()
            out = render(model, cam.level_camera(f), bg, backend=backend, sh_degree=model.active_sh_degree)
            loss = loss_fn(out["image"], target(cam, f, backend, out["image"].device), lambda_dssim)
            loss.backward()
            dt = time.perf_counter() - t0
            model.zero_grad()
            if r > 0:  # the first round loads the kernels
                W, H = cam.level_size(f)
                samples.append((W * H, model.num, dt))
    return samples


class _Interrupt:
    def __init__(self):
        self.signum = None

    def __call__(self, signum, frame):
        self.signum = signum

    def watch_parent(self, every=0.5):
        """Stop as SIGTERM would once this process's parent is gone (it is then adopted: its parent id
        changes), so a killed launcher leaves no trainer running on, on macOS as on Linux."""
        parent = os.getppid()

        def watch():
            while self.signum is None:
                time.sleep(every)
                if os.getppid() != parent:
                    self.signum = signal.SIGTERM
                    return

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def train(argv=None, started=None):
    """started: when the process started (time.time()); a time budget counts from there."""
    args = build_parser().parse_args(argv)
    rep = Reporter(args.progress, args.quiet)
    stop = _Interrupt()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.stop_with_parent:
        stop.watch_parent()
    try:
        return _train(args, rep, stop, started)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1


def _train(args, rep, stop, started=None):
    run = setup(args, rep, started or time.time(), time.process_time())
    if args.plan:
        return print_plan(run)
    write_start(run)
    return train_loop(run, stop)


# ----------------------------------------------------------------------------------------------- setup

def setup(args, rep, t_start, cpu_start):
    """Everything before the first iteration but the files: the backend, the seeds, the scene, the model (new
    or from a checkpoint), the plan, the strategy and, with a time budget, the iterations that fit it."""
    check_args(args)
    backend = pick_backend(args.backend)
    device = "cuda" if backend == "cuda" else "cpu"
    from .raster_cpu import set_threads
    threads = set_threads(args.threads if args.threads > 0 else (os.cpu_count() or 1))
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    scene = load_training_scene(args, rep, backend, threads)
    model, ck = load_model(args, rep, scene, device)
    extra = (ck or {}).get("extra", {})
    bg = torch.tensor([1.0, 1.0, 1.0] if args.white_background else [0.0, 0.0, 0.0], device=device)
    min_side = min(min(c.width, c.height) for c in scene.train)
    plan = make_plan(args, args.iterations or DEFAULT_ITERATIONS, min_side)
    strategy = make_strategy(plan, scene.extent, args)
    if ck is None:
        strategy.initialise(model)
    else:
        strategy.load_state_dict(extra.get("strategy", {}))
    # the cost model predicts the time per iteration (ETA, time budget, --plan) and, measured over the run,
    # becomes this machine's speed profile for estimates without a dataset (gstrain/estimate.py)
    run = Run(args=args, rep=rep, scene=scene, backend=backend, device=device, threads=threads, model=model,
              plan=plan, strategy=strategy, bg=bg, cost=CostModel(s=load_speed_factor(threads)[0]), budget=None,
              min_side=min_side, pixels_full=float(np.mean([c.width * c.height for c in scene.train])),
              initial_count=getattr(strategy, "initial_count", None) or model.num,
              budget_sec=60.0 * args.time_budget, t_start=t_start, cpu_start=cpu_start,
              first_iter=int(ck["iteration"]) if ck is not None else 0, extra=extra)
    if run.budget_sec > 0 or args.plan:
        loss_fn = train_loss if backend == "cuda" else fused_train_loss
        run.cost.calibrate(calibrate(model, scene.train, bg, backend, plan, loss_fn, args.lambda_dssim))
    if run.budget_sec > 0:
        start_budget(run)
    return run


def load_training_scene(args, rep, backend, threads):
    """The dataset, the sparse-capture rule applied to `args`, the output folder made and the run described."""
    scene = load_scene(args.source_path, args.resolution, args.eval, args.images, exif_dir=args.exif_from)
    if not scene.train:
        raise DataError("no training images left after the train/test split")
    sparse = resolve_sparse(args, len(scene.train))
    if not args.plan:
        os.makedirs(args.model_path, exist_ok=True)
    cam = scene.train[0]
    rep.log(f"Output folder: {args.model_path} | backend {backend} | {threads} threads | "
            f"{len(scene.train)} train / {len(scene.test)} test views | {cam.width}x{cam.height}")
    known = sum(c.exposure is not None for c in scene.train + scene.test)
    if known:
        rep.log(f"Exposure recorded (EXIF) for {known} of {len(scene.train) + len(scene.test)} photos")
    if sparse:
        size = (f"a budget of {args.max_gaussians:,} Gaussians" if args.strategy == "mcmc" else
                f"at most {args.max_gaussians:,} Gaussians" if args.max_gaussians else "no Gaussian budget")
        rep.log(f"Sparse capture ({len(scene.train)} training views): Gaussian dropout {args.dropout:g}, {size} "
                "(--sparse off for the reference's behaviour)")
    return scene


def load_model(args, rep, scene, device):
    """The model to train and the checkpoint it came from (None: made from the scene's points)."""
    model = GaussianModel(args.sh_degree, device=device)
    if args.start_checkpoint:
        ck = load_checkpoint(args.start_checkpoint)
        model.load_state_dict(ck["model"])
        set_rng_state(ck["rng"])
        rep.log(f"Resumed from {args.start_checkpoint} at iteration {int(ck['iteration'])}")
        return model, ck
    model.create_from_points(scene.xyz, scene.rgb, scene.extent)
    model.percent_dense = args.percent_dense
    model.setup_optimizer(args.position_lr_init, args.feature_lr, args.opacity_lr, args.scaling_lr, args.rotation_lr)
    return model, None


def start_budget(run):
    """A time budget: plan the number of iterations that fit it (a resumed run counts the time already used)."""
    args = run.args
    t_budget0 = run.t_start - float(run.extra.get("budget_used_sec", 0.0))
    upper = args.iterations or MAX_BUDGET_ITERATIONS
    run.budget = TimeBudget(run.budget_sec, t_budget0, run.make_plan, run.pixels_full, run.initial_count, upper,
                            run.cost)
    n = run.budget.choose(run.first_iter, time.time(), run.model.num, run.plan.factor(max(1, run.first_iter)))
    run.plan = run.make_plan(n)
    run.strategy.plan = run.plan


def print_plan(run):
    """--plan: the plan and its expected duration on this machine, as one JSON line."""
    plan, cams = run.plan, run.train_cams
    expected = plan_cost(plan, run.pixels_full, run.initial_count, run.cost)
    print(json.dumps({"event": "plan", "iterations": plan.iterations, "strategy": plan.strategy,
                      "max_gaussians": plan.max_gaussians, "levels": [list(x) for x in plan.levels],
                      "schedule": {k: getattr(plan, k) for k in (
                          "densify_from_iter", "densify_until_iter", "densification_interval",
                          "opacity_reset_interval", "refine_from_iter", "refine_until_iter", "refine_every",
                          "sh_increase_interval", "position_lr_decay_from", "position_lr_max_steps")},
                      "expected_train_sec": round(expected, 1), "speed_factor": round(run.cost.s, 3),
                      "width": cams[0].width, "height": cams[0].height,
                      "num_train": len(cams), "describe": plan.describe()}), flush=True)
    return 0


def write_start(run):
    """The files a run writes before training (cfg_args, input.ply, cameras.json), the exposures (restored
    from the checkpoint) and the plan and start event."""
    args, scene, plan, rep = run.args, run.scene, run.plan, run.rep
    write_cfg_args(args)
    write_points_ply(os.path.join(args.model_path, "input.ply"), scene.xyz, scene.rgb)
    write_cameras_json(os.path.join(args.model_path, "cameras.json"), scene)
    exposure = Exposure(len(scene.train), plan.iterations, device=run.device) if args.exposure == "on" else None
    if exposure is not None and run.extra.get("exposure") is not None:
        saved = run.extra["exposure"]
        if tuple(saved["delta"].shape) != tuple(exposure.delta.shape):
            raise DataError(f"{args.start_checkpoint} holds exposures for {saved['delta'].shape[0]} training photos, "
                            f"this source has {len(scene.train)}")
        exposure.load_state_dict(saved)
    run.exposure = exposure
    budget_sec = run.budget_sec
    rep.log(f"Plan: {plan.describe()}" + (f" (time budget {fmt_minutes(budget_sec)})" if budget_sec else ""))
    cam = scene.train[0]
    rep.event("start", num_train=len(scene.train), num_test=len(scene.test), width=cam.width,
              height=cam.height, backend=run.backend, threads=run.threads, num_gaussians=run.model.num,
              dropout=args.dropout, max_gaussians=args.max_gaussians, exposure=exposure is not None,
              strategy=plan.strategy, levels=[list(x) for x in plan.levels], time_budget_sec=budget_sec or None,
              first_iteration=run.first_iter, iterations=plan.iterations)
