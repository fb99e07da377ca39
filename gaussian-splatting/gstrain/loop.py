"""The training loop, in gsplat's shape: each iteration renders one training photo, computes the loss, steps
the optimizer and calls the strategy's hooks; the side work (evaluation, saving, progress, previews,
checkpoints) has its own functions.

The strategy object (gstrain/strategy.py) owns how the set of Gaussians changes; the loop calls it as

    loss.backward()
    strategy.add_regulariser_grads(model, rows)        # post-backward, before the step (MCMC's L1 terms)
    strategy.step_post_backward(...)  + optimizer step  # in the order `strategy.refines_before_step` says:
                                                        # ADC densifies / prunes / resets first, MCMC
                                                        # relocates / adds after the step

No pre-backward hook is needed: the renderer's `means2d` keeps its gradient for ADC's statistics.
`Run` (made by trainer.setup) holds what the loop reads and changes.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .checkpoint import save_checkpoint
from .estimate import save_speed_factor
from .exposure import MIN_LAW_VIEWS, fit_law, learnt_gains
from .losses import fused_ssim, fused_train_loss, psnr, psnr_from_mse, ssim, train_loss
from .plan import make_plan, plan_cost
from .ply import atomic_write_bytes
from .progress import peak_rss_mb
from .rasterize import render
from .strategy import GaussianDropout, visible_rows

EXIT_INTERRUPTED = 143  # SIGTERM (128 + 15); SIGINT gives 130
PROGRESS_EVERY = 10  # iterations averaged in one progress line


@dataclass
class Run:
    """One training run's state: what setup decided and what the loop changes (plan, clocks, last evaluation)."""
    args: argparse.Namespace
    rep: object  # progress.Reporter
    scene: object  # dataset.Scene
    backend: str
    device: str
    threads: int
    model: object  # model.GaussianModel
    plan: object  # plan.Plan
    strategy: object  # strategy.ADCStrategy | strategy.MCMCStrategy
    bg: torch.Tensor
    cost: object  # plan.CostModel
    budget: object  # trainer.TimeBudget | None
    min_side: int
    pixels_full: float
    initial_count: int
    budget_sec: float
    t_start: float
    cpu_start: float
    first_iter: int
    extra: dict  # what a checkpoint carried beside the model ({} for a fresh run)
    exposure: object = None  # exposure.Exposure | None
    clock: dict = field(default_factory=dict)
    last_eval: dict = field(default_factory=dict)

    @property
    def train_cams(self):
        return self.scene.train

    def make_plan(self, n):
        return make_plan(self.args, n, self.min_side)

    def replan(self, n):
        """Train for `n` iterations from now on (a time budget's new length)."""
        self.plan = self.make_plan(n)
        self.strategy.plan = self.plan
        if self.exposure is not None:
            self.exposure.iterations = n


@dataclass
class Tally:
    """The training loss and PSNR as the progress lines and the final report give them."""
    ema_loss: float | None = None
    last_psnr: float | None = None
    sec_per_iter: float | None = None
    # the current window of up to PROGRESS_EVERY iterations
    win_t: float = 0.0
    win_loss: float = 0.0
    win_psnr: float = 0.0
    win_n: int = 0

    def add(self, loss, psnr_value, dt):
        self.ema_loss = loss if self.ema_loss is None else 0.4 * loss + 0.6 * self.ema_loss
        self.last_psnr = psnr_value
        self.win_t += dt
        self.win_loss += loss
        self.win_psnr += psnr_value
        self.win_n += 1

    def reset_window(self):
        self.win_t, self.win_loss, self.win_psnr, self.win_n = 0.0, 0.0, 0.0, 0


@dataclass
class Step:
    """What one iteration leaves for its accounting."""
    cam: object
    loss: float
    psnr: float
    t_side: float  # seconds of evaluation and saving inside the iteration (not training time)
    c_side: float  # their CPU seconds


def view_index(seed, iteration, n):
    """Deterministic view order: a fresh permutation per epoch derived from (seed, epoch)."""
    epoch, pos = divmod(iteration - 1, n)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return int(perm[pos])


def target(cam, factor, backend, device):
    """The photo a render at `factor` is compared with: as decoded (uint8) for the CPU's fused loss, float32
    in [0, 1] on the device for CUDA's."""
    return cam.level_image(factor).to(device) if backend == "cuda" else cam.level_pixels(factor)


def compare_view(image, gt, gain=None):
    """A render against its photo: (the image compared, {"psnr", "ssim"}). With `gain` (the photo's recorded
    exposure's) the render is scaled by it first, and "psnr_average", "ssim_average" give the render as it is,
    at the training photos' average exposure. Shared by the run's evaluation and render.py."""
    def scores(img):
        return psnr(img, gt), float(ssim(img, gt) if img.is_cuda else fused_ssim(img, gt))

    average = image.clamp(0, 1)
    if gain is None:
        p, s = scores(average)
        return average, {"psnr": p, "ssim": s}
    compared = (image * gain).clamp(0, 1)
    p, s = scores(compared)
    pa, sa = scores(average)
    return compared, {"psnr": p, "ssim": s, "psnr_average": pa, "ssim_average": sa}


@torch.no_grad()
def evaluate(model, cams, bg, backend, device, tile_size=16, gains=None):
    """Mean held-out PSNR and SSIM over `cams` as compare_view gives them (with gains[i] for view i)."""
    rows = []
    for i, c in enumerate(cams):
        out = render(model, c.render_camera(device=device), bg, backend=backend, sh_degree=model.active_sh_degree,
                     tile_size=tile_size)
        rows.append(compare_view(out["image"], c.image.to(device), None if gains is None else gains[i])[1])
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def exposure_law(run):
    """The ExposureLaw the training photos' learnt gains follow against their recorded exposures, or None
    (no exposure compensation, --test_exposure average, or too few photos with EXIF)."""
    if run.exposure is None or run.args.test_exposure != "recorded":
        return None
    cams = run.scene.train
    if sum(c.exposure is not None for c in cams) < MIN_LAW_VIEWS:
        return None
    means = torch.stack([c.mean_colour() for c in cams])
    return fit_law([c.exposure for c in cams], learnt_gains(run.exposure, means))


# ----------------------------------------------------------------------------------------------- the loop

def train_loop(run, stop):
    """Iterations first_iter + 1 .. plan.iterations (the plan may change length on the way); the exit code."""
    run.clock = start_clock(run.args, run.extra)
    if stop.signum is not None:
        return interrupted(run, run.first_iter, stop)
    tally = Tally()
    factor = run.plan.factor(run.first_iter + 1)
    skip_grad = set()
    it = run.first_iter
    while it < run.plan.iterations:
        it += 1
        t0 = time.perf_counter()
        c0 = time.process_time()
        factor, lr_means = begin_iteration(run, it, factor)
        step = train_step(run, it, factor, lr_means, skip_grad)
        dt = time.perf_counter() - t0 - step.t_side
        account(run, tally, it, step, factor, dt, time.process_time() - c0 - step.c_side)
        after_iteration(run, it)
        if stop.signum is not None and it < run.plan.iterations:
            return interrupted(run, it, stop)
    return finish(run, it, tally)


def start_clock(args, extra):
    """Training seconds (wall and CPU) so far, a resumed run's included, and when the next timed evaluation is due."""
    clock = {"train": float(extra.get("train_sec", 0.0)), "train_cpu": float(extra.get("train_cpu_sec", 0.0)),
             "next_eval": 0.0}
    if args.eval_every_sec > 0:
        clock["next_eval"] = (clock["train"] // args.eval_every_sec + 1) * args.eval_every_sec
    return clock


def begin_iteration(run, it, factor):
    """Before iteration `it`: a time budget's re-plan, the position learning rate, the SH degree and the
    resolution level.  Returns the (new) downscale factor and the position learning rate."""
    args, model, budget = run.args, run.model, run.budget
    n = budget.replan(it, time.time(), model.num, factor) if budget is not None else None
    if n is not None and n != run.plan.iterations:
        run.replan(n)
    plan = run.plan
    lr_means = plan.position_lr(it, args.position_lr_init * model.spatial_lr_scale,
                                args.position_lr_final * model.spatial_lr_scale, args.position_lr_delay_mult)
    model.optimizer.lrs["means"] = lr_means
    while model.active_sh_degree < min(model.max_sh_degree, it // plan.sh_increase_interval):
        model.oneup_sh()
    f = min(factor, plan.factor(it))
    if f != factor:
        factor = f
        for c in run.train_cams:
            c.drop_levels(factor)
        W, H = run.train_cams[0].level_size(factor)
        run.rep.log(f"[ITER {it}] Resolution {W}x{H}" + (f" (1/{factor})" if factor > 1 else " (full)"))
    return factor, lr_means


def train_step(run, it, factor, lr_means, skip_grad):
    """Render one training photo, compute the loss, backward, the strategy's hooks and the optimizer's step."""
    args, model, backend, device = run.args, run.model, run.backend, run.device
    vi = view_index(args.seed, it, len(run.train_cams))
    cam = run.train_cams[vi]
    drop = GaussianDropout(model.num, args.dropout, device) if args.dropout > 0 else None
    out = render(model, cam.level_camera(factor, device=device), run.bg, backend=backend,
                 sh_degree=model.active_sh_degree, tile_size=args.tile_size,
                 opacity_scale=None if drop is None else drop.scale)
    img = out["image"] if run.exposure is None else run.exposure.apply(out["image"], vi)
    gt = target(cam, factor, backend, device)
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
        run.strategy.add_regulariser_grads(model, None if rows is None else torch.as_tensor(rows, device=device))
        # Evaluate and save before densification, as the reference does: an evaluation on an
        # opacity-reset iteration then measures the model, not the freshly reset opacities.
        t_side, c_side = evaluate_and_save(run, it)
        update(run, it, out, drop, rows, lr_means, skip_grad)
        model.zero_grad()
    return Step(cam, lv, pv, t_side, c_side)


def update(run, it, out, drop, rows, lr_means, skip_grad):
    """The optimizer's step and the strategy's refinement, in the strategy's order; neither after the last
    iteration (the reference densifies then too, but the model saved and the one reported are the same)."""
    if it >= run.plan.iterations:
        return
    model, strategy = run.model, run.strategy
    if strategy.refines_before_step:
        # densification replaces the parameters it changes: those then carry no gradient and are skipped by
        # the step, exactly like the reference's optimizer.step() after replacement
        strategy.step_post_backward(it, model, out, drop, lr_means)
        model.optimizer.step(model.params, rows if model.num == len(out["radii"]) else None, skip_grad)
    else:
        model.optimizer.step(model.params, rows, skip_grad)
        strategy.step_post_backward(it, model, out, drop, lr_means)
    if run.exposure is not None:
        run.exposure.step(it)


def evaluate_and_save(run, it):
    """The held-out evaluation and the saves due at iteration `it`; their (wall, CPU) seconds."""
    args, clock, plan = run.args, run.clock, run.plan
    t_side = time.perf_counter()
    c_side = time.process_time()
    if args.eval and (it in args.test_iterations or it == plan.iterations or
                      (args.eval_every_sec > 0 and clock["train"] >= clock["next_eval"])):
        if args.eval_every_sec > 0:
            while clock["next_eval"] <= clock["train"]:
                clock["next_eval"] += args.eval_every_sec
        do_eval(run, it)
    if it in args.save_iterations or it == plan.iterations:
        run.rep.log(f"[ITER {it}] Saving Gaussians")
        save_ply(run, it)
    return time.perf_counter() - t_side, time.process_time() - c_side


def account(run, tally, it, step, factor, dt, cpu_dt):
    """Count iteration `it`'s training time (clocks, cost model, time budget) and report progress when due."""
    clock, model = run.clock, run.model
    clock["train"] += dt
    clock["train_cpu"] += cpu_dt
    W, H = step.cam.level_size(factor)
    run.cost.observe(W * H, model.num, dt)
    if run.budget is not None:
        run.budget.account(dt, step.t_side)
    tally.add(step.loss, step.psnr, dt)
    if tally.win_n >= PROGRESS_EVERY or it == run.plan.iterations:
        report_progress(run, tally, it, step.cam, factor)


def report_progress(run, tally, it, cam, factor):
    """One progress event: the window's averages and the time left."""
    clock, plan, model, budget = run.clock, run.plan, run.model, run.budget
    tally.sec_per_iter = tally.win_t / tally.win_n
    if budget is not None:
        eta = max(0.0, budget.seconds - (time.time() - budget.t_start))
    else:
        eta = plan_cost(plan, run.pixels_full, run.initial_count, run.cost, it + 1, None, model.num, factor)
    W, H = cam.level_size(factor)
    run.rep.event("progress", iteration=it, iterations=plan.iterations, loss=tally.win_loss / tally.win_n,
                  psnr=tally.win_psnr / tally.win_n, num_gaussians=model.num, sec_per_iter=tally.sec_per_iter,
                  eta_sec=eta, peak_rss_mb=peak_rss_mb(), train_sec=clock["train"], train_cpu_sec=clock["train_cpu"],
                  cpu_sec=time.process_time() - run.cpu_start, width=W, height=H)
    tally.reset_window()


def after_iteration(run, it):
    """The live preview and the checkpoint due after iteration `it`."""
    args = run.args
    if args.preview_every and it % args.preview_every == 0 and it != run.plan.iterations:
        path = os.path.join(args.model_path, "preview", "preview.ply")
        run.model.save_ply(path)
        run.rep.event("preview", iteration=it, path=os.path.abspath(path))
    if it in args.checkpoint_iterations:
        path = os.path.join(args.model_path, f"chkpnt{it}.pth")
        save_checkpoint(path, run.model, it, args, checkpoint_extra(run))
        run.rep.event("checkpoint", iteration=it, path=os.path.abspath(path))


# ----------------------------------------------------------------------------------------------- side work

def save_ply(run, it):
    path = os.path.join(run.args.model_path, "point_cloud", f"iteration_{it}", "point_cloud.ply")
    run.model.save_ply(path)
    save_exposures(run)
    run.rep.event("saved", iteration=it, path=os.path.abspath(path))
    return path


def do_eval(run, it):
    args, rep, scene, clock = run.args, run.rep, run.scene, run.clock
    if scene.test:
        law = exposure_law(run)
        gains = [law.gain(c.exposure) for c in scene.test] if law is not None else None
        r = evaluate(run.model, scene.test, run.bg, run.backend, run.device, args.tile_size, gains)
        p, s = r["psnr"], r["ssim"]
        run.last_eval.update(iteration=it, psnr=p, ssim=s)
        more = {}
        if law is not None:
            more = dict(exposure="recorded", psnr_average=r["psnr_average"], ssim_average=r["ssim_average"],
                        exposure_law_k=law.k)
        rep.event("eval", iteration=it, psnr=p, ssim=s, num_views=len(scene.test), train_sec=clock["train"],
                  train_cpu_sec=clock["train_cpu"], num_gaussians=run.model.num, **more)
        line = f"[ITER {it}] Evaluating test: PSNR {p:.3f} SSIM {s:.4f}"
        if law is not None:
            line += (f" at the photos' recorded exposures (gain = exposure^{law.k:.2f} over {law.views} training "
                     f"photos); at the average exposure PSNR {r['psnr_average']:.3f} SSIM {r['ssim_average']:.4f}")
        rep.log(line)
    if run.exposure is not None:
        lo, hi = run.exposure.stats()
        rep.log(f"[ITER {it}] Exposure gains of the training photos {lo:.3f}..{hi:.3f}")


def save_exposures(run):
    """exposure.json beside the model: each photo's recorded exposure, the training photos' learnt
    transforms and the law of their gains, so render.py compares held-out views as the run's evaluation did."""
    if run.exposure is None:
        return
    cams = run.scene.train
    law = exposure_law(run)
    with torch.no_grad():
        transforms = [run.exposure.transform(i).tolist() for i in range(len(cams))]
    doc = {"law": law.to_json() if law is not None else None,  # null: held-out views at the average exposure
           "recorded_exposure": {c.image_name: c.exposure for c in cams + run.scene.test},
           "transforms": {c.image_name: t for c, t in zip(cams, transforms, strict=True)}}
    atomic_write_bytes(os.path.join(run.args.model_path, "exposure.json"), [json.dumps(doc, indent=1).encode()])


def checkpoint_extra(run):
    """What a checkpoint carries beside the model so that a resumed run goes on as this one would."""
    clock = run.clock
    return {"exposure": run.exposure.state_dict() if run.exposure is not None else None,
            "strategy": run.strategy.state_dict(), "train_sec": clock["train"],
            "train_cpu_sec": clock["train_cpu"],
            "budget_used_sec": (time.time() - run.budget.t_start) if run.budget_sec else 0.0}


def interrupted(run, it, stop):
    """Save a checkpoint and the model at iteration `it` (when there is anything to save); the exit code."""
    args = run.args
    path = None
    if it > 0 or args.start_checkpoint:
        path = os.path.join(args.model_path, f"chkpnt{it}.pth")
        save_checkpoint(path, run.model, it, args, checkpoint_extra(run))
        save_ply(run, it)
        path = os.path.abspath(path)
    run.rep.event("interrupted", iteration=it, checkpoint=path, signal=int(stop.signum))
    run.rep.log(f"Interrupted at iteration {it}; checkpoint {path}")
    return EXIT_INTERRUPTED if stop.signum == signal.SIGTERM else 130


def finish(run, it, tally):
    """The final report (and this machine's speed profile, from a long enough CPU run); exit code 0."""
    args, clock, plan, model = run.args, run.clock, run.plan, run.model
    wall = time.time() - run.t_start
    final_ply = os.path.abspath(os.path.join(args.model_path, "point_cloud", f"iteration_{plan.iterations}",
                                             "point_cloud.ply"))
    done = dict(iteration=it, iterations=plan.iterations, num_gaussians=model.num, wall_sec=wall,
                train_sec=clock["train"], train_cpu_sec=clock["train_cpu"],
                cpu_sec=time.process_time() - run.cpu_start, peak_rss_mb=peak_rss_mb(),
                train_psnr=tally.last_psnr, loss=tally.ema_loss, sec_per_iter=tally.sec_per_iter, path=final_ply,
                time_budget_sec=run.budget_sec or None)
    if run.last_eval:
        last = run.last_eval
        done.update(eval_iteration=last["iteration"], eval_psnr=last["psnr"], eval_ssim=last["ssim"])
    if run.backend == "cpu" and clock["train"] > 30.0:
        save_speed_factor(run.threads, run.cost.run_factor)
    run.rep.event("done", **done)
    run.rep.log(f"Training complete: {model.num} Gaussians, {wall:.1f} s")
    return 0
