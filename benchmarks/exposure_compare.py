"""A trained model's held-out PSNR / SSIM at the training photos' average exposure and at each held-out photo's
recorded exposure, the latter with this checkout's law fitted to the exposures the run learnt (its checkpoint).

    .venv/bin/python benchmarks/exposure_compare.py MODEL_DIR --iteration 7000 [--exif_from PHOTOS] [--threads 2]

For models of trainers that predate ``--test_exposure recorded`` (``time_to_quality.py``'s ``today``): it tells
how much of the new method's held-out figure comes from the comparison alone. MODEL_DIR needs ``cfg_args``
(source, resolution, ``--eval``), ``point_cloud/iteration_N/point_cloud.ply`` and ``chkpnt<N>.pth`` with the
run's exposures (``extra.exposure``). Prints one JSON line: psnr / ssim at the recorded exposures, psnr_average /
ssim_average, the law and each held-out view's gain.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "gaussian-splatting"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--iteration", type=int, required=True)
    ap.add_argument("--exif_from", default=None, help="photos whose EXIF records the exposures (same names)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch
    from gstrain.checkpoint import load_checkpoint
    from gstrain.colmap import DataError
    from gstrain.exposure import Exposure, fit_law, learnt_gains
    from gstrain.loop import evaluate
    from gstrain.model import GaussianModel
    from gstrain.raster_cpu import set_threads
    from render import held_out_scene

    set_threads(args.threads)
    try:
        scene = held_out_scene(args.model_dir, args.exif_from)
        saved = load_checkpoint(str(args.model_dir / f"chkpnt{args.iteration}.pth")).get("extra", {}).get("exposure")
        if saved is None:
            raise DataError(f"the checkpoint of {args.model_dir} holds no exposures (trained with --exposure off?)")
        exposure = Exposure(len(scene.train), args.iteration)
        exposure.load_state_dict(saved)
    except (DataError, OSError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    means = torch.stack([c.mean_colour() for c in scene.train])
    law = fit_law([c.exposure for c in scene.train], learnt_gains(exposure, means))
    if law is None:
        print("error: too few training photos record an exposure to fit a law (see --exif_from)", file=sys.stderr)
        return 1
    model = GaussianModel(device="cpu")
    model.load_ply(str(args.model_dir / "point_cloud" / f"iteration_{args.iteration}" / "point_cloud.ply"))
    gains = [law.gain(c.exposure) for c in scene.test]
    result = evaluate(model, scene.test, torch.zeros(3), "cpu", "cpu", 16, gains)
    print(json.dumps({**result, "law": law.to_json(), "gains": dict(zip([c.image_name for c in scene.test], gains,
                                                                         strict=True))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
