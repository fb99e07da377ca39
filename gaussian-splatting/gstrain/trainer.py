"""Training entry point (CLI compatible with the reference 3DGS train.py).

What a run does is decided by the Plan (gstrain/plan.py: schedule, resolution levels, Gaussian budget),
the strategy (gstrain/strategy.py: MCMC by default, the reference's adaptive density control with
--strategy adc) and, with --time_budget, the TimeBudget below, which picks the number of iterations from
the speed this machine shows during the run.  This module runs the loop and reports.
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

from .cli import DEFAULT_ITERATIONS, MAX_BUDGET_ITERATIONS, build_parser, check_args  # noqa: F401
from .colmap import DataError
from .dataset import load_scene
from .estimate import load_speed_factor, save_speed_factor
from .exposure import Exposure
from .losses import fused_ssim, fused_train_loss, psnr, psnr_from_mse, ssim, train_loss
from .model import GaussianModel
from .plan import CostModel, fmt_minutes, make_plan, plan_cost, resolve_sparse, solve_iterations
from .ply import atomic_write_bytes, write_points_ply
from .progress import Reporter, peak_rss_mb
from .rasterize import render
from .strategy import GaussianDropout, make_strategy, visible_rows  # noqa: F401

EXIT_INTERRUPTED = 143  # SIGTERM (128 + 15); SIGINT gives 130


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


def view_index(seed, iteration, n):
    """Deterministic view order: a fresh permutation per epoch derived from (seed, epoch)."""
    epoch, pos = divmod(iteration - 1, n)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return int(perm[pos])


@torch.no_grad()
def evaluate(model, cams, bg, backend, device, tile_size=16):
    ps, ss = [], []
    for c in cams:
        out = render(model, c.render_camera(device=device), bg, backend=backend, sh_degree=model.active_sh_degree,
                     tile_size=tile_size)
        img = out["image"].clamp(0, 1)
        gt = c.image.to(device)
        ps.append(psnr(img, gt))
        ss.append(float(ssim(img, gt) if img.is_cuda else fused_ssim(img, gt)))
    return float(np.mean(ps)), float(np.mean(ss))


def rng_state():
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(s):
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])


def save_checkpoint(path, model, iteration, args, extra=None):
    import io
    buf = io.BytesIO()
    torch.save({"format": "splatstudio-gs-1", "iteration": iteration, "model": model.state_dict(),
                "rng": rng_state(), "args": vars(args), "extra": extra or {}}, buf)
    atomic_write_bytes(path, [buf.getvalue()])


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


def _target(cam, factor, backend, device):
    """The photo a render at `factor` is compared with: as decoded (uint8) for the CPU's fused loss, float32
    in [0, 1] on the device for CUDA's."""
    return cam.level_image(factor).to(device) if backend == "cuda" else cam.level_pixels(factor)


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
            loss = loss_fn(out["image"], _target(cam, f, backend, out["image"].device), lambda_dssim)
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
    t_start = started or time.time()
    cpu_start = time.process_time()
    check_args(args)
    backend = pick_backend(args.backend)
    device = "cuda" if backend == "cuda" else "cpu"
    from .raster_cpu import set_threads
    threads = set_threads(args.threads if args.threads > 0 else (os.cpu_count() or 1))
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)

    scene = load_scene(args.source_path, args.resolution, args.eval, args.images)
    if not scene.train:
        raise DataError("no training images left after the train/test split")
    sparse = resolve_sparse(args, len(scene.train))
    train_cams = scene.train
    min_side = min(min(c.width, c.height) for c in train_cams)
    pixels_full = float(np.mean([c.width * c.height for c in train_cams]))
    budget_sec = 60.0 * args.time_budget
    fixed_n = args.iterations or DEFAULT_ITERATIONS

    def make(n):
        return make_plan(args, n, min_side)

    if not args.plan:
        os.makedirs(args.model_path, exist_ok=True)
    rep.log(f"Output folder: {args.model_path} | backend {backend} | {threads} threads | "
            f"{len(scene.train)} train / {len(scene.test)} test views | {train_cams[0].width}x{train_cams[0].height}")
    if sparse:
        size = (f"a budget of {args.max_gaussians:,} Gaussians" if args.strategy == "mcmc" else
                f"at most {args.max_gaussians:,} Gaussians" if args.max_gaussians else "no Gaussian budget")
        rep.log(f"Sparse capture ({len(scene.train)} training views): Gaussian dropout {args.dropout:g}, {size} "
                "(--sparse off for the reference's behaviour)")

    model = GaussianModel(args.sh_degree, device=device)
    first_iter = 0
    ck = None
    if args.start_checkpoint:
        if not os.path.isfile(args.start_checkpoint):
            raise DataError(f"checkpoint {args.start_checkpoint} not found")
        ck = torch.load(args.start_checkpoint, map_location="cpu", weights_only=False)
        if not isinstance(ck, dict) or ck.get("format") != "splatstudio-gs-1":
            raise DataError(f"{args.start_checkpoint} is not a SplatStudio trainer checkpoint")
        model.load_state_dict(ck["model"])
        first_iter = int(ck["iteration"])
        set_rng_state(ck["rng"])
        rep.log(f"Resumed from {args.start_checkpoint} at iteration {first_iter}")
    else:
        model.create_from_points(scene.xyz, scene.rgb, scene.extent)
        model.percent_dense = args.percent_dense
        model.setup_optimizer(args.position_lr_init, args.feature_lr, args.opacity_lr, args.scaling_lr,
                              args.rotation_lr)
    extra = (ck or {}).get("extra", {})
    bg = torch.tensor([1.0, 1.0, 1.0] if args.white_background else [0.0, 0.0, 0.0], device=device)
    plan = make(fixed_n)
    strategy = make_strategy(plan, scene.extent, args)
    if ck is None:
        strategy.initialise(model)
    else:
        strategy.load_state_dict(extra.get("strategy", {}))
    initial_count = getattr(strategy, "initial_count", None) or model.num
    loss_fn = train_loss if backend == "cuda" else fused_train_loss

    # the cost model predicts the time per iteration (ETA, time budget, --plan) and, measured over the run,
    # becomes this machine's speed profile for estimates without a dataset (gstrain/estimate.py)
    cost = CostModel(s=load_speed_factor(threads)[0])
    budget = None
    if budget_sec > 0 or args.plan:
        cost.calibrate(calibrate(model, train_cams, bg, backend, plan, loss_fn, args.lambda_dssim))
    if budget_sec > 0:
        t_budget0 = t_start - float(extra.get("budget_used_sec", 0.0))
        upper = args.iterations or MAX_BUDGET_ITERATIONS
        budget = TimeBudget(budget_sec, t_budget0, make, pixels_full, initial_count, upper, cost)
        n = budget.choose(first_iter, time.time(), model.num, plan.factor(max(1, first_iter)))
        plan = make(n)
        strategy.plan = plan
    if args.plan:
        expected = plan_cost(plan, pixels_full, initial_count, cost)
        print(json.dumps({"event": "plan", "iterations": plan.iterations, "strategy": plan.strategy,
                          "max_gaussians": plan.max_gaussians, "levels": [list(x) for x in plan.levels],
                          "schedule": {k: getattr(plan, k) for k in (
                              "densify_from_iter", "densify_until_iter", "densification_interval",
                              "opacity_reset_interval", "refine_from_iter", "refine_until_iter", "refine_every",
                              "sh_increase_interval", "position_lr_decay_from", "position_lr_max_steps")},
                          "expected_train_sec": round(expected, 1), "speed_factor": round(cost.s, 3),
                          "width": train_cams[0].width, "height": train_cams[0].height,
                          "num_train": len(train_cams), "describe": plan.describe()}), flush=True)
        return 0

    write_cfg_args(args)
    write_points_ply(os.path.join(args.model_path, "input.ply"), scene.xyz, scene.rgb)
    write_cameras_json(os.path.join(args.model_path, "cameras.json"), scene)
    exposure = Exposure(len(train_cams), plan.iterations, device=device) if args.exposure == "on" else None
    if exposure is not None and extra.get("exposure") is not None:
        saved = extra["exposure"]
        if tuple(saved["delta"].shape) != tuple(exposure.delta.shape):
            raise DataError(f"{args.start_checkpoint} holds exposures for {saved['delta'].shape[0]} training photos, "
                            f"this source has {len(train_cams)}")
        exposure.load_state_dict(saved)
    rep.log(f"Plan: {plan.describe()}" + (f" (time budget {fmt_minutes(budget_sec)})" if budget_sec else ""))
    rep.event("start", num_train=len(scene.train), num_test=len(scene.test), width=train_cams[0].width,
              height=train_cams[0].height, backend=backend, threads=threads, num_gaussians=model.num,
              dropout=args.dropout, max_gaussians=args.max_gaussians, exposure=exposure is not None,
              strategy=plan.strategy, levels=[list(x) for x in plan.levels], time_budget_sec=budget_sec or None,
              first_iteration=first_iter, iterations=plan.iterations)

    def save_ply(it):
        path = os.path.join(args.model_path, "point_cloud", f"iteration_{it}", "point_cloud.ply")
        model.save_ply(path)
        rep.event("saved", iteration=it, path=os.path.abspath(path))
        return path

    last_eval = {}
    clock = {"train": float(extra.get("train_sec", 0.0)), "train_cpu": float(extra.get("train_cpu_sec", 0.0)),
             "next_eval": 0.0}
    if args.eval_every_sec > 0:
        clock["next_eval"] = (clock["train"] // args.eval_every_sec + 1) * args.eval_every_sec

    def ck_extra():
        return {"exposure": exposure.state_dict() if exposure is not None else None,
                "strategy": strategy.state_dict(), "train_sec": clock["train"],
                "train_cpu_sec": clock["train_cpu"],
                "budget_used_sec": (time.time() - budget.t_start) if budget_sec else 0.0}

    def do_eval(it):
        if scene.test:
            p, s = evaluate(model, scene.test, bg, backend, device, args.tile_size)
            last_eval.update(iteration=it, psnr=p, ssim=s)
            rep.event("eval", iteration=it, psnr=p, ssim=s, num_views=len(scene.test), train_sec=clock["train"],
                      train_cpu_sec=clock["train_cpu"], num_gaussians=model.num)
            rep.log(f"[ITER {it}] Evaluating test: PSNR {p:.3f} SSIM {s:.4f}")
        if exposure is not None:
            lo, hi = exposure.stats()
            rep.log(f"[ITER {it}] Exposure gains of the training photos {lo:.3f}..{hi:.3f}")

    def interrupted(it):
        path = None
        if it > 0 or args.start_checkpoint:
            path = os.path.join(args.model_path, f"chkpnt{it}.pth")
            save_checkpoint(path, model, it, args, ck_extra())
            save_ply(it)
            path = os.path.abspath(path)
        rep.event("interrupted", iteration=it, checkpoint=path, signal=int(stop.signum))
        rep.log(f"Interrupted at iteration {it}; checkpoint {path}")
        return EXIT_INTERRUPTED if stop.signum == signal.SIGTERM else 130

    if stop.signum is not None:
        return interrupted(first_iter)

    ema_loss = None
    win_t, win_loss, win_psnr, win_n = 0.0, 0.0, 0.0, 0
    sec_per_iter = None
    last_psnr = None
    factor = plan.factor(first_iter + 1)
    skip_grad = set()
    it = first_iter
    while it < plan.iterations:
        it += 1
        t0 = time.perf_counter()
        c0 = time.process_time()
        n = budget.replan(it, time.time(), model.num, factor) if budget is not None else None
        if n is not None and n != plan.iterations:
            plan = make(n)
            strategy.plan = plan
            if exposure is not None:
                exposure.iterations = n
        lr_means = plan.position_lr(it, args.position_lr_init * model.spatial_lr_scale,
                                    args.position_lr_final * model.spatial_lr_scale, args.position_lr_delay_mult)
        model.optimizer.lrs["means"] = lr_means
        while model.active_sh_degree < min(model.max_sh_degree, it // plan.sh_increase_interval):
            model.oneup_sh()
        f = min(factor, plan.factor(it))
        if f != factor:
            factor = f
            for c in train_cams:
                c.drop_levels(factor)
            W, H = train_cams[0].level_size(factor)
            rep.log(f"[ITER {it}] Resolution {W}x{H}" + (f" (1/{factor})" if factor > 1 else " (full)"))
        vi = view_index(args.seed, it, len(train_cams))
        cam = train_cams[vi]
        drop = GaussianDropout(model.num, args.dropout, device) if args.dropout > 0 else None
        out = render(model, cam.level_camera(factor, device=device), bg, backend=backend,
                     sh_degree=model.active_sh_degree, tile_size=args.tile_size,
                     opacity_scale=None if drop is None else drop.scale)
        img = out["image"] if exposure is None else exposure.apply(out["image"], vi)
        gt = _target(cam, factor, backend, device)
        if backend == "cuda":
            loss = train_loss(img, gt, args.lambda_dssim)
            mse = None
        else:  # the fused loss gives the squared error too, for the PSNR
            loss, mse = fused_train_loss(img, gt, args.lambda_dssim, with_mse=True)
        loss.backward()
        with torch.no_grad():
            lv = float(loss.detach())
            pv = psnr(img.detach(), gt) if mse is None else psnr_from_mse(mse)
            rows = None
            if args.sparse_adam == "on":
                rows = visible_rows(out, drop)
                rows = rows.cpu().numpy().astype(np.int64) if device == "cpu" else rows
            strategy.add_regulariser_grads(model, None if rows is None else torch.as_tensor(rows, device=device))
            # Evaluate and save before densification, as the reference does: an evaluation on an
            # opacity-reset iteration then measures the model, not the freshly reset opacities.
            t_side = time.perf_counter()
            c_side = time.process_time()
            if args.eval and (it in args.test_iterations or it == plan.iterations or
                              (args.eval_every_sec > 0 and clock["train"] >= clock["next_eval"])):
                if args.eval_every_sec > 0:
                    while clock["next_eval"] <= clock["train"]:
                        clock["next_eval"] += args.eval_every_sec
                do_eval(it)
            if it in args.save_iterations or it == plan.iterations:
                rep.log(f"[ITER {it}] Saving Gaussians")
                save_ply(it)
            t_side = time.perf_counter() - t_side
            c_side = time.process_time() - c_side
            if plan.strategy == "adc":
                # densification replaces the parameters it changes: those then carry no gradient and are
                # skipped by the step, exactly like the reference's optimizer.step() after replacement.
                # Not after the last save (the reference densifies then too): the model saved and the one
                # reported are the same.
                if it < plan.iterations:
                    strategy.step_post_backward(it, model, out, drop, lr_means)
                    model.optimizer.step(model.params, rows if model.num == len(out["radii"]) else None, skip_grad)
            else:
                if it < plan.iterations:
                    model.optimizer.step(model.params, rows, skip_grad)
                    strategy.step_post_backward(it, model, out, drop, lr_means)
            if exposure is not None and it < plan.iterations:
                exposure.step(it)
            model.zero_grad()
        dt = time.perf_counter() - t0 - t_side
        clock["train"] += dt
        clock["train_cpu"] += time.process_time() - c0 - c_side
        W, H = cam.level_size(factor)
        cost.observe(W * H, model.num, dt)
        if budget is not None:
            budget.account(dt, t_side)
        ema_loss = lv if ema_loss is None else 0.4 * lv + 0.6 * ema_loss
        last_psnr = pv
        win_t += dt
        win_loss += lv
        win_psnr += pv
        win_n += 1
        if win_n >= 10 or it == plan.iterations:
            sec_per_iter = win_t / win_n
            if budget is not None:
                eta = max(0.0, budget.seconds - (time.time() - budget.t_start))
            else:
                eta = plan_cost(plan, pixels_full, initial_count, cost, it + 1, None, model.num, factor)
            W, H = cam.level_size(factor)
            rep.event("progress", iteration=it, iterations=plan.iterations, loss=win_loss / win_n,
                      psnr=win_psnr / win_n, num_gaussians=model.num, sec_per_iter=sec_per_iter, eta_sec=eta,
                      peak_rss_mb=peak_rss_mb(), train_sec=clock["train"],
                      train_cpu_sec=clock["train_cpu"], cpu_sec=time.process_time() - cpu_start, width=W, height=H)
            win_t, win_loss, win_psnr, win_n = 0.0, 0.0, 0.0, 0
        if args.preview_every and it % args.preview_every == 0 and it != plan.iterations:
            path = os.path.join(args.model_path, "preview", "preview.ply")
            model.save_ply(path)
            rep.event("preview", iteration=it, path=os.path.abspath(path))
        if it in args.checkpoint_iterations:
            path = os.path.join(args.model_path, f"chkpnt{it}.pth")
            save_checkpoint(path, model, it, args, ck_extra())
            rep.event("checkpoint", iteration=it, path=os.path.abspath(path))
        if stop.signum is not None and it < plan.iterations:
            return interrupted(it)

    wall = time.time() - t_start
    final_ply = os.path.abspath(os.path.join(args.model_path, "point_cloud", f"iteration_{plan.iterations}",
                                             "point_cloud.ply"))
    done = dict(iteration=it, iterations=plan.iterations, num_gaussians=model.num, wall_sec=wall,
                train_sec=clock["train"], train_cpu_sec=clock["train_cpu"], cpu_sec=time.process_time() - cpu_start,
                peak_rss_mb=peak_rss_mb(),
                train_psnr=last_psnr, loss=ema_loss, sec_per_iter=sec_per_iter, path=final_ply,
                time_budget_sec=budget_sec or None)
    if last_eval:
        done.update(eval_iteration=last_eval["iteration"], eval_psnr=last_eval["psnr"], eval_ssim=last_eval["ssim"])
    if backend == "cpu" and clock["train"] > 30.0:
        save_speed_factor(threads, cost.run_factor)
    rep.event("done", **done)
    rep.log(f"Training complete: {model.num} Gaussians, {wall:.1f} s")
    return 0
