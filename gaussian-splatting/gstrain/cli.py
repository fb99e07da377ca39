"""The trainer's command line (no torch import: `train.py --estimate` answers from here in a blink)."""
from __future__ import annotations

import argparse

from .colmap import DataError
from .plan import SPARSE_DROPOUT, SPARSE_GAUSSIANS_PER_VIEW, SPARSE_VIEWS

DEFAULT_ITERATIONS = 30000
MAX_BUDGET_ITERATIONS = 200_000  # a time budget never plans more than this


def build_parser():
    p = argparse.ArgumentParser(description="SplatStudio Gaussian Splatting trainer (CPU/numba or CUDA/gsplat)")
    _add_data_args(p.add_argument_group("dataset and output"))
    _add_length_args(p.add_argument_group("length, saves and checkpoints"))
    _add_strategy_args(p.add_argument_group(
        "strategy and schedule (every option left out is decided by gstrain/plan.py:make_plan, scaled to the run)"))
    _add_budget_args(p.add_argument_group("time budget"))
    _add_estimate_args(p.add_argument_group(
        "estimate without a dataset (no torch import; reads the speed profile this machine's earlier runs left)"))
    _add_optimizer_args(p.add_argument_group("learning rates and loss"))
    _add_regularisation_args(p.add_argument_group("regularisation (sparse captures, exposure)"))
    _add_running_args(p.add_argument_group("running and reporting"))
    _add_ignored_args(p.add_argument_group("accepted for command-line compatibility with the reference, ignored"))
    return p


def _add_data_args(g):
    g.add_argument("-s", "--source_path", default=None, help="COLMAP dataset: images/ and sparse/0/ (required)")
    g.add_argument("-m", "--model_path", default=None, help="output folder (required to train)")
    g.add_argument("-i", "--images", default="images")
    g.add_argument("-r", "--resolution", type=int, default=-1)
    g.add_argument("-w", "--white_background", action="store_true")
    g.add_argument("--eval", action="store_true")
    g.add_argument("--sh_degree", type=int, default=3)
    g.add_argument("--data_device", default="cpu")


def _add_length_args(g):
    g.add_argument("--iterations", type=int, default=None,
                   help=f"default {DEFAULT_ITERATIONS}; with --time_budget an upper bound when given")
    g.add_argument("--save_iterations", nargs="*", type=int, default=[7000, 30000])
    g.add_argument("--test_iterations", nargs="*", type=int, default=[7000, 30000])
    g.add_argument("--checkpoint_iterations", nargs="*", type=int, default=[])
    g.add_argument("--start_checkpoint", default=None)


def _add_strategy_args(g):
    g.add_argument("--strategy", choices=["adc", "mcmc"], default="adc",
                   help="adc: the reference's adaptive density control (clone / split / prune, opacity resets; "
                        "the default); mcmc: a fixed Gaussian budget with relocation")
    g.add_argument("--max_gaussians", type=int, default=0,
                   help="mcmc: the Gaussian budget (\"scene detail\"; 0 = automatic, by the number of photos); "
                        "adc: a cap on densification (0 = none)")
    g.add_argument("--densify_from_iter", type=int, default=None, help="adc; default 500 (scaled for short runs)")
    g.add_argument("--densify_until_iter", type=int, default=None, help="adc; default 15000 (scaled)")
    g.add_argument("--densification_interval", type=int, default=None, help="adc; default 100 (scaled)")
    g.add_argument("--opacity_reset_interval", type=int, default=None, help="adc; default 3000 (scaled)")
    g.add_argument("--densify_grad_threshold", type=float, default=0.0002)
    g.add_argument("--refine_from_iter", type=int, default=None, help="mcmc; default min(500, 5%% of the run)")
    g.add_argument("--refine_until_iter", type=int, default=None, help="mcmc; default 83%% of the run")
    g.add_argument("--refine_every", type=int, default=None, help="mcmc; default 100 (scaled for short runs)")
    g.add_argument("--opacity_reg", type=float, default=0.01, help="mcmc: L1 weight on opacity")
    g.add_argument("--scale_reg", type=float, default=0.01, help="mcmc: L1 weight on scale (normalised scene)")
    g.add_argument("--init_opacity", type=float, default=0.5, help="mcmc: opacity of the initial Gaussians")
    g.add_argument("--init_scale", type=float, default=0.1, help="mcmc: initial scale, times the neighbour distance")
    g.add_argument("--sh_increase_interval", type=int, default=None, help="default 1000 (scaled, min 10)")
    g.add_argument("--coarse_to_fine", type=int, default=4,
                   help="first downscale factor of the resolution schedule (1 = the training resolution "
                        "throughout); levels whose photos' short side would be < 100 px are skipped")
    g.add_argument("--full_resolution_at", type=float, default=0.5,
                   help="share of the run after which training uses the full training resolution")
    g.add_argument("--sparse_adam", choices=["on", "off"], default="off",
                   help="on: update only the Gaussians that took part in a step (sparse Adam; ~3 %% faster, "
                        "0.1-0.2 dB lower held out on monstree); off: all of them, as the reference (default)")


def _add_budget_args(g):
    g.add_argument("--time_budget", type=float, default=0,
                   help="minutes for the whole run: the number of iterations is planned (and re-planned) from the "
                        "speed measured on this machine so that the run ends within the budget")
    g.add_argument("--plan", action="store_true",
                   help="print the plan for SOURCE and its expected duration on this machine (measured with a few "
                        "timed renders) as JSON, then exit")


def _add_estimate_args(g):
    g.add_argument("--estimate", action="store_true",
                   help="print the plan for --views photos of --width x --height and its expected duration, time "
                        "per iteration and memory as JSON, then exit")
    g.add_argument("--views", type=int, default=20, help="training photos")
    g.add_argument("--width", type=int, default=800, help="training image width")
    g.add_argument("--height", type=int, default=600, help="training image height")
    g.add_argument("--detail_steps", nargs="*", type=int, default=[],
                   help="also estimate time per iteration and memory at these Gaussian budgets")


def _add_optimizer_args(g):
    g.add_argument("--position_lr_init", type=float, default=0.00016)
    g.add_argument("--position_lr_final", type=float, default=0.0000016)
    g.add_argument("--position_lr_delay_mult", type=float, default=0.01)
    g.add_argument("--position_lr_max_steps", type=int, default=None, help="default: the run's iterations")
    g.add_argument("--position_lr_decay_from", type=int, default=None,
                   help="the position learning rate stays at its start value until this iteration, then decays to "
                        "its final value by position_lr_max_steps (default: where full resolution starts, as "
                        "DashGaussian; 0 without coarse-to-fine)")
    g.add_argument("--feature_lr", type=float, default=0.0025)
    g.add_argument("--opacity_lr", type=float, default=0.025)
    g.add_argument("--scaling_lr", type=float, default=0.005)
    g.add_argument("--rotation_lr", type=float, default=0.001)
    g.add_argument("--percent_dense", type=float, default=0.01)
    g.add_argument("--lambda_dssim", type=float, default=0.2)


def _add_regularisation_args(g):
    g.add_argument("--dropout", type=float, default=None,
                   help=f"Gaussian dropout rate during training (default {SPARSE_DROPOUT} for a sparse capture, else 0)")
    g.add_argument("--sparse", choices=["auto", "on", "off"], default="auto",
                   help=f"regularisation for captures with few photos: auto = on below {SPARSE_VIEWS} training views "
                        "(Gaussian dropout and a per-view Gaussian budget); off = the reference's behaviour")
    g.add_argument("--gaussians_per_view", type=int, default=SPARSE_GAUSSIANS_PER_VIEW,
                   help="sparse captures: at most this many Gaussians per training view (0 = no budget)")
    g.add_argument("--exposure", choices=["on", "off"], default="on",
                   help="learn a colour transform per training photo for its exposure / white balance (on; off = "
                        "the reference's default); the model renders at the training photos' average exposure")
    g.add_argument("--test_exposure", choices=["recorded", "average"], default="recorded",
                   help="held-out views are compared at the exposure their photo's EXIF records, by the law the "
                        "training photos' learnt gains follow (recorded; the average where no EXIF says), or all at "
                        "the training photos' average exposure (average; as the reference)")
    g.add_argument("--exif_from", default=None, metavar="DIR",
                   help="read each photo's recorded exposure from the photo of the same name in DIR (when the "
                        "dataset's images lost their EXIF, as COLMAP's undistorted copies may)")


def _add_running_args(g):
    g.add_argument("--quiet", action="store_true")
    g.add_argument("--backend", choices=["auto", "cpu", "cuda", "reference"], default="auto")
    g.add_argument("--threads", type=int, default=0, help="numba/torch threads (default: all cores)")
    g.add_argument("--progress", choices=["json", "text"], default="text")
    g.add_argument("--stop_with_parent", action="store_true",
                   help="save a checkpoint and stop when the process that started this one ends (a launcher "
                        "killed on any POSIX system; Linux's parent-death signal alone is Linux only)")
    g.add_argument("--preview_every", type=int, default=0)
    g.add_argument("--eval_every_sec", type=float, default=0,
                   help="with --eval, also evaluate the held-out views every this many seconds of training")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--tile_size", type=int, default=16, choices=[16])


def _add_ignored_args(g):
    g.add_argument("--ip", default="127.0.0.1")
    g.add_argument("--port", type=int, default=6009)
    g.add_argument("--disable_viewer", action="store_true")
    g.add_argument("--debug_from", type=int, default=-1)
    g.add_argument("--detect_anomaly", action="store_true")


def check_args(args):
    """One-line errors for values no run can use (before anything is written)."""
    if not args.source_path:
        raise DataError("-s/--source_path is required (a COLMAP dataset folder)")
    if not args.model_path and not args.plan:
        raise DataError("-m/--model_path is required (the output folder)")
    if args.dropout is not None and not 0.0 <= args.dropout < 1.0:
        raise DataError(f"--dropout must be in [0, 1), got {args.dropout}")
    if args.gaussians_per_view < 0:
        raise DataError(f"--gaussians_per_view must be 0 (no budget) or more, got {args.gaussians_per_view}")
    if args.iterations is not None and args.iterations < 1:
        raise DataError(f"--iterations must be at least 1, got {args.iterations}")
    if args.time_budget < 0:
        raise DataError(f"--time_budget must be a number of minutes above 0, got {args.time_budget:g}")
    if args.coarse_to_fine < 1:
        raise DataError(f"--coarse_to_fine must be 1 (off) or more, got {args.coarse_to_fine}")
    if not 0.0 <= args.full_resolution_at <= 1.0:
        raise DataError(f"--full_resolution_at must be in [0, 1], got {args.full_resolution_at:g}")
    if args.max_gaussians < 0:
        raise DataError(f"--max_gaussians must be 0 (automatic) or more, got {args.max_gaussians}")


