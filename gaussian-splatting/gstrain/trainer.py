"""Training entry point (CLI compatible with the reference 3DGS train.py)."""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time

import numpy as np
import torch

from .colmap import DataError
from .dataset import load_scene
from .exposure import Exposure
from .losses import fused_ssim, fused_train_loss, psnr, ssim, train_loss
from .model import GaussianModel, expon_lr
from .ply import atomic_write_bytes, write_points_ply
from .progress import Reporter, peak_rss_mb
from .rasterize import render

EXIT_INTERRUPTED = 143  # SIGTERM (128 + 15); SIGINT gives 130


# Sparse captures (issue 3, NOTES.md): with ~20 photos, the standard method fits the training photos ever
# closer (train PSNR 32-39 dB) while held-out PSNR falls from 2k to 7k iterations.  Dropout plus a budget of
# Gaussians per training view keeps the held-out views 1.6-2.2 dB better at 7k (monstree, 20 training views,
# 80k Gaussians); 4000 per view measured as good as 6000 at 7k at both resolutions, with a third fewer
# Gaussians.  Without per-photo exposure compensation (--exposure, on by default) held-out PSNR still
# flattened out after 2k at 397x298 (five runs -0.17 to +0.19 dB 2k -> 7k); with it, it keeps rising after
# densification ends at both resolutions.  Figures: the trainer's README.
SPARSE_VIEWS = 50
SPARSE_DROPOUT = 0.3
SPARSE_GAUSSIANS_PER_VIEW = 4000


def build_parser():
    p = argparse.ArgumentParser(description="SplatStudio Gaussian Splatting trainer (CPU/numba or CUDA/gsplat)")
    p.add_argument("-s", "--source_path", required=True)
    p.add_argument("-m", "--model_path", required=True)
    p.add_argument("-i", "--images", default="images")
    p.add_argument("-r", "--resolution", type=int, default=-1)
    p.add_argument("-w", "--white_background", action="store_true")
    p.add_argument("--eval", action="store_true")
    p.add_argument("--sh_degree", type=int, default=3)
    p.add_argument("--data_device", default="cpu")
    p.add_argument("--iterations", type=int, default=30000)
    p.add_argument("--save_iterations", nargs="*", type=int, default=[7000, 30000])
    p.add_argument("--test_iterations", nargs="*", type=int, default=[7000, 30000])
    p.add_argument("--checkpoint_iterations", nargs="*", type=int, default=[])
    p.add_argument("--start_checkpoint", default=None)
    p.add_argument("--densify_from_iter", type=int, default=None, help="default 500 (see resolve_schedule for short runs)")
    p.add_argument("--densify_until_iter", type=int, default=None, help="default 15000 (scaled by iterations/30000)")
    p.add_argument("--densification_interval", type=int, default=None, help="default 100 (scaled for short runs)")
    p.add_argument("--opacity_reset_interval", type=int, default=None, help="default 3000 (scaled for short runs)")
    p.add_argument("--sh_increase_interval", type=int, default=None, help="default 1000 (scaled, min 10)")
    p.add_argument("--densify_grad_threshold", type=float, default=0.0002)
    p.add_argument("--position_lr_init", type=float, default=0.00016)
    p.add_argument("--position_lr_final", type=float, default=0.0000016)
    p.add_argument("--position_lr_delay_mult", type=float, default=0.01)
    p.add_argument("--position_lr_max_steps", type=int, default=None, help="default: --iterations")
    p.add_argument("--feature_lr", type=float, default=0.0025)
    p.add_argument("--opacity_lr", type=float, default=0.025)
    p.add_argument("--scaling_lr", type=float, default=0.005)
    p.add_argument("--rotation_lr", type=float, default=0.001)
    p.add_argument("--percent_dense", type=float, default=0.01)
    p.add_argument("--lambda_dssim", type=float, default=0.2)
    p.add_argument("--dropout", type=float, default=None,
                   help=f"Gaussian dropout rate during training (default {SPARSE_DROPOUT} for a sparse capture, else 0)")
    p.add_argument("--sparse", choices=["auto", "on", "off"], default="auto",
                   help=f"regularisation for captures with few photos: auto = on below {SPARSE_VIEWS} training views "
                        "(Gaussian dropout and a per-view Gaussian budget); off = the reference's behaviour")
    p.add_argument("--gaussians_per_view", type=int, default=SPARSE_GAUSSIANS_PER_VIEW,
                   help="sparse captures: at most this many Gaussians per training view (0 = no budget)")
    p.add_argument("--exposure", choices=["on", "off"], default="on",
                   help="learn a colour transform per training photo for its exposure / white balance (on; off = "
                        "the reference's default); the model renders at the training photos' average exposure")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--backend", choices=["auto", "cpu", "cuda", "reference"], default="auto")
    p.add_argument("--threads", type=int, default=0, help="numba/torch threads (default: all cores)")
    p.add_argument("--max_gaussians", type=int, default=0, help="cap on the number of Gaussians (0 = no cap)")
    p.add_argument("--progress", choices=["json", "text"], default="text")
    p.add_argument("--preview_every", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tile_size", type=int, default=16, choices=[16])
    # accepted for command-line compatibility with the reference, ignored
    p.add_argument("--ip", default="127.0.0.1")
    p.add_argument("--port", type=int, default=6009)
    p.add_argument("--disable_viewer", action="store_true")
    p.add_argument("--debug_from", type=int, default=-1)
    p.add_argument("--detect_anomaly", action="store_true")
    return p


def resolve_sparse(args, num_train):
    """Turn --sparse/--dropout/--gaussians_per_view into the run's dropout and Gaussian cap; returns whether
    the sparse-capture regularisation is on.  An explicit --max_gaussians stays an upper bound."""
    sparse = args.sparse == "on" or (args.sparse == "auto" and num_train < SPARSE_VIEWS)
    if args.dropout is None:
        args.dropout = SPARSE_DROPOUT if sparse else 0.0
    if sparse and args.gaussians_per_view > 0:
        budget = args.gaussians_per_view * num_train
        args.max_gaussians = min(args.max_gaussians, budget) if args.max_gaussians else budget
    return sparse


def resolve_schedule(args):
    """Reference schedule (densify 500..15000 every 100, opacity reset every 3000, SH degree +1 every 1000).

    When --iterations < 30000, every default that was not given explicitly is scaled with
    f = iterations / 30000, with floors that keep each densification step statistically meaningful:
      densify_until_iter     = 15000 f
      densify_from_iter      = min(500, 0.1 * iterations)
      densification_interval = clamp((densify_until - densify_from) / 30, 10, 100)
      opacity_reset_interval = max(3000 f, 3 * densification_interval, 2 * densify_from_iter)
      sh_increase_interval   = max(10, 1000 f)
      position_lr_max_steps  = iterations (the position lr decays over the actual run)
    e.g. 7000 iterations: densify 500..3500 every 100, opacity reset every 1000, SH step every 233.
    """
    n = args.iterations
    f = min(1.0, n / 30000.0)
    if args.densify_until_iter is None:
        args.densify_until_iter = int(round(15000 * f))
    if args.densify_from_iter is None:
        args.densify_from_iter = 500 if f >= 1 else int(min(500, round(0.1 * n)))
    if args.densification_interval is None:
        span = args.densify_until_iter - args.densify_from_iter
        args.densification_interval = 100 if f >= 1 else int(min(100, max(10, round(span / 30.0))))
    if args.opacity_reset_interval is None:
        args.opacity_reset_interval = 3000 if f >= 1 else int(max(round(3000 * f), 3 * args.densification_interval,
                                                                  2 * args.densify_from_iter))
    if args.sh_increase_interval is None:
        args.sh_increase_interval = 1000 if f >= 1 else int(max(10, round(1000 * f)))
    if args.position_lr_max_steps is None:
        args.position_lr_max_steps = n
    args.save_iterations = sorted(set(args.save_iterations + [n]))
    return args


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


class GaussianDropout:
    """Gaussian dropout for one training step (as in DropGaussian, CVPR 2025): each Gaussian is left out with
    probability `rate`, and the opacity of those kept is divided by (1 - rate) so the expected coverage
    stays the same.  Applied as a per-Gaussian opacity factor (`scale`: 0 or 1 / (1 - rate)) inside the
    renderer, so no copy of the model is made; `kept` says which Gaussians took part."""

    def __init__(self, n, rate, device="cpu", generator=None):
        self.kept = torch.rand(n, generator=generator, device=device) >= rate
        self.scale = self.kept.to(torch.float32) / (1.0 - rate)


class _Interrupt:
    def __init__(self):
        self.signum = None

    def __call__(self, signum, frame):
        self.signum = signum


def train(argv=None):
    args = resolve_schedule(build_parser().parse_args(argv))
    rep = Reporter(args.progress, args.quiet)
    stop = _Interrupt()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        return _train(args, rep, stop)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1


def _train(args, rep, stop):
    t_start = time.time()
    if args.dropout is not None and not 0.0 <= args.dropout < 1.0:
        raise DataError(f"--dropout must be in [0, 1), got {args.dropout}")
    if args.gaussians_per_view < 0:
        raise DataError(f"--gaussians_per_view must be 0 (no budget) or more, got {args.gaussians_per_view}")
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
    os.makedirs(args.model_path, exist_ok=True)
    rep.log(f"Output folder: {args.model_path} | backend {backend} | {threads} threads | "
            f"{len(scene.train)} train / {len(scene.test)} test views | {scene.train[0].width}x{scene.train[0].height}")
    if resolve_sparse(args, len(scene.train)):
        cap = f"at most {args.max_gaussians:,} Gaussians" if args.max_gaussians else "no Gaussian budget"
        rep.log(f"Sparse capture ({len(scene.train)} training views): Gaussian dropout {args.dropout:g}, "
                f"{cap} (--sparse off for the reference's behaviour)")
    write_cfg_args(args)
    write_points_ply(os.path.join(args.model_path, "input.ply"), scene.xyz, scene.rgb)
    write_cameras_json(os.path.join(args.model_path, "cameras.json"), scene)

    model = GaussianModel(args.sh_degree, device=device)
    first_iter = 0
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
    extent = scene.extent
    bg = torch.tensor([1.0, 1.0, 1.0] if args.white_background else [0.0, 0.0, 0.0], device=device)
    train_cams = scene.train
    rcams = [c.render_camera(device=device) for c in train_cams]
    gts = [c.image.to(device) for c in train_cams]
    exposure = Exposure(len(train_cams), args.iterations, device=device) if args.exposure == "on" else None
    if exposure is not None and args.start_checkpoint and ck.get("extra", {}).get("exposure") is not None:
        saved = ck["extra"]["exposure"]
        if tuple(saved["delta"].shape) != tuple(exposure.delta.shape):
            raise DataError(f"{args.start_checkpoint} holds exposures for {saved['delta'].shape[0]} training photos, "
                            f"this source has {len(train_cams)}")
        exposure.load_state_dict(saved)
    rep.event("start", num_train=len(scene.train), num_test=len(scene.test), width=train_cams[0].width,
              height=train_cams[0].height, backend=backend, threads=threads, num_gaussians=model.num,
              dropout=args.dropout, max_gaussians=args.max_gaussians, exposure=exposure is not None,
              first_iteration=first_iter, iterations=args.iterations)

    def save_ply(it):
        path = os.path.join(args.model_path, "point_cloud", f"iteration_{it}", "point_cloud.ply")
        model.save_ply(path)
        rep.event("saved", iteration=it, path=os.path.abspath(path))
        return path

    last_eval = {}

    def ck_extra():
        return {"exposure": exposure.state_dict() if exposure is not None else None}

    def do_eval(it):
        if scene.test:
            p, s = evaluate(model, scene.test, bg, backend, device, args.tile_size)
            last_eval.update(iteration=it, psnr=p, ssim=s)
            rep.event("eval", iteration=it, psnr=p, ssim=s, num_views=len(scene.test))
            rep.log(f"[ITER {it}] Evaluating test: PSNR {p:.3f} SSIM {s:.4f}")
        if exposure is not None:
            lo, hi = exposure.stats()
            rep.log(f"[ITER {it}] Exposure gains of the training photos {lo:.3f}..{hi:.3f}")

    def interrupted(it):
        ck = None
        if it > 0 or args.start_checkpoint:
            ck = os.path.join(args.model_path, f"chkpnt{it}.pth")
            save_checkpoint(ck, model, it, args, ck_extra())
            save_ply(it)
            ck = os.path.abspath(ck)
        rep.event("interrupted", iteration=it, checkpoint=ck, signal=int(stop.signum))
        rep.log(f"Interrupted at iteration {it}; checkpoint {ck}")
        return EXIT_INTERRUPTED if stop.signum == signal.SIGTERM else 130

    if stop.signum is not None:
        return interrupted(first_iter)

    loss_fn = train_loss if backend == "cuda" else fused_train_loss
    ema_loss = None
    win_t, win_loss, win_psnr, win_n = 0.0, 0.0, 0.0, 0
    sec_per_iter = None
    it = first_iter
    last_psnr = None
    for it in range(first_iter + 1, args.iterations + 1):
        t0 = time.perf_counter()
        model.optimizer.lrs["means"] = expon_lr(it, args.position_lr_init * model.spatial_lr_scale,
                                                args.position_lr_final * model.spatial_lr_scale,
                                                args.position_lr_delay_mult, args.position_lr_max_steps)
        if it % args.sh_increase_interval == 0:
            model.oneup_sh()
        vi = view_index(args.seed, it, len(train_cams))
        drop = GaussianDropout(model.num, args.dropout, device) if args.dropout > 0 else None
        out = render(model, rcams[vi], bg, backend=backend, sh_degree=model.active_sh_degree, tile_size=args.tile_size,
                     opacity_scale=None if drop is None else drop.scale)
        img = out["image"] if exposure is None else exposure.apply(out["image"], vi)
        gt = gts[vi]
        loss = loss_fn(img, gt, args.lambda_dssim)
        loss.backward()
        with torch.no_grad():
            lv = float(loss.detach())
            pv = psnr(img.detach(), gt)
            # Evaluate and save before densification, as the reference does: an evaluation on an
            # opacity-reset iteration then measures the model, not the freshly reset opacities.
            t_side = time.perf_counter()
            if it in args.test_iterations and args.eval:
                do_eval(it)
            if it in args.save_iterations:
                rep.log(f"[ITER {it}] Saving Gaussians")
                save_ply(it)
            t_side = time.perf_counter() - t_side
            if it < args.densify_until_iter and out["means2d"].grad is not None:
                vis = out["idx"]
                if drop is not None:  # dropped Gaussians took no part: their statistics are not updated
                    vis = vis[drop.kept[vis]]
                model.add_densification_stats(vis, out["means2d"].grad[vis], out["radii"][vis], out["grad_scale"])
            if it < args.densify_until_iter:
                if it > args.densify_from_iter and it % args.densification_interval == 0:
                    size_threshold = 20 if it > args.opacity_reset_interval else None
                    model.densify_and_prune(args.densify_grad_threshold, 0.005, extent, size_threshold,
                                            args.max_gaussians or None)
                if it % args.opacity_reset_interval == 0 or (args.white_background and it == args.densify_from_iter):
                    model.reset_opacity()
            if it < args.iterations:
                # parameters replaced by densification / opacity reset carry no grad and are skipped,
                # exactly like the reference's optimizer.step() after tensor replacement
                model.optimizer.step(model.params)
                if exposure is not None:
                    exposure.step(it)
            model.zero_grad()
        dt = time.perf_counter() - t0 - t_side
        ema_loss = lv if ema_loss is None else 0.4 * lv + 0.6 * ema_loss
        last_psnr = pv
        win_t += dt
        win_loss += lv
        win_psnr += pv
        win_n += 1
        if win_n >= 10 or it == args.iterations:
            sec_per_iter = win_t / win_n
            rep.event("progress", iteration=it, loss=win_loss / win_n, psnr=win_psnr / win_n,
                      num_gaussians=model.num, sec_per_iter=sec_per_iter,
                      eta_sec=sec_per_iter * (args.iterations - it), peak_rss_mb=peak_rss_mb())
            win_t, win_loss, win_psnr, win_n = 0.0, 0.0, 0.0, 0
        if args.preview_every and it % args.preview_every == 0 and it != args.iterations:
            path = os.path.join(args.model_path, "preview", "preview.ply")
            model.save_ply(path)
            rep.event("preview", iteration=it, path=os.path.abspath(path))
        if it in args.checkpoint_iterations:
            ck = os.path.join(args.model_path, f"chkpnt{it}.pth")
            save_checkpoint(ck, model, it, args, ck_extra())
            rep.event("checkpoint", iteration=it, path=os.path.abspath(ck))
        if stop.signum is not None and it < args.iterations:
            return interrupted(it)

    wall = time.time() - t_start
    final_ply = os.path.abspath(os.path.join(args.model_path, "point_cloud", f"iteration_{args.iterations}",
                                             "point_cloud.ply"))
    done = dict(iteration=it, num_gaussians=model.num, wall_sec=wall, peak_rss_mb=peak_rss_mb(),
                train_psnr=last_psnr, loss=ema_loss, sec_per_iter=sec_per_iter, path=final_ply)
    if last_eval:
        done.update(eval_iteration=last_eval["iteration"], eval_psnr=last_eval["psnr"], eval_ssim=last_eval["ssim"])
    rep.event("done", **done)
    rep.log(f"Training complete: {model.num} Gaussians, {wall:.1f} s")
    return 0
