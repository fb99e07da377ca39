"""Per-photo exposure compensation for training (as the reference 3DGS's exposure optimisation).

Phone and camera photos of one capture are taken at different exposures and white balances (monstree's 23
photos span 0.9 stops of exposure time x ISO).  Without compensation the model can only explain a brighter
photo with view-dependent colour or with semi-transparent Gaussians in front of that camera, which is
overfitting that new viewpoints pay for.  Each training photo gets a 3x3 colour matrix and an offset that
map the model's render to that photo; they start at the identity and are learnt with the Gaussians.

The model and the transforms can trade a global colour change between them; the gauge is fixed by
applying each photo's transform relative to the mean over all training photos, so the model always
renders at the training photos' average exposure, and that is what the viewer and the exported splat show.

A held-out photo was taken at its own exposure too, which the model at the average exposure cannot match.
Where the photos' EXIF records the exposure (time x ISO / f-number^2), `ExposureLaw` fits how the learnt
brightness gains of the training photos follow it (gain = exp(k (log E - mean log E) + b), least squares
over the training photos), and held-out views are rendered at the gain their own recorded exposure gives:
camera metadata, as the pose is, never the held-out pixels. Without EXIF they are rendered at the average.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from numba import njit, prange

from .plan import expon_lr

LR_INIT = 0.01  # the reference's exposure_lr_init / exposure_lr_final
LR_FINAL = 0.001


@njit(parallel=True, fastmath=True, cache=True)
def _affine_fwd(t, img, out):
    """out[i] = sum_j t[i, j] img[j] + t[i, 3] for a (3, H, W) image, rows in parallel."""
    C, H, W = img.shape
    for r in prange(H):
        for q in range(W):
            a = img[0, r, q]
            b = img[1, r, q]
            c = img[2, r, q]
            for i in range(3):
                out[i, r, q] = t[i, 0] * a + t[i, 1] * b + t[i, 2] * c + t[i, 3]


@njit(parallel=True, fastmath=True, cache=True)
def _affine_bwd(t, img, g, gimg, gt_rows):
    """gimg = A^T g; gt_rows[r] = row r's part of d/dt = [g img^T | sum g] (summed by the caller)."""
    C, H, W = img.shape
    for r in prange(H):
        acc = np.zeros(12, np.float64)
        for q in range(W):
            a = img[0, r, q]
            b = img[1, r, q]
            c = img[2, r, q]
            g0 = g[0, r, q]
            g1 = g[1, r, q]
            g2 = g[2, r, q]
            gimg[0, r, q] = t[0, 0] * g0 + t[1, 0] * g1 + t[2, 0] * g2
            gimg[1, r, q] = t[0, 1] * g0 + t[1, 1] * g1 + t[2, 1] * g2
            gimg[2, r, q] = t[0, 2] * g0 + t[1, 2] * g1 + t[2, 2] * g2
            acc[0] += g0 * a
            acc[1] += g0 * b
            acc[2] += g0 * c
            acc[3] += g0
            acc[4] += g1 * a
            acc[5] += g1 * b
            acc[6] += g1 * c
            acc[7] += g1
            acc[8] += g2 * a
            acc[9] += g2 * b
            acc[10] += g2 * c
            acc[11] += g2
        for k in range(12):
            gt_rows[r, k] = acc[k]


class _AffineCPU(torch.autograd.Function):
    """Exposure.apply's A img + b on the CPU in parallel numba passes (torch ran it on one core)."""

    @staticmethod
    def forward(ctx, t, image):
        tn = t.detach().to(torch.float64).numpy()
        x = np.ascontiguousarray(image.detach().to(torch.float32).numpy())
        out = np.empty_like(x)
        _affine_fwd(tn, x, out)
        ctx.saved = (tn, x)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, g):
        tn, x = ctx.saved
        gn = np.ascontiguousarray(g.detach().to(torch.float32).numpy())
        gimg = np.empty_like(x)
        rows = np.empty((x.shape[1], 12), np.float64)
        _affine_bwd(tn, x, gn, gimg, rows)
        ctx.saved = None
        gt = torch.from_numpy(rows.sum(axis=0).reshape(3, 4)).to(torch.float32)
        return gt, torch.from_numpy(gimg)


class Exposure:
    """Adam on the transforms is written out here (the update of torch.optim.Adam, eps 1e-15): creating a
    torch.optim.Adam imports torch's compiler stack, seconds of start-up for 12 numbers per photo."""

    def __init__(self, num_views, iterations, lr_init=LR_INIT, lr_final=LR_FINAL, device="cpu"):
        self.iterations = iterations
        self.lr_init, self.lr_final = lr_init, lr_final
        self.delta = torch.zeros(num_views, 3, 4, device=device, requires_grad=True)  # [A - I | b]
        self.exp_avg = torch.zeros(num_views, 3, 4, device=device)
        self.exp_avg_sq = torch.zeros(num_views, 3, 4, device=device)
        self.steps = 0

    def _relative(self):
        """Each view's [A - I | b] minus the mean over all views (the gauge: their mean transform is I)."""
        return self.delta - self.delta.mean(0)

    def transform(self, view):
        """(3, 4) affine colour transform of training view `view`, relative to the mean of all views."""
        d = self._relative()[view]
        return torch.eye(3, 4, device=d.device, dtype=d.dtype) + d

    def apply(self, image, view):
        """image (3, H, W) -> the same render as photo `view` would record it."""
        t = self.transform(view)
        if image.device.type == "cpu" and image.dtype == torch.float32:
            return _AffineCPU.apply(t, image)
        C, H, W = image.shape
        return torch.addmm(t[:, 3:], t[:, :3], image.reshape(C, H * W)).reshape(C, H, W)

    @torch.no_grad()
    def step(self, iteration, betas=(0.9, 0.999), eps=1e-15):
        g = self.delta.grad
        if g is None:
            return
        lr = expon_lr(iteration, self.lr_init, self.lr_final, 1.0, self.iterations)
        self.steps += 1
        b1, b2 = betas
        self.exp_avg.mul_(b1).add_(g, alpha=1 - b1)
        self.exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (self.exp_avg_sq.sqrt() / math.sqrt(1 - b2 ** self.steps)).add_(eps)
        self.delta.addcdiv_(self.exp_avg, denom, value=-lr / (1 - b1 ** self.steps))
        self.delta.grad = None

    def stats(self):
        """Per-view brightness gain (mean of the matrix's diagonal) relative to the average, for the log."""
        with torch.no_grad():
            d = self._relative()
            gain = 1.0 + d[:, [0, 1, 2], [0, 1, 2]].mean(1)
            return float(gain.min()), float(gain.max())

    def state_dict(self):
        """In torch.optim.Adam's layout (checkpoints of earlier versions load the same way)."""
        return {"delta": self.delta.detach().clone(),
                "optimizer": {"state": {0: {"step": torch.tensor(float(self.steps)), "exp_avg": self.exp_avg.clone(),
                                            "exp_avg_sq": self.exp_avg_sq.clone()}}}}

    def load_state_dict(self, d):
        with torch.no_grad():
            self.delta.copy_(d["delta"])
        st = d.get("optimizer", {}).get("state", {}).get(0)
        if st:
            self.exp_avg.copy_(st["exp_avg"])
            self.exp_avg_sq.copy_(st["exp_avg_sq"])
            self.steps = int(float(st["step"]))


EXIF_IFD, EXPOSURE_TIME, F_NUMBER, ISO = 0x8769, 0x829A, 0x829D, 0x8827


def recorded_exposure(path):
    """The exposure a photo's EXIF records, exposure time x ISO / f-number^2 (what the sensor integrated, up
    to a constant), or None when the file has no EXIF or lacks one of the three (or `path` is None)."""
    from PIL import Image
    if path is None:
        return None
    try:
        with Image.open(path) as im:
            sub = im.getexif().get_ifd(EXIF_IFD)
    except (OSError, SyntaxError, ValueError):
        return None
    try:
        t, iso, f = float(sub[EXPOSURE_TIME]), sub[ISO], float(sub[F_NUMBER])
        iso = float(iso[0] if isinstance(iso, (tuple, list)) else iso)
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError):
        return None
    if not (t > 0 and iso > 0 and f > 0) or not all(map(math.isfinite, (t, iso, f))):
        return None
    return t * iso / (f * f)


def photos_by_stem(folder):
    """{lower-case file name without extension: path} of the files in `folder`, for reading the EXIF of
    photos whose copies lost it (COLMAP's undistorted images); OSError when the folder cannot be read."""
    return {os.path.splitext(name)[0].lower(): os.path.join(folder, name) for name in sorted(os.listdir(folder))}


@dataclass
class ExposureLaw:
    """gain(E) = exp(k (log E - log_mean) + b): the brightness a render needs to look like a photo taken at
    exposure E, fitted over the training photos."""
    k: float
    log_mean: float
    b: float
    views: int

    def gain(self, exposure):
        if exposure is None or not exposure > 0:
            return 1.0
        return float(math.exp(self.k * (math.log(exposure) - self.log_mean) + self.b))

    def to_json(self):
        return {"k": self.k, "log_mean": self.log_mean, "b": self.b, "views": self.views}

    @classmethod
    def from_json(cls, d):
        return cls(float(d["k"]), float(d["log_mean"]), float(d["b"]), int(d["views"]))


MIN_LAW_VIEWS = 4


def read_exposures(model_dir):
    """(ExposureLaw or None, {image name: recorded exposure}, problem or None) from a model folder's
    exposure.json (written by the trainer); a model without one gives (None, {}, None)."""
    import json
    path = os.path.join(model_dir, "exposure.json")
    if not os.path.isfile(path):
        return None, {}, None
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        law = ExposureLaw.from_json(doc["law"]) if doc.get("law") else None
        recorded = {str(k): float(v) for k, v in (doc.get("recorded_exposure") or {}).items() if v is not None}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return None, {}, f"{path} is unreadable ({e}); held-out views compared at the average exposure"
    return law, recorded, None


def fit_law(exposures, gains):
    """The ExposureLaw of training photos' recorded exposures and learnt gains, or None when fewer than
    MIN_LAW_VIEWS have both or they were all taken at one exposure. k is kept in [0, 1]: a longer exposure
    never darkens a photo, and the camera's tone curve compresses brightness (sRGB's is about 0.45)."""
    pairs = [(math.log(e), math.log(g)) for e, g in zip(exposures, gains, strict=True) if e and e > 0 and g > 0]
    if len(pairs) < MIN_LAW_VIEWS:
        return None
    x = np.array([p[0] for p in pairs])
    y = np.array([p[1] for p in pairs])
    x0 = float(x.mean())
    dx = x - x0
    if float(np.abs(dx).max()) < 1e-6:
        return None
    k = float(np.clip((dx * (y - y.mean())).sum() / (dx * dx).sum(), 0.0, 1.0))
    b = float(y.mean())
    return ExposureLaw(k, x0, b, len(pairs))


def learnt_gains(exposure, photo_means):
    """Each training photo's brightness gain under its learnt transform: the photo's mean brightness over
    that of the render the transform maps onto it (photo_means: (V, 3) mean colours in [0, 1])."""
    with torch.no_grad():
        rel = exposure._relative().to(torch.float64).cpu()
        A = torch.eye(3, dtype=torch.float64) + rel[:, :, :3]
        p = torch.as_tensor(photo_means, dtype=torch.float64)
        r = torch.linalg.solve(A, (p - rel[:, :, 3])[..., None])[..., 0]
        return (p.sum(1) / r.sum(1).clamp_min(1e-6)).tolist()
