"""COLMAP sparse model reader (binary and text) plus a small binary writer (used by tests/tools)."""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np


class DataError(Exception):
    """Problem with the input data; message is shown to the user as a one-line error."""


# model_id -> (name, num_params)
CAMERA_MODELS = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
    7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5),
    10: ("THIN_PRISM_FISHEYE", 12),
    11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
}
MODEL_IDS = {name: mid for mid, (name, _) in CAMERA_MODELS.items()}
SUPPORTED_MODELS = ("PINHOLE", "SIMPLE_PINHOLE")


@dataclass
class ColmapCamera:
    id: int
    model: str
    width: int
    height: int
    params: np.ndarray

    def intrinsics(self):
        """Return fx, fy, cx, cy (only for supported models)."""
        if self.model == "SIMPLE_PINHOLE":
            f, cx, cy = self.params[:3]
            return float(f), float(f), float(cx), float(cy)
        if self.model == "PINHOLE":
            fx, fy, cx, cy = self.params[:4]
            return float(fx), float(fy), float(cx), float(cy)
        raise DataError(
            f"unsupported camera model {self.model} (camera {self.id}); only PINHOLE and SIMPLE_PINHOLE "
            "are supported - undistort the images first (e.g. colmap image_undistorter)")


@dataclass
class ColmapImage:
    id: int
    qvec: np.ndarray  # w x y z, world-to-camera
    tvec: np.ndarray
    camera_id: int
    name: str


def qvec2rotmat(q):
    w, x, y, z = q
    return np.array([
        [1 - 2 * y * y - 2 * z * z, 2 * x * y - 2 * w * z, 2 * z * x + 2 * w * y],
        [2 * x * y + 2 * w * z, 1 - 2 * x * x - 2 * z * z, 2 * y * z - 2 * w * x],
        [2 * z * x - 2 * w * y, 2 * y * z + 2 * w * x, 1 - 2 * x * x - 2 * y * y]], dtype=np.float64)


def rotmat2qvec(R):
    Rxx, Ryx, Rzx, Rxy, Ryy, Rzy, Rxz, Ryz, Rzz = np.asarray(R, dtype=np.float64).flat
    K = np.array([
        [Rxx - Ryy - Rzz, 0, 0, 0],
        [Ryx + Rxy, Ryy - Rxx - Rzz, 0, 0],
        [Rzx + Rxz, Rzy + Ryz, Rzz - Rxx - Ryy, 0],
        [Ryz - Rzy, Rzx - Rxz, Rxy - Ryx, Rxx + Ryy + Rzz]]) / 3.0
    vals, vecs = np.linalg.eigh(K)
    q = vecs[[3, 0, 1, 2], np.argmax(vals)]
    if q[0] < 0:
        q *= -1
    return q


class _Reader:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.data = f.read()
        self.pos = 0

    def read(self, fmt):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise DataError(f"truncated COLMAP file {self.path}")
        vals = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return vals

    def read_string(self):
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise DataError(f"truncated COLMAP file {self.path}")
        s = self.data[self.pos:end].decode("utf-8")
        self.pos = end + 1
        return s


def read_cameras_binary(path):
    r = _Reader(path)
    cams = {}
    (n,) = r.read("Q")
    for _ in range(n):
        cid, model_id, w, h = r.read("iiQQ")
        if model_id not in CAMERA_MODELS:
            raise DataError(f"unknown camera model id {model_id} in {path}")
        name, npar = CAMERA_MODELS[model_id]
        params = np.array(r.read("d" * npar))
        cams[cid] = ColmapCamera(cid, name, int(w), int(h), params)
    return cams


def read_images_binary(path):
    r = _Reader(path)
    imgs = {}
    (n,) = r.read("Q")
    for _ in range(n):
        vals = r.read("idddddddi")
        iid = vals[0]
        qvec = np.array(vals[1:5])
        tvec = np.array(vals[5:8])
        cam_id = vals[8]
        name = r.read_string()
        (npts,) = r.read("Q")
        r.pos += 24 * npts  # x, y (double) + point3D id (int64)
        if r.pos > len(r.data):
            raise DataError(f"truncated COLMAP file {path}")
        imgs[iid] = ColmapImage(iid, qvec, tvec, cam_id, name)
    return imgs


def read_points3d_binary(path):
    r = _Reader(path)
    (n,) = r.read("Q")
    xyz = np.empty((n, 3), np.float64)
    rgb = np.empty((n, 3), np.uint8)
    data = r.data
    pos = r.pos
    for i in range(n):
        vals = struct.unpack_from("<QdddBBBd", data, pos)
        pos += 43
        xyz[i] = vals[1:4]
        rgb[i] = vals[4:7]
        (tl,) = struct.unpack_from("<Q", data, pos)
        pos += 8 + 8 * tl
        if pos > len(data):
            raise DataError(f"truncated COLMAP file {path}")
    return xyz, rgb


def _text_lines(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                yield line


def read_cameras_text(path):
    cams = {}
    for line in _text_lines(path):
        el = line.split()
        cid = int(el[0])
        cams[cid] = ColmapCamera(cid, el[1], int(el[2]), int(el[3]), np.array([float(x) for x in el[4:]]))
    return cams


def read_images_text(path):
    imgs = {}
    lines = list(_text_lines_keep_empty(path))
    i = 0
    while i < len(lines):
        el = lines[i].split()
        if not el:
            i += 1
            continue
        iid = int(el[0])
        qvec = np.array([float(x) for x in el[1:5]])
        tvec = np.array([float(x) for x in el[5:8]])
        imgs[iid] = ColmapImage(iid, qvec, tvec, int(el[8]), " ".join(el[9:]))
        i += 2  # skip the 2D points line
    return imgs


def _text_lines_keep_empty(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                continue
            yield line.rstrip("\n")


def read_points3d_text(path):
    xyz, rgb = [], []
    for line in _text_lines(path):
        el = line.split()
        xyz.append([float(x) for x in el[1:4]])
        rgb.append([int(x) for x in el[4:7]])
    return np.array(xyz, np.float64).reshape(-1, 3), np.array(rgb, np.uint8).reshape(-1, 3)


def read_model(sparse_dir):
    """Read a COLMAP model folder; returns (cameras, images, xyz, rgb)."""
    def pick(stem):
        b = os.path.join(sparse_dir, stem + ".bin")
        t = os.path.join(sparse_dir, stem + ".txt")
        if os.path.isfile(b):
            return b, True
        if os.path.isfile(t):
            return t, False
        return None, None

    cpath, cbin = pick("cameras")
    ipath, ibin = pick("images")
    ppath, pbin = pick("points3D")
    missing = [n for n, p in (("cameras", cpath), ("images", ipath), ("points3D", ppath)) if p is None]
    if missing:
        raise DataError(f"missing COLMAP sparse model in {sparse_dir} (no {', '.join(m + '.bin/.txt' for m in missing)})")
    try:
        cams = read_cameras_binary(cpath) if cbin else read_cameras_text(cpath)
        imgs = read_images_binary(ipath) if ibin else read_images_text(ipath)
        xyz, rgb = read_points3d_binary(ppath) if pbin else read_points3d_text(ppath)
    except DataError:
        raise
    except (ValueError, IndexError, struct.error, UnicodeDecodeError) as e:
        raise DataError(f"cannot parse COLMAP model in {sparse_dir}: {e}") from e
    return cams, imgs, xyz, rgb


# ----------------------------------------------------------------------------- writers (tests / tools)

def write_cameras_binary(path, cams):
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(cams)))
        for c in cams:
            mid = MODEL_IDS[c.model]
            f.write(struct.pack("<iiQQ", c.id, mid, c.width, c.height))
            f.write(struct.pack("<" + "d" * len(c.params), *c.params))


def write_images_binary(path, imgs):
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(imgs)))
        for im in imgs:
            f.write(struct.pack("<idddddddi", im.id, *im.qvec, *im.tvec, im.camera_id))
            f.write(im.name.encode("utf-8") + b"\x00")
            f.write(struct.pack("<Q", 0))


def write_points3d_binary(path, xyz, rgb):
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(xyz)))
        for i, (p, c) in enumerate(zip(xyz, rgb, strict=False)):
            f.write(struct.pack("<QdddBBBd", i + 1, *map(float, p), *map(int, c), 0.0))
            f.write(struct.pack("<Q", 0))
