"""PLY writers/readers: the standard 3DGS Gaussian layout and the reference input.ply point cloud.

All writes go to a temporary file in the destination folder followed by os.replace (atomic).
"""
from __future__ import annotations

import os
import tempfile

import numpy as np


def gaussian_attribute_names(num_rest):
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(num_rest)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    return names


def _default_mode():
    um = os.umask(0)
    os.umask(um)
    return 0o666 & ~um


_MODE = _default_mode()


def atomic_write_bytes(path, chunks):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            for c in chunks:
                f.write(c)
        os.chmod(tmp, _MODE)  # mkstemp creates 0600; use the normal permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _header(n, props):
    lines = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    lines += [f"property {t} {name}" for name, t in props]
    lines.append("end_header")
    return ("\n".join(lines) + "\n").encode("ascii")


def write_gaussian_ply(path, means, f_dc, f_rest, opacity_logits, log_scales, quats):
    """f_dc: (N, 1, 3), f_rest: (N, K-1, 3) -> stored channel-major (all R coefficients, then G, then B)."""
    n = means.shape[0]
    dc = np.asarray(f_dc, np.float32).reshape(n, -1, 3).transpose(0, 2, 1).reshape(n, -1)
    rest = np.asarray(f_rest, np.float32).reshape(n, -1, 3).transpose(0, 2, 1).reshape(n, -1)
    cols = [np.asarray(means, np.float32).reshape(n, 3), np.zeros((n, 3), np.float32), dc, rest,
            np.asarray(opacity_logits, np.float32).reshape(n, 1), np.asarray(log_scales, np.float32).reshape(n, 3),
            np.asarray(quats, np.float32).reshape(n, 4)]
    data = np.concatenate(cols, axis=1).astype("<f4")
    names = gaussian_attribute_names(rest.shape[1])
    assert data.shape[1] == len(names)
    atomic_write_bytes(path, [_header(n, [(nm, "float") for nm in names]), data.tobytes()])


def write_points_ply(path, xyz, rgb):
    """Reference storePly layout: x y z nx ny nz (float) red green blue (uchar)."""
    n = len(xyz)
    dt = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4"),
                   ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    arr = np.zeros(n, dt)
    xyz = np.asarray(xyz)
    rgb = np.asarray(rgb)
    if n:
        arr["x"], arr["y"], arr["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        arr["red"], arr["green"], arr["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    props = [(nm, "float") for nm in ("x", "y", "z", "nx", "ny", "nz")] + [(c, "uchar") for c in ("red", "green",
                                                                                                   "blue")]
    atomic_write_bytes(path, [_header(n, props), arr.tobytes()])


_PLY_TYPES = {"float": "f4", "float32": "f4", "double": "f8", "float64": "f8", "uchar": "u1", "uint8": "u1",
              "char": "i1", "int8": "i1", "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
              "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4"}


def read_ply_vertices(path):
    """Minimal binary PLY reader for a single vertex element with scalar properties."""
    with open(path, "rb") as f:
        if f.readline().strip() != b"ply":
            raise ValueError(f"{path} is not a PLY file")
        fmt = None
        n = None
        props = []
        while True:
            line = f.readline()
            if not line:
                raise ValueError(f"{path}: truncated PLY header")
            tok = line.decode("ascii").split()
            if not tok:
                continue
            if tok[0] == "format":
                fmt = tok[1]
            elif tok[0] == "element":
                if tok[1] != "vertex":
                    raise ValueError(f"{path}: unsupported element {tok[1]}")
                n = int(tok[2])
            elif tok[0] == "property":
                props.append((tok[2], _PLY_TYPES[tok[1]]))
            elif tok[0] == "end_header":
                break
        if fmt not in ("binary_little_endian", "binary_big_endian"):
            raise ValueError(f"{path}: unsupported PLY format {fmt}")
        e = "<" if fmt == "binary_little_endian" else ">"
        dt = np.dtype([(nm, e + t) for nm, t in props])
        data = np.frombuffer(f.read(n * dt.itemsize), dtype=dt, count=n)
    return data


def read_gaussian_ply(path):
    v = read_ply_vertices(path)
    names = v.dtype.names
    n = len(v)
    rest_names = sorted([x for x in names if x.startswith("f_rest_")], key=lambda s: int(s.split("_")[-1]))
    nr = len(rest_names) // 3

    def cols(lst):
        return np.stack([np.asarray(v[x], np.float32) for x in lst], axis=1) if lst else np.zeros((n, 0), np.float32)

    rest = cols(rest_names).reshape(n, 3, nr).transpose(0, 2, 1)
    return {"means": cols(["x", "y", "z"]), "f_dc": cols(["f_dc_0", "f_dc_1", "f_dc_2"]).reshape(n, 1, 3),
            "f_rest": np.ascontiguousarray(rest), "opacity_logits": cols(["opacity"]),
            "log_scales": cols(["scale_0", "scale_1", "scale_2"]), "quats": cols(["rot_0", "rot_1", "rot_2", "rot_3"])}
