"""How much of a trained model's held-out error is its held-out cameras' poses? A diagnostic, never a score: for each
held-out view it searches a small pose correction (a rotation and a translation in the camera's frame, Powell) that
raises PSNR against the photo, after one brightness gain fitted to the photo (so the search finds pose, not
exposure). A large gain says pose accuracy limits held-out quality (pose refinement would pay); a few hundredths of a
dB say it does not.

    .venv/bin/python benchmarks/pose_headroom.py MODEL_DIR --iteration 7000 [--views test|train] [--threads 2]

MODEL_DIR needs ``cfg_args`` (source, resolution, ``--eval``) and ``point_cloud/iteration_N/point_cloud.ply``.
``--views train`` searches the first three training views instead (a control: their poses were trained on).
Prints one line a view: PSNR before and after, the correction (degrees; translation as a fraction of the training
cameras' spread), renders and seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "gaussian-splatting"))

ROTATION_STEP = 1e-3  # radians a unit of the search's rotation
TRANSLATION_STEP = 1e-3  # the cameras' spread a unit of its translation


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--iteration", type=int, required=True)
    ap.add_argument("--views", choices=("test", "train"), default="test")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import numpy as np
    import torch
    from gstrain.colmap import DataError
    from gstrain.losses import psnr
    from gstrain.model import GaussianModel
    from gstrain.raster_cpu import set_threads
    from gstrain.rasterize import RenderCamera, render
    from render import held_out_scene
    from scipy.optimize import minimize
    from scipy.spatial.transform import Rotation

    set_threads(args.threads)
    try:
        scene = held_out_scene(args.model_dir)
        model = GaussianModel(device="cpu")
        model.load_ply(str(args.model_dir / "point_cloud" / f"iteration_{args.iteration}" / "point_cloud.ply"))
    except (DataError, OSError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    centres = np.stack([c.center for c in scene.train])
    spread = float(np.median(np.linalg.norm(centres - centres.mean(0), axis=1)))
    background = torch.zeros(3)

    def score(cam, x, photo) -> float:
        """PSNR of the view moved by x, after the brightness gain that fits the photo best."""
        turn = Rotation.from_rotvec(x[:3] * ROTATION_STEP).as_matrix()
        view = np.eye(4)
        view[:3, :3] = turn @ cam.R
        view[:3, 3] = turn @ cam.T + x[3:] * TRANSLATION_STEP * spread
        moved = RenderCamera(torch.tensor(view, dtype=torch.float32), cam.fx, cam.fy, cam.cx, cam.cy, cam.width,
                             cam.height)
        with torch.no_grad():
            image = render(model, moved, background, backend="cpu", sh_degree=model.active_sh_degree)["image"]
        image = image.clamp(0, 1)
        gain = float((image * photo).sum() / (image * image).sum())
        return float(psnr((image * gain).clamp(0, 1), photo))

    for cam in (scene.test if args.views == "test" else scene.train[:3]):
        started = time.perf_counter()
        photo = cam.image
        before = score(cam, np.zeros(6), photo)
        found = minimize(lambda x, cam=cam, photo=photo: -score(cam, x, photo), np.zeros(6), method="Powell",
                         options={"xtol": 0.05, "ftol": 1e-4, "maxfev": 300})
        turn = np.degrees(np.linalg.norm(found.x[:3]) * ROTATION_STEP)
        shift = np.linalg.norm(found.x[3:]) * TRANSLATION_STEP
        print(f"{args.views} {cam.image_name} {cam.width}x{cam.height}: {before:.2f} -> {-found.fun:.2f} dB "
              f"({-found.fun - before:+.2f}); rotation {turn:.3f} deg, translation {shift:.4f} of the cameras' "
              f"spread; {found.nfev} renders, {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
