"""Scene loading: COLMAP model + images -> cameras with ground-truth tensors, train/test split."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .colmap import SUPPORTED_MODELS, DataError, qvec2rotmat, read_model
from .exposure import photos_by_stem, recorded_exposure
from .rasterize import RenderCamera


@dataclass
class Camera:
    uid: int
    image_name: str  # file name without extension (as the reference)
    file_name: str
    R: np.ndarray  # world -> camera rotation (3x3)
    T: np.ndarray  # world -> camera translation
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    orig_width: int
    orig_height: int
    orig_fx: float
    orig_fy: float
    pixels: torch.Tensor = None  # (3, H, W) uint8, as decoded (a quarter of the memory of float32)
    exposure: float = None  # recorded in the photo's EXIF (time x ISO / f-number^2); None when unknown

    @property
    def image(self):
        """(3, H, W) float32 in [0, 1] (made from `pixels` on each call)."""
        return None if self.pixels is None else self.pixels.to(torch.float32) / 255.0

    def render_camera(self, dtype=torch.float32, device="cpu"):
        V = np.eye(4)
        V[:3, :3] = self.R
        V[:3, 3] = self.T
        return RenderCamera(torch.tensor(V, dtype=dtype, device=device), self.fx, self.fy, self.cx, self.cy,
                            self.width, self.height)

    def level_size(self, factor):
        """Image size at a downscale factor of the training resolution (at least 1 pixel each way)."""
        return max(1, int(round(self.width / factor))), max(1, int(round(self.height / factor)))

    def level_camera(self, factor, dtype=torch.float32, device="cpu"):
        """The render camera for the training image scaled down by `factor` (intrinsics scaled with the
        image: pixel centres at i + 0.5 in both)."""
        if factor == 1:
            return self.render_camera(dtype, device)
        W, H = self.level_size(factor)
        sx, sy = W / self.width, H / self.height
        V = np.eye(4)
        V[:3, :3] = self.R
        V[:3, 3] = self.T
        return RenderCamera(torch.tensor(V, dtype=dtype, device=device), self.fx * sx, self.fy * sy, self.cx * sx,
                            self.cy * sy, W, H)

    def level_pixels(self, factor):
        """The training image scaled down by `factor` with area averaging (each pixel the mean of the
        full-resolution pixels it covers, rounded to uint8 like the photo), made once and kept until
        drop_levels()."""
        if factor == 1:
            return self.pixels
        cache = self.__dict__.setdefault("_levels", {})
        img = cache.get(factor)
        if img is None:
            W, H = self.level_size(factor)
            small = torch.nn.functional.interpolate(self.pixels[None].to(torch.float32), size=(H, W), mode="area")[0]
            img = small.round_().clamp_(0, 255).to(torch.uint8).contiguous()
            cache[factor] = img
        return img

    def level_image(self, factor):
        """level_pixels as float32 in [0, 1]."""
        return self.level_pixels(factor).to(torch.float32) / 255.0

    def drop_levels(self, keep_at_most):
        """Forget the scaled-down images coarser than `keep_at_most` (the schedule never returns to them)."""
        cache = self.__dict__.get("_levels", {})
        for f in [f for f in cache if f > keep_at_most]:
            del cache[f]

    def mean_colour(self):
        """(3,) float64 mean colour of the photo in [0, 1] (computed once)."""
        mean = self.__dict__.get("_mean_colour")
        if mean is None:
            mean = self.__dict__["_mean_colour"] = self.pixels.to(torch.float64).mean((1, 2)) / 255.0
        return mean

    @property
    def center(self):
        return -self.R.T @ self.T

    def to_json(self, idx):
        """Same fields as the reference camera_to_JSON (original resolution intrinsics)."""
        c2w_R = self.R.T
        return {"id": idx, "img_name": self.image_name, "width": self.orig_width, "height": self.orig_height,
                "position": self.center.tolist(), "rotation": [x.tolist() for x in c2w_R],
                "fy": self.orig_fy, "fx": self.orig_fx}


@dataclass
class Scene:
    train: list
    test: list
    xyz: np.ndarray
    rgb: np.ndarray
    extent: float


def find_sparse_dir(source):
    if not os.path.isdir(source):
        raise DataError(f"source folder {source} does not exist")
    for cand in (os.path.join(source, "sparse", "0"), os.path.join(source, "sparse")):
        if any(os.path.isfile(os.path.join(cand, f"cameras.{e}")) for e in ("bin", "txt")):
            return cand
    raise DataError(f"missing COLMAP sparse model: expected {os.path.join(source, 'sparse', '0')}/cameras.bin "
                    "(or .txt), images and points3D")


def compute_scale(orig_w, resolution):
    """Reference behaviour: -1 -> downscale so that width <= 1600; 1/2/4/8 -> divide by that factor."""
    if resolution in (1, 2, 4, 8):
        return float(resolution)
    if resolution == -1:
        return orig_w / 1600.0 if orig_w > 1600 else 1.0
    if resolution > 0:  # reference: target width in pixels
        return orig_w / float(resolution)
    raise DataError(f"invalid --resolution {resolution}")


def nerf_extent(cams):
    centers = np.stack([c.center for c in cams], 0)
    avg = centers.mean(0)
    diag = np.linalg.norm(centers - avg, axis=1).max()
    return float(diag * 1.1) if diag > 0 else 1.0


def load_scene(source, resolution=-1, eval_split=False, images_dir="images", load_images=True, log=None,
               exif_dir=None):
    """The scene at `source`; each camera's recorded exposure from its photo's EXIF or, with `exif_dir`, from
    the photo of the same name there."""
    sparse = find_sparse_dir(source)
    cams, imgs, xyz, rgb = read_model(sparse)
    img_root = os.path.join(source, images_dir)
    if not os.path.isdir(img_root):
        raise DataError(f"missing image folder {img_root}")
    for c in cams.values():
        if c.model not in SUPPORTED_MODELS:
            raise DataError(f"unsupported camera model {c.model} (camera {c.id}); only PINHOLE and SIMPLE_PINHOLE "
                            "are supported - undistort the images first (colmap image_undistorter)")
    if not imgs:
        raise DataError(f"no images registered in {sparse}")
    exif_photos = None
    if exif_dir:
        try:
            exif_photos = photos_by_stem(exif_dir)
        except OSError as e:
            raise DataError(f"cannot read the photos of --exif_from {exif_dir}: {e.strerror or e}") from e
    cameras = []
    for im in sorted(imgs.values(), key=lambda i: i.name):
        if im.camera_id not in cams:
            raise DataError(f"image {im.name} refers to missing camera {im.camera_id}")
        c = cams[im.camera_id]
        path = os.path.join(img_root, im.name)
        if not os.path.isfile(path):
            raise DataError(f"missing image file {path}")
        fx, fy, cx, cy = c.intrinsics()
        scale = compute_scale(c.width, resolution)
        W = int(round(c.width / scale))
        H = int(round(c.height / scale))
        sx, sy = W / c.width, H / c.height
        cam = Camera(uid=im.id, image_name=os.path.splitext(os.path.basename(im.name))[0], file_name=im.name,
                     R=qvec2rotmat(im.qvec), T=np.asarray(im.tvec, np.float64), fx=fx * sx, fy=fy * sy, cx=cx * sx,
                     cy=cy * sy, width=W, height=H, orig_width=c.width, orig_height=c.height, orig_fx=fx, orig_fy=fy,
                     exposure=recorded_exposure(path if exif_photos is None else
                                                exif_photos.get(os.path.splitext(os.path.basename(im.name))[0].lower())))
        if load_images:
            cam.pixels = load_image(path, c.width, c.height, W, H)
        cameras.append(cam)
    if eval_split:
        test = [c for i, c in enumerate(cameras) if i % 8 == 0]
        train = [c for i, c in enumerate(cameras) if i % 8 != 0]
    else:
        train, test = cameras, []
    if len(xyz) == 0:
        raise DataError(f"points3D in {sparse} is empty; need SfM points to initialise")
    extent = nerf_extent(train if train else cameras)
    return Scene(train=train, test=test, xyz=xyz, rgb=rgb, extent=extent)


def load_image(path, cam_w, cam_h, W, H):
    try:
        with Image.open(path) as pil:
            pil.load()  # NOTE: EXIF orientation deliberately NOT applied - the cameras describe the stored pixels
            if pil.size != (cam_w, cam_h):
                raise DataError(f"image {path} is {pil.size[0]}x{pil.size[1]} but its camera is {cam_w}x{cam_h}")
            img = pil.convert("RGB")
    except DataError:
        raise
    except OSError as e:
        raise DataError(f"cannot read image {path}: {e}") from e
    if (W, H) != (cam_w, cam_h):
        img = img.resize((W, H), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)))
