#!/usr/bin/env python3
"""Render held-out views of a trained model and compute metrics (PSNR, SSIM; LPIPS is not available offline).

Usage: python render.py -m MODEL_DIR [-s SOURCE] [--iteration N] [--no_images] [--progress json|text]

Views: the test split (every 8th image by name, as the reference) when the model was trained with --eval,
otherwise all views.  Writes MODEL_DIR/results.json ({"ours_N": {"PSNR", "SSIM", "LPIPS": null, "per_view"}}),
MODEL_DIR/per_view.json (reference layout) and, unless --no_images, PNGs under MODEL_DIR/<split>/ours_N/{renders,gt}.
Exit codes: 0 ok, 1 error.
"""
import argparse
import ast
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gstrain.waiting import configure_waiting  # noqa: E402

configure_waiting()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from gstrain.colmap import DataError  # noqa: E402
from gstrain.dataset import load_scene  # noqa: E402
from gstrain.exposure import read_exposures  # noqa: E402
from gstrain.loop import compare_view  # noqa: E402
from gstrain.model import GaussianModel  # noqa: E402
from gstrain.ply import atomic_write_bytes  # noqa: E402
from gstrain.progress import Reporter  # noqa: E402
from gstrain.raster_cpu import set_threads  # noqa: E402
from gstrain.rasterize import render  # noqa: E402
from gstrain.trainer import pick_backend  # noqa: E402


def read_cfg_args(model_dir):
    path = os.path.join(model_dir, "cfg_args")
    if not os.path.isfile(path):
        return {}
    text = open(path, encoding="utf-8").read().strip()
    try:
        call = ast.parse(text, mode="eval").body
        return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    except (SyntaxError, ValueError, AttributeError) as e:
        raise DataError(f"cannot parse {path}: {e}") from e


def held_out_scene(model_dir, exif_dir=None):
    """The scene a model was trained on (source, resolution and images from its cfg_args) with its held-out
    views; DataError when it was trained without --eval. For the benchmarks that look into a trained model."""
    cfg = read_cfg_args(str(model_dir))
    if not cfg.get("eval"):
        raise DataError(f"{model_dir} was trained without --eval: no held-out views")
    return load_scene(cfg["source_path"], cfg.get("resolution", -1), True, cfg.get("images", "images"),
                      exif_dir=exif_dir)


def latest_iteration(model_dir):
    pc = os.path.join(model_dir, "point_cloud")
    its = []
    if os.path.isdir(pc):
        for d in os.listdir(pc):
            if d.startswith("iteration_") and os.path.isfile(os.path.join(pc, d, "point_cloud.ply")):
                try:
                    its.append(int(d.split("_", 1)[1]))
                except ValueError:
                    pass
    if not its:
        raise DataError(f"no point_cloud/iteration_*/point_cloud.ply in {model_dir}")
    return max(its)


def save_png(t, path):
    from PIL import Image
    os.makedirs(os.path.dirname(path), exist_ok=True)
    arr = (t.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    Image.fromarray(arr).save(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model_path", required=True)
    ap.add_argument("-s", "--source_path", default=None)
    ap.add_argument("--iteration", type=int, default=-1)
    ap.add_argument("-r", "--resolution", type=int, default=None)
    ap.add_argument("--backend", choices=["auto", "cpu", "cuda", "reference"], default="auto")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no_images", action="store_true")
    ap.add_argument("--progress", choices=["json", "text"], default="text")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--exposure", choices=["recorded", "average"], default="recorded",
                    help="compare each held-out view at the exposure its photo recorded, by the law the trainer "
                         "fitted (exposure.json; recorded, the default where there is one), or at the training "
                         "photos' average exposure")
    args = ap.parse_args(argv)
    rep = Reporter(args.progress, args.quiet)
    try:
        cfg = read_cfg_args(args.model_path)
        source = args.source_path or cfg.get("source_path")
        if not source:
            raise DataError("no -s SOURCE given and no source_path in cfg_args")
        resolution = args.resolution if args.resolution is not None else cfg.get("resolution", -1)
        use_eval = bool(cfg.get("eval", False))
        white = bool(cfg.get("white_background", False))
        it = args.iteration if args.iteration > 0 else latest_iteration(args.model_path)
        ply = os.path.join(args.model_path, "point_cloud", f"iteration_{it}", "point_cloud.ply")
        if not os.path.isfile(ply):
            raise DataError(f"missing {ply}")
        backend = pick_backend(args.backend)
        device = "cuda" if backend == "cuda" else "cpu"
        set_threads(args.threads or os.cpu_count() or 1)
        scene = load_scene(source, resolution, use_eval, cfg.get("images", "images"))
    except DataError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    split = "test" if use_eval else "train"
    cams = scene.test if use_eval else scene.train
    model = GaussianModel(device=device)
    model.load_ply(ply)
    bg = torch.tensor([1.0, 1.0, 1.0] if white else [0.0, 0.0, 0.0], device=device)
    law, recorded, problem = read_exposures(args.model_path)
    if problem:
        rep.log(f"warning: {problem}")
    if args.exposure != "recorded" or not use_eval:
        law = None
    per_view = {}
    out_dir = os.path.join(args.model_path, split, f"ours_{it}")
    with torch.no_grad():
        for i, c in enumerate(cams):
            raw = render(model, c.render_camera(device=device), bg, backend=backend,
                         sh_degree=model.active_sh_degree)["image"]
            gt = c.image.to(device)
            name = f"{i:05d}.png"
            gain = None if law is None else law.gain(recorded.get(c.image_name))
            img, found = compare_view(raw, gt, gain)
            p, s = found["psnr"], found["ssim"]
            per_view[name] = {"PSNR": p, "SSIM": s, "image_name": c.image_name}
            if gain is not None:
                per_view[name].update(PSNR_average_exposure=found["psnr_average"],
                                      SSIM_average_exposure=found["ssim_average"], gain=gain)
            if not args.no_images:
                save_png(img, os.path.join(out_dir, "renders", name))
                save_png(gt, os.path.join(out_dir, "gt", name))
            rep.event("view", index=i, image_name=c.image_name, psnr=p, ssim=s)
    key = f"ours_{it}"

    def mean(field):
        return float(np.mean([v[field] for v in per_view.values()])) if per_view else None

    mean_p, mean_s = mean("PSNR"), mean("SSIM")
    results = {key: {"PSNR": mean_p, "SSIM": mean_s, "LPIPS": None, "split": split, "num_views": len(per_view),
                     "exposure": "recorded" if law is not None else "average",
                     "note": "LPIPS not computed: it needs a pretrained network that cannot be downloaded here",
                     "per_view": per_view}}
    if law is not None:
        results[key].update(PSNR_average_exposure=mean("PSNR_average_exposure"),
                            SSIM_average_exposure=mean("SSIM_average_exposure"), exposure_law=law.to_json())
    atomic_write_bytes(os.path.join(args.model_path, "results.json"), [json.dumps(results, indent=2).encode()])
    pv = {key: {"PSNR": {k: v["PSNR"] for k, v in per_view.items()}, "SSIM": {k: v["SSIM"] for k, v in per_view.items()}}}
    atomic_write_bytes(os.path.join(args.model_path, "per_view.json"), [json.dumps(pv, indent=2).encode()])
    rep.event("results", iteration=it, split=split, num_views=len(per_view), psnr=mean_p, ssim=mean_s, lpips=None,
              path=os.path.abspath(os.path.join(args.model_path, "results.json")))
    rep.log("LPIPS: not computed (no pretrained network available offline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
