"""Helpers for the trainer tests (importable as `gs_testlib`; conftest.py holds the fixtures).

Adds gaussian-splatting/ to sys.path (the trainer is a standalone program, not an installed package) and
generates tiny synthetic COLMAP datasets: a random Gaussian scene rendered from cameras on a ring with
the trainer's own CPU rasteriser, written as PNG images + binary sparse/0 (PINHOLE) + noisy points3D.
"""
from __future__ import annotations

import os
import sys
from types import SimpleNamespace

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GS_DIR = os.path.join(REPO, "gaussian-splatting")
TRAIN_PY = os.path.join(GS_DIR, "train.py")
RENDER_PY = os.path.join(GS_DIR, "render.py")
if GS_DIR not in sys.path:
    sys.path.insert(0, GS_DIR)

import torch  # noqa: E402
from gstrain import colmap  # noqa: E402
from gstrain.rasterize import RenderCamera, render  # noqa: E402


def look_at(center, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)):
    """World->camera rotation and translation (COLMAP convention: x right, y down, z forward)."""
    center = np.asarray(center, np.float64)
    f = np.asarray(target, np.float64) - center
    f /= np.linalg.norm(f)
    r = np.cross(f, np.asarray(up, np.float64))
    r /= np.linalg.norm(r)
    d = np.cross(f, r)
    R = np.stack([r, d, f], 0)
    return R, -R @ center


def random_gaussians(n, seed, sh_degree=0, dtype=torch.float64, extent=1.0):
    g = torch.Generator().manual_seed(seed)
    K = (sh_degree + 1) ** 2
    means = (torch.rand(n, 3, generator=g, dtype=torch.float64) - 0.5) * 2 * extent
    log_scales = torch.log(torch.rand(n, 3, generator=g, dtype=torch.float64) * 0.12 + 0.04) + np.log(extent)
    quats = torch.randn(n, 4, generator=g, dtype=torch.float64)
    opac = torch.randn(n, 1, generator=g, dtype=torch.float64) + 1.0
    sh = torch.randn(n, K, 3, generator=g, dtype=torch.float64) * 0.3
    sh[:, 0] = torch.randn(n, 3, generator=g, dtype=torch.float64) * 1.2
    return SimpleNamespace(means=means.to(dtype), log_scales=log_scales.to(dtype), quats=quats.to(dtype),
                           opacity_logits=opac.to(dtype), sh=sh.to(dtype))


def ring_cameras(n_views, W, H, radius=4.0, height=1.2, f=None):
    f = f or 0.95 * W
    cams = []
    for i in range(n_views):
        ang = 2 * np.pi * i / n_views
        C = np.array([radius * np.cos(ang), radius * np.sin(ang), height * (1 if i % 2 else 0.6)])
        R, t = look_at(C)
        cams.append((R, t, f, f, W / 2.0, H / 2.0))
    return cams


def make_dataset(root, n_views=10, W=64, H=64, seed=0, n_gauss=120, n_points=400, camera_model="PINHOLE",
                 text=False, gains=None, exposures=None):
    """Render a random Gaussian scene and write a COLMAP-style dataset. Returns the root path.
    gains: optional per-view brightness factors, as photos taken at different exposures.
    exposures: optional per-view (exposure time s, ISO, f-number) written into each photo's EXIF."""
    from dataset_builders import exposure_exif
    from PIL import Image
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    sparse = os.path.join(root, "sparse", "0")
    os.makedirs(sparse, exist_ok=True)
    gs = random_gaussians(n_gauss, seed, 0, torch.float32)
    bg = torch.zeros(3)
    imgs = []
    for i, (R, t, fx, fy, cx, cy) in enumerate(ring_cameras(n_views, W, H)):
        V = np.eye(4)
        V[:3, :3] = R
        V[:3, 3] = t
        cam = RenderCamera(torch.tensor(V, dtype=torch.float32), fx, fy, cx, cy, W, H)
        with torch.no_grad():
            img = render(gs, cam, bg, backend="cpu", sh_degree=0)["image"]
            img = (img * (1.0 if gains is None else gains[i])).clamp(0, 1)
        arr = (img.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        name = f"view_{i:03d}.png"
        Image.fromarray(arr).save(os.path.join(root, "images", name),
                                  exif=None if exposures is None else exposure_exif(*exposures[i]))
        imgs.append(colmap.ColmapImage(i + 1, colmap.rotmat2qvec(R), t, 1, name))
    if camera_model == "PINHOLE":
        params = np.array([fx, fy, cx, cy])
    elif camera_model == "SIMPLE_PINHOLE":
        params = np.array([fx, cx, cy])
    elif camera_model == "SIMPLE_RADIAL":
        params = np.array([fx, cx, cy, 0.01])
    else:
        raise ValueError(camera_model)
    cams = [colmap.ColmapCamera(1, camera_model, W, H, params)]
    rng = np.random.default_rng(seed)
    # noisy SfM points sampled around the Gaussian centres, coloured by their DC colour
    src = rng.integers(0, n_gauss, n_points)
    xyz = gs.means.numpy()[src] + rng.normal(0, 0.05, (n_points, 3))
    rgb = np.clip((gs.sh[:, 0].numpy() * 0.28209479177387814 + 0.5)[src] * 255, 0, 255).astype(np.uint8)
    if text:
        with open(os.path.join(sparse, "cameras.txt"), "w") as f:
            for c in cams:
                f.write(f"{c.id} {c.model} {c.width} {c.height} " + " ".join(map(str, c.params)) + "\n")
        with open(os.path.join(sparse, "images.txt"), "w") as f:
            for im in imgs:
                f.write(f"{im.id} " + " ".join(map(str, im.qvec)) + " " + " ".join(map(str, im.tvec))
                        + f" {im.camera_id} {im.name}\n\n")
        with open(os.path.join(sparse, "points3D.txt"), "w") as f:
            for i, (p, c) in enumerate(zip(xyz, rgb, strict=False)):
                f.write(f"{i + 1} {p[0]} {p[1]} {p[2]} {c[0]} {c[1]} {c[2]} 0.0\n")
    else:
        colmap.write_cameras_binary(os.path.join(sparse, "cameras.bin"), cams)
        colmap.write_images_binary(os.path.join(sparse, "images.bin"), imgs)
        colmap.write_points3d_binary(os.path.join(sparse, "points3D.bin"), xyz, rgb)
    return root


def run_train(args, timeout=300, env_extra=None):
    import subprocess
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if env_extra:
        env.update(env_extra)
    return subprocess.run([sys.executable, TRAIN_PY] + list(args), capture_output=True, text=True, timeout=timeout,
                          env=env)


def json_events(stdout):
    import json
    out = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out
