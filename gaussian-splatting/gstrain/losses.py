"""Losses and metrics: L1, SSIM (11x11 Gaussian window, sigma 1.5, as the reference), PSNR."""
import math

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit, prange

_WIN = {}


def _window(dtype, device, size=11, sigma=1.5):
    key = (dtype, device, size)
    w = _WIN.get(key)
    if w is None:
        x = torch.arange(size, dtype=torch.float64) - size // 2
        g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
        g = (g / g.sum()).to(dtype=dtype, device=device)
        w = g
        _WIN[key] = w
    return w


def _blur(x, w):
    """Separable Gaussian blur (zero padding, same as the reference's 2D conv with padding=5)."""
    C = x.shape[1]
    k = w.numel()
    wx = w.view(1, 1, 1, k).expand(C, 1, 1, k)
    wy = w.view(1, 1, k, 1).expand(C, 1, k, 1)
    x = F.conv2d(x, wx, padding=(0, k // 2), groups=C)
    return F.conv2d(x, wy, padding=(k // 2, 0), groups=C)


def ssim(img1, img2):
    """img: (3, H, W) or (B, 3, H, W) -> scalar mean SSIM."""
    if img1.dim() == 3:
        img1 = img1[None]
        img2 = img2[None]
    w = _window(img1.dtype, img1.device)
    C = img1.shape[1]
    # blur the five maps in one batched call
    stack = torch.cat([img1, img2, img1 * img1, img2 * img2, img1 * img2], dim=1)
    bl = _blur(stack, w)
    mu1, mu2, e11, e22, e12 = bl.split(C, dim=1)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = e11 - mu1_sq
    s2 = e22 - mu2_sq
    s12 = e12 - mu12
    C1 = 0.01 ** 2
    C2 = 0.03 ** 2
    m = ((2 * mu12 + C1) * (2 * s12 + C2)) / ((mu1_sq + mu2_sq + C1) * (s1 + s2 + C2))
    return m.mean()


def l1(a, b):
    return (a - b).abs().mean()


def psnr(a, b):
    mse = ((a - b) ** 2).mean().item()
    return 100.0 if mse <= 1e-10 else 10.0 * math.log10(1.0 / mse)


def train_loss(img, gt, lambda_dssim=0.2):
    return (1.0 - lambda_dssim) * l1(img, gt) + lambda_dssim * (1.0 - ssim(img, gt))


# ----------------------------------------------------------------------------- fused numba SSIM (training path)

_C1 = 0.01 ** 2
_C2 = 0.03 ** 2


def _gauss1d(size=11, sigma=1.5):
    x = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(x ** 2) / (2 * sigma ** 2))
    return (g / g.sum()).astype(np.float32)


_W1D = _gauss1d()


@njit(fastmath=True, cache=True, inline="always")
def _axpy(out, src, wk, n):
    for x in range(n):
        out[x] += wk * src[x]


@njit(parallel=True, fastmath=True, cache=True)
def _nb_blur(src, w, out):
    """Separable Gaussian blur with zero padding ('same'), src/out: (C, H, W) float32.  Self-adjoint."""
    C, H, W = src.shape
    K = w.shape[0]
    R = K // 2
    tmp = np.empty_like(src)
    for cy in prange(C * H):
        c = cy // H
        y = cy - c * H
        trow = tmp[c, y]
        srow = src[c, y]
        trow[:] = 0.0
        for k in range(K):
            off = k - R
            x0 = max(0, -off)
            x1 = min(W, W - off)
            _axpy(trow[x0:x1], srow[x0 + off:x1 + off], w[k], x1 - x0)
    for cy in prange(C * H):
        c = cy // H
        y = cy - c * H
        orow = out[c, y]
        orow[:] = 0.0
        k0 = max(0, R - y)
        k1 = min(K, H + R - y)
        for k in range(k0, k1):
            _axpy(orow, tmp[c, y + k - R], w[k], W)


@njit(parallel=True, fastmath=True, cache=True)
def _ssim_maps(bx, by, out_ssim, d_mu1, d_e11, d_e12):
    """bx: blurred [x, xx, xy] (3C, H, W), by: blurred [y, yy] (2C, H, W) -> SSIM map and dS/d(mu1, e11, e12)."""
    C, H, W = out_ssim.shape
    for cy in prange(C * H):
        c = cy // H
        r = cy - c * H
        for q in range(W):
            m1 = bx[c, r, q]
            m2 = by[c, r, q]
            e11 = bx[C + c, r, q]
            e22 = by[C + c, r, q]
            e12 = bx[2 * C + c, r, q]
            A1 = 2.0 * m1 * m2 + _C1
            A2 = 2.0 * (e12 - m1 * m2) + _C2
            B1 = m1 * m1 + m2 * m2 + _C1
            B2 = (e11 - m1 * m1) + (e22 - m2 * m2) + _C2
            inv = 1.0 / (B1 * B2)
            S = A1 * A2 * inv
            out_ssim[c, r, q] = S
            d_mu1[c, r, q] = (2.0 * m2 * A2 - 2.0 * m2 * A1) * inv - S * (2.0 * m1 / B1 - 2.0 * m1 / B2)
            d_e11[c, r, q] = -S / B2
            d_e12[c, r, q] = 2.0 * A1 * inv


_GT_CACHE = {}
_GT_CACHE_BYTES = [0]
_GT_CACHE_LIMIT = 768 * 1024 * 1024


def _gt_stats(gt, y):
    """Blurred [y, y*y] of a ground-truth image; cached per (unchanged) tensor since GT images are reused."""
    key = (gt.data_ptr(), tuple(gt.shape), gt._version)
    hit = _GT_CACHE.get(key)
    if hit is not None and hit[0] is gt:
        return hit[1]
    st = np.concatenate([y, y * y], axis=0)
    mu = np.empty_like(st)
    _nb_blur(st, _W1D, mu)
    if _GT_CACHE_BYTES[0] + mu.nbytes <= _GT_CACHE_LIMIT:
        _GT_CACHE[key] = (gt, mu)  # keeps gt alive so its data_ptr cannot be reused
        _GT_CACHE_BYTES[0] += mu.nbytes
    return mu


def clear_gt_cache():
    """Forget the cached ground-truth statistics (e.g. when the training resolution changes)."""
    _GT_CACHE.clear()
    _GT_CACHE_BYTES[0] = 0


class _FusedSSIM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, img, gt):
        x = np.ascontiguousarray(img.detach().to(torch.float32).numpy())
        y = np.ascontiguousarray(gt.detach().to(torch.float32).numpy())
        C = x.shape[0]
        gt_mu = _gt_stats(gt, y)
        stack = np.empty((3 * C,) + x.shape[1:], np.float32)
        stack[:C] = x
        np.multiply(x, x, out=stack[C:2 * C])
        np.multiply(x, y, out=stack[2 * C:])
        bl = np.empty_like(stack)
        _nb_blur(stack, _W1D, bl)
        S = np.empty_like(x)
        dmaps = np.empty_like(bl)  # [dS/dmu1, dS/de11, dS/de12]
        _ssim_maps(bl, gt_mu, S, dmaps[:C], dmaps[C:2 * C], dmaps[2 * C:])
        ctx.saved = (x, y, dmaps)
        ctx.dtype = img.dtype
        return torch.tensor(float(S.mean(dtype=np.float64)), dtype=img.dtype)

    @staticmethod
    def backward(ctx, g):
        x, y, maps = ctx.saved
        maps = maps * np.float32(float(g) / x.size)
        bl = np.empty_like(maps)
        _nb_blur(maps, _W1D, bl)
        C = x.shape[0]
        grad = bl[:C] + 2.0 * x * bl[C:2 * C] + y * bl[2 * C:]
        return torch.from_numpy(grad).to(ctx.dtype), None


def fused_ssim(img, gt):
    """Same value as ssim() for (3, H, W) CPU images; numba forward/backward (no torch conv)."""
    return _FusedSSIM.apply(img, gt)


# ----------------------------------------------------------------------------- the training loss in one pass
# (1 - lambda) L1 + lambda (1 - SSIM) and the squared error for PSNR, forward and backward, each in one
# parallel pass over row blocks: the 11 x 11 separable blur keeps the 11 horizontally blurred rows it needs
# in a ring buffer (L1/L2-resident) instead of writing a blurred copy of the whole image and reading it back,
# and no image-sized temporary is made besides the three SSIM derivative maps the backward needs.
_BLOCK_ROWS = 32


@njit(inline="always", fastmath=True)
def _hblur_row(src, w, line, out):
    """out[:] = src (W,) blurred horizontally with w (zero padding); line: scratch of W + K - 1."""
    K = w.shape[0]
    R = K // 2
    W = src.shape[0]
    for q in range(R):
        line[q] = 0.0
        line[W + R + q] = 0.0
    for q in range(W):
        line[R + q] = src[q]
    for q in range(W):
        out[q] = w[0] * line[q]
    for k in range(1, K):
        wk = w[k]
        for q in range(W):
            out[q] += wk * line[q + k]


@njit(inline="always", fastmath=True)
def _vblur_row(ring, j, first, w, out):
    """out[:] = sum_k w[k] ring[(first + k) % K, j] (the vertical blur of one row from the ring buffer)."""
    K = w.shape[0]
    src = ring[first % K, j]
    W = out.shape[0]
    w0 = w[0]
    for q in range(W):
        out[q] = w0 * src[q]
    for k in range(1, K):
        wk = w[k]
        src = ring[(first + k) % K, j]
        for q in range(W):
            out[q] += wk * src[q]


@njit(parallel=True, fastmath=True, cache=True)
def _loss_fwd(x, y, gt_mu, w, dmaps, sums):
    """x, y (C, H, W); gt_mu (2C, H, W): blurred y and y*y.  Writes dmaps (3C, H, W) = dSSIM/d(mu_x, E[xx],
    E[xy]) per pixel and sums (C * nblocks, 3) = per block: sum of SSIM, of |x - y|, of (x - y)^2."""
    C, H, W = x.shape
    K = w.shape[0]
    R = K // 2
    nb = (H + _BLOCK_ROWS - 1) // _BLOCK_ROWS
    for task in prange(C * nb):
        c = task // nb
        r0 = (task - c * nb) * _BLOCK_ROWS
        r1 = min(H, r0 + _BLOCK_ROWS)
        ring = np.zeros((K, 3, W), np.float32)  # rows r - R .. r + R of the blurred x, xx, xy (slot = row % K)
        line = np.empty(W + K - 1, np.float32)
        q3 = np.empty((3, W), np.float32)
        v = np.empty((3, W), np.float32)
        s_ssim = 0.0
        s_l1 = 0.0
        s_l2 = 0.0
        for rr in range(r0 - R, r1 + R):
            slot = rr % K
            if rr < 0 or rr >= H:
                ring[slot] = 0.0
            else:
                xr = x[c, rr]
                yr = y[c, rr]
                qa = q3[0]
                qb = q3[1]
                qc = q3[2]
                for q in range(W):
                    a = xr[q]
                    qa[q] = a
                    qb[q] = a * a
                    qc[q] = a * yr[q]
                for j in range(3):
                    _hblur_row(q3[j], w, line, ring[slot, j])
            r = rr - R  # the row whose 11 rows are now all in the ring
            if r < r0:
                continue
            for j in range(3):
                _vblur_row(ring, j, r - R, w, v[j])
            v0 = v[0]
            v1 = v[1]
            v2 = v[2]
            mu2 = gt_mu[c, r]
            ey2 = gt_mu[C + c, r]
            d0 = dmaps[c, r]
            d1 = dmaps[C + c, r]
            d2 = dmaps[2 * C + c, r]
            xr = x[c, r]
            yr = y[c, r]
            for q in range(W):
                m1 = v0[q]
                e11 = v1[q]
                e12 = v2[q]
                m2 = mu2[q]
                e22 = ey2[q]
                A1 = 2.0 * m1 * m2 + _C1
                A2 = 2.0 * (e12 - m1 * m2) + _C2
                B1 = m1 * m1 + m2 * m2 + _C1
                B2 = (e11 - m1 * m1) + (e22 - m2 * m2) + _C2
                inv = 1.0 / (B1 * B2)
                S = A1 * A2 * inv
                s_ssim += S
                d0[q] = (2.0 * m2 * A2 - 2.0 * m2 * A1) * inv - S * (2.0 * m1 / B1 - 2.0 * m1 / B2)
                d1[q] = -S / B2
                d2[q] = 2.0 * A1 * inv
                d = xr[q] - yr[q]
                s_l1 += abs(d)
                s_l2 += d * d
        sums[task, 0] = s_ssim
        sums[task, 1] = s_l1
        sums[task, 2] = s_l2


@njit(parallel=True, fastmath=True, cache=True)
def _loss_bwd(x, y, dmaps, w, k_ssim, k_l1, grad):
    """grad (C, H, W) = k_ssim * (blur(dS/dmu) + 2 x blur(dS/dE[xx]) + y blur(dS/dE[xy])) + k_l1 * sign(x - y)
    (the blur is self-adjoint; the same ring-buffer blocks as _loss_fwd)."""
    C, H, W = x.shape
    K = w.shape[0]
    R = K // 2
    nb = (H + _BLOCK_ROWS - 1) // _BLOCK_ROWS
    for task in prange(C * nb):
        c = task // nb
        r0 = (task - c * nb) * _BLOCK_ROWS
        r1 = min(H, r0 + _BLOCK_ROWS)
        ring = np.zeros((K, 3, W), np.float32)
        line = np.empty(W + K - 1, np.float32)
        v = np.empty((3, W), np.float32)
        for rr in range(r0 - R, r1 + R):
            slot = rr % K
            if rr < 0 or rr >= H:
                ring[slot] = 0.0
            else:
                for j in range(3):
                    _hblur_row(dmaps[j * C + c, rr], w, line, ring[slot, j])
            r = rr - R
            if r < r0:
                continue
            for j in range(3):
                _vblur_row(ring, j, r - R, w, v[j])
            v0 = v[0]
            v1 = v[1]
            v2 = v[2]
            xr = x[c, r]
            yr = y[c, r]
            gr = grad[c, r]
            for q in range(W):
                a = xr[q]
                b = yr[q]
                d = a - b
                sg = np.float32(1.0) if d > 0 else (np.float32(-1.0) if d < 0 else np.float32(0.0))
                gr[q] = k_ssim * (v0[q] + 2.0 * a * v1[q] + b * v2[q]) + k_l1 * sg


class _FusedLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, img, gt, lambda_dssim):
        x = np.ascontiguousarray(img.detach().to(torch.float32).numpy())
        y = np.ascontiguousarray(gt.detach().to(torch.float32).numpy())
        C, H, W = x.shape
        gt_mu = _gt_stats(gt, y)
        dmaps = np.empty((3 * C, H, W), np.float32)
        nb = (H + _BLOCK_ROWS - 1) // _BLOCK_ROWS
        sums = np.empty((C * nb, 3), np.float64)
        _loss_fwd(x, y, gt_mu, _W1D, dmaps, sums)
        n = float(x.size)
        tot = sums.sum(axis=0)
        ctx.saved = (x, y, dmaps)
        ctx.lam = float(lambda_dssim)
        ctx.dtype = img.dtype
        loss = (1.0 - lambda_dssim) * tot[1] / n + lambda_dssim * (1.0 - tot[0] / n)
        mse = torch.tensor(tot[2] / n, dtype=torch.float64)
        ctx.mark_non_differentiable(mse)
        return torch.tensor(loss, dtype=img.dtype), mse

    @staticmethod
    def backward(ctx, g, _g_mse):
        x, y, dmaps = ctx.saved
        n = float(x.size)
        gv = float(g)
        grad = np.empty_like(x)
        _loss_bwd(x, y, dmaps, _W1D, np.float32(-ctx.lam * gv / n), np.float32((1.0 - ctx.lam) * gv / n), grad)
        ctx.saved = None
        return torch.from_numpy(grad).to(ctx.dtype), None, None


def fused_train_loss(img, gt, lambda_dssim=0.2, with_mse=False):
    """(1 - lambda) L1 + lambda (1 - SSIM) for (3, H, W) CPU images, as train_loss (11 x 11 Gaussian window,
    zero padding), forward and backward in one numba pass each.  with_mse: also the mean squared error (a
    float, for PSNR without another pass)."""
    loss, mse = _FusedLoss.apply(img, gt, float(lambda_dssim))
    return (loss, float(mse)) if with_mse else loss


def psnr_from_mse(mse):
    return 100.0 if mse <= 1e-10 else 10.0 * math.log10(1.0 / mse)
