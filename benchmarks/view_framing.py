"""How much of the frame a scene's subject fills in the viewer's home view (issue 25, item 4: `splatstudio
view FILE` opened on an unrecognisable blur).

    .venv/bin/python benchmarks/view_framing.py MODEL/point_cloud/iteration_N/point_cloud.ply [--size 1280x720]

The subject is the scene's detail (`camera.detail_mask`); the figure is the area of the 5-95 percentile box of their projections over the frame's area, for
the home view with the cameras beside the file (`headless.cameras_beside`) and without them, and for the
old default (the sphere around every position's 2-98 % box, seen with +z up).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from splatstudio.io.formats import load_splats
from splatstudio.render import camera as cam
from splatstudio.render.headless import cameras_beside, parse_size


def coverage(home: cam.OrbitCamera, points: np.ndarray, width: int, height: int) -> float:
    """Area of the 5-95 % box of `points` projected from `home`, over the frame's (clipped to the frame)."""
    pose = home.pose()
    rel = (points - pose.center) @ np.stack([pose.right, -pose.up, pose.forward]).T
    rel = rel[rel[:, 2] > 1e-6]
    if len(rel) == 0:
        return 0.0
    focal = (height / 2) / np.tan(np.radians(home.fov_y_deg) / 2)
    u = focal * rel[:, 0] / rel[:, 2] + width / 2
    v = focal * rel[:, 1] / rel[:, 2] + height / 2
    u0, u1 = np.clip(np.percentile(u, [5, 95]), 0, width)
    v0, v1 = np.clip(np.percentile(v, [5, 95]), 0, height)
    return float((u1 - u0) * (v1 - v0) / (width * height))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path)
    parser.add_argument("--size", type=parse_size, default=(1280, 720))
    args = parser.parse_args()
    cloud = load_splats(args.file)
    lo, hi = cam.scene_box(cloud.positions, cloud.opacities, cloud.scales)
    center, radius = cam.box_frame(lo, hi)
    detail = cloud.positions[cam.detail_mask(cloud.opacities, cloud.scales)].astype(np.float64)
    width, height = args.size
    old = cam.OrbitCamera()
    old.frame(*cam.box_frame(*cam.scene_box(cloud.positions)))
    rows = [("old default view", old), ("home view, no cameras", cam.home_view([], center, radius,
                                                                               half_extent=(hi - lo) / 2))]
    found = cameras_beside(args.file)
    if found is not None:
        rows.append((f"home view, {found.name} beside", cam.home_view(cam.load_training_cameras(found), center,
                                                                      radius, half_extent=(hi - lo) / 2)))
    print(f"{args.file} ({len(cloud):,} splats, {len(detail):,} detail), frame {width}x{height}")
    for label, home in rows:
        print(f"  {label:<32} subject covers {coverage(home, detail, width, height):.0%} of the frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
