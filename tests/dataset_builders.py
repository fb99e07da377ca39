"""Tiny datasets made from the procedural sample scene, with known cameras: a COLMAP folder (binary or
text), a nerfstudio ``transforms.json`` written exactly as nerfstudio's ``colmap_to_json`` writes it,
and a reference-trainer output folder. Shared by tests/unit/test_datasets.py and tests/e2e/test_datasets.py.
"""

from __future__ import annotations

import functools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from splatstudio.io import colmap
from splatstudio.io.ply import write_splat_ply
from splatstudio.model.cleanup import Views
from splatstudio.model.geometry import matrix_to_quaternion
from splatstudio.model.sample import (
    HORIZONTAL_FOV_DEG,
    Intrinsics,
    SampleCamera,
    build_scene,
    orbit_cameras,
    render_depth,
    render_view,
)
from splatstudio.model.splatcloud import SplatCloud, sh_rest_count


@dataclass
class Photos:
    """Rendered views of the sample scene: JPEG files, their known cameras, and surface points."""

    folder: Path
    intrinsics: Intrinsics
    cameras: list[SampleCamera]
    points_xyz: np.ndarray
    points_rgb: np.ndarray

    def poses(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {cam.name: (cam.rotation, cam.translation) for cam in self.cameras}


@functools.lru_cache(maxsize=1)
def exposure_exif(exposure_time: float, iso: int, f_number: float) -> bytes:
    """An EXIF block recording one exposure (time in seconds, ISO, f-number), as a camera writes it: in the
    Exif sub-IFD."""
    from PIL import TiffImagePlugin
    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)
    sub[0x829A] = TiffImagePlugin.IFDRational(exposure_time)
    sub[0x8827] = int(iso)
    sub[0x829D] = TiffImagePlugin.IFDRational(f_number)
    return exif.tobytes()


def _scene(seed: int):
    return build_scene(seed)  # seconds on a loaded 2-core machine: built once per test session


def render_photos(folder: Path, count: int = 8, width: int = 160, height: int = 120, seed: int = 0,
                  points: int = 3000) -> Photos:
    """``count`` orbit views as JPEGs in ``folder`` and ``points`` surface points seen by them."""
    scene = _scene(seed)
    intrinsics = Intrinsics.from_fov_x(width, height, HORIZONTAL_FOV_DEG)
    cameras = orbit_cameras(count, seed)
    folder.mkdir(parents=True, exist_ok=True)
    xyz_parts, rgb_parts = [], []
    for index, camera in enumerate(cameras):
        pixels = render_view(scene, camera, intrinsics)
        Image.fromarray(pixels).save(folder / camera.name, quality=92)
        if index % 2:
            continue
        depth, _ = render_depth(scene, camera, intrinsics)
        rows, cols = np.nonzero(depth < 15.0)  # the toy and its mat, not the far dome
        d = depth[rows, cols]
        cam = np.stack([(cols + 0.5 - intrinsics.cx) / intrinsics.fx * d,
                        (rows + 0.5 - intrinsics.cy) / intrinsics.fy * d, d], axis=1)
        xyz_parts.append((cam - camera.translation) @ camera.rotation)  # R^T (x - t)
        rgb_parts.append(pixels[rows, cols])
    xyz, rgb = np.concatenate(xyz_parts), np.concatenate(rgb_parts)
    pick = np.random.default_rng(seed).choice(len(xyz), size=min(points, len(xyz)), replace=False)
    return Photos(folder, intrinsics, cameras, xyz[pick], rgb[pick])


def colmap_model(photos: Photos, model: str = "PINHOLE", k1: float = 0.0) -> colmap.ColmapModel:
    k = photos.intrinsics
    params = {"PINHOLE": [k.fx, k.fy, k.cx, k.cy], "SIMPLE_PINHOLE": [k.fx, k.cx, k.cy],
              "OPENCV": [k.fx, k.fy, k.cx, k.cy, k1, 0.0, 0.0, 0.0],
              "SIMPLE_RADIAL": [k.fx, k.cx, k.cy, k1]}[model]
    cameras = {1: colmap.Camera(1, model, k.width, k.height, np.array(params))}
    images = {i: colmap.Image(i, matrix_to_quaternion(cam.rotation), cam.translation.copy(), 1, cam.name)
              for i, cam in enumerate(photos.cameras, start=1)}
    n = len(photos.points_xyz)
    points = colmap.Points3D.without_tracks(np.arange(1, n + 1), photos.points_xyz, photos.points_rgb,
                                            np.full(n, 0.5))
    return colmap.ColmapModel(cameras, images, points)


def write_colmap_folder(folder: Path, photos: Photos, binary: bool = True, model: str = "PINHOLE",
                        k1: float = 0.0) -> Path:
    """``images/`` + ``sparse/0`` as COLMAP (or the reference's convert.py) leaves them."""
    shutil.copytree(photos.folder, folder / "images")
    colmap.write_model(colmap_model(photos, model, k1), folder / "sparse" / "0", binary=binary)
    return folder


def nerfstudio_c2w(rotation: np.ndarray, translation: np.ndarray, applied: bool) -> np.ndarray:
    """What nerfstudio's ``colmap_to_json`` (process_data/colmap_utils.py) writes as transform_matrix."""
    w2c = np.concatenate([np.concatenate([rotation, translation.reshape(3, 1)], 1), [[0, 0, 0, 1]]], 0)
    c2w = np.linalg.inv(w2c)
    c2w[0:3, 1:3] *= -1
    if applied:
        c2w = c2w[np.array([0, 2, 1, 3]), :]
        c2w[2, :] *= -1
    return c2w


def nerfstudio_applied_transform() -> np.ndarray:
    applied = np.eye(4)[:3, :]
    applied = applied[np.array([0, 2, 1]), :]
    applied[2, :] *= -1
    return applied


def write_nerfstudio(folder: Path, photos: Photos, applied: bool = True, ply: bool = True,
                     distortion: dict[str, float] | None = None) -> Path:
    """A dataset as ``ns-process-data`` writes it: images/, transforms.json, sparse_pc.ply (ASCII)."""
    shutil.copytree(photos.folder, folder / "images")
    k = photos.intrinsics
    out = {"w": k.width, "h": k.height, "fl_x": k.fx, "fl_y": k.fy, "cx": k.cx, "cy": k.cy,
           "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0, "camera_model": "OPENCV", **(distortion or {})}
    out["frames"] = [{"file_path": f"images/{cam.name}",
                      "transform_matrix": nerfstudio_c2w(cam.rotation, cam.translation, applied).tolist(),
                      "colmap_im_id": i} for i, cam in enumerate(photos.cameras, start=1)]
    if applied:
        out["applied_transform"] = nerfstudio_applied_transform().tolist()
    if ply:
        xyz = photos.points_xyz
        if applied:
            a = nerfstudio_applied_transform()
            xyz = xyz @ a[:3, :3].T + a[:3, 3]
        lines = ["ply", "format ascii 1.0", f"element vertex {len(xyz)}", "property float x", "property float y",
                 "property float z", "property uint8 red", "property uint8 green", "property uint8 blue",
                 "end_header"]
        lines += [f"{x:8f} {y:8f} {z:8f} {r} {g} {b}" for (x, y, z), (r, g, b) in zip(xyz, photos.points_rgb,
                                                                                         strict=True)]
        (folder / "sparse_pc.ply").write_text("\n".join(lines) + "\n")
        out["ply_file_path"] = "sparse_pc.ply"
    (folder / "transforms.json").write_text(json.dumps(out, indent=4))
    return folder


def write_trainer_output(folder: Path, photos: Photos, source: Path | None, iterations: tuple[int, ...] = (7000, 30000),
                         gaussians: int = 500, sh_degree: int = 3) -> Path:
    """A reference ``train.py`` model folder: point_cloud/iteration_N/point_cloud.ply, cameras.json, cfg_args."""
    rng = np.random.default_rng(1)
    for n in iterations:
        cloud = SplatCloud(positions=rng.normal(0.0, 0.5, (gaussians, 3)) + [0.0, 0.0, 0.5],
                           scales=rng.normal(-4.0, 0.5, (gaussians, 3)), rotations=rng.normal(0.0, 1.0, (gaussians, 4)),
                           opacities=rng.normal(0.0, 2.0, gaussians), sh_dc=rng.normal(0.0, 1.0, (gaussians, 3)),
                           sh_rest=rng.normal(0.0, 0.1, (gaussians, sh_rest_count(sh_degree), 3)))
        write_splat_ply(folder / "point_cloud" / f"iteration_{n}" / "point_cloud.ply", cloud)
    k = photos.intrinsics
    cameras = [{"id": i, "img_name": cam.name.rsplit(".", 1)[0], "width": k.width, "height": k.height,
                "position": cam.center.tolist(), "rotation": cam.rotation.T.tolist(), "fy": k.fy, "fx": k.fx}
               for i, cam in enumerate(photos.cameras)]
    (folder / "cameras.json").write_text(json.dumps(cameras))
    (folder / "cfg_args").write_text(
        f"Namespace(sh_degree={sh_degree}, source_path={str(source) if source else ''!r}, model_path={str(folder)!r}, "
        "images='images', depths='', resolution=-1, white_background=False, train_test_exp=False, "
        "data_device='cuda', eval=True)")
    return folder


# ------------------------------------------------------------------------ junk for the clean-up

def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def ring_views(count: int = 12, radius: float = 4.0) -> Views:
    """Clean-up views (``model.cleanup.Views``): cameras on a ring around the origin, each looking at it (x right, y down, z forward)."""
    centres, rotations = [], []
    for angle in np.linspace(0, 2 * np.pi, count, endpoint=False):
        centre = np.array([radius * np.cos(angle), radius * np.sin(angle), 0.0])
        forward = -centre / np.linalg.norm(centre)
        down = np.array([0.0, 0.0, -1.0])
        right = np.cross(down, forward)
        rotations.append(np.stack([right, down, forward], axis=1))
        centres.append(centre)
    n = np.ones(count)
    return Views(np.array(centres), np.array(rotations), 400 * n, 400 * n, 640 * n, 480 * n)


def junk_scene(seed: int = 0) -> tuple[SplatCloud, dict[str, np.ndarray]]:
    """A subject (a blob of opaque splats around the origin) with every kind of junk the clean-up finds
    planted: the indices of each part by name (subject, faint, oversized, unseen, far, isolated)."""
    rng = np.random.default_rng(seed)
    subject = rng.normal(scale=0.4, size=(4000, 3))
    parts = {
        "subject": subject,
        "faint": rng.normal(scale=0.4, size=(40, 3)),
        "oversized": rng.normal(scale=0.4, size=(10, 3)),
        "unseen": np.array([[0.0, 0.0, 30.0]]) + rng.normal(scale=0.3, size=(15, 3)),  # above every camera
        "far": rng.normal(size=(30, 3)) * 0.1 + np.array([300.0, 0.0, 0.0]),
        "isolated": np.array([[2.0, 0.5, 0.3], [-1.8, 1.9, -0.4], [0.3, -2.5, 0.5], [1.5, 2.2, 0.8]]),
    }
    positions = np.concatenate(list(parts.values())).astype(np.float32)
    n = len(positions)
    scales = np.full((n, 3), np.log(0.01), np.float32)
    opacities = np.full(n, _logit(0.9), np.float32)
    index, spans = 0, {}
    for name, block in parts.items():
        spans[name] = np.arange(index, index + len(block))
        index += len(block)
    opacities[spans["faint"]] = _logit(0.004)
    scales[spans["oversized"]] = np.log(2.0)
    cloud = SplatCloud(positions=positions, scales=scales, rotations=np.tile([1, 0, 0, 0], (n, 1)).astype(np.float32),
                       opacities=opacities, sh_dc=rng.normal(size=(n, 3)).astype(np.float32))
    return cloud, spans
