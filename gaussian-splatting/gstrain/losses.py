"""Losses and metrics: L1, SSIM (11x11 Gaussian window, sigma 1.5, as the reference), PSNR."""
import math

import numba
import numpy as np
import torch
import torch.nn.functional as F
from numba import njit, prange

from .simd import NL, load, store

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


# ----------------------------------------------------------------------------- the training loss in one pass
# (1 - lambda) L1 + lambda (1 - SSIM) and the squared error for PSNR, forward and backward, each in one
# parallel pass over row blocks: the 11 x 11 separable blur keeps the 11 horizontally blurred rows it needs
# in a ring buffer (L1/L2-resident) instead of writing a blurred copy of the whole image and reading it back.
# The ground truth's statistics (blurred y and y*y) are blurred in the same pass rather than cached (a cache
# held 6 float32 planes per training photo: 227 MB for monstree); the ground truth may be uint8 (read as
# value / 255), so the photos are held as they were decoded.  The only image-sized arrays are the three
# SSIM derivative maps the backward needs.
_MAX_BLOCK_ROWS = 128  # the row blocks' height: as tall as the threads' share allows, up to this (_block_rows)
_MIN_BLOCK_ROWS = 32
_NQ = 5  # blurred quantities: x, x*x, x*y, y, y*y


@njit(inline="always", fastmath=True)
def _hblur_row(line, w, out):
    """out[:Wp] = a row blurred horizontally with w, from `line`: the row held at line[R:R + W] with zeros
    around it (line[:R] and line[R + W:R + Wp + K - 1 + NL], _padded_line), Wp = out's length = _padded(W)
    (lanes past W hold the blur of the padding).

    Four NL-lane blocks of the output at a time, each summed in a register from K shifted loads of the padded
    line: one store per block, and four independent chains of K multiply-adds to hide their latency.  The
    backward blurs the derivative maps' padded rows where the forward wrote them: copying each row into a
    padded scratch line first cost more than the blur.  (The forward blurs its five quantities with _hblur5.)"""
    K = w.shape[0]
    Wp = out.shape[0]
    for q0 in range(0, Wp, 4 * NL):
        a0 = load(line, q0) * w[0]
        a1 = load(line, q0 + NL) * w[0]
        a2 = load(line, q0 + 2 * NL) * w[0]
        a3 = load(line, q0 + 3 * NL) * w[0]
        for k in range(1, K):
            wk = w[k]
            a0 = a0 + load(line, q0 + k) * wk
            a1 = a1 + load(line, q0 + NL + k) * wk
            a2 = a2 + load(line, q0 + 2 * NL + k) * wk
            a3 = a3 + load(line, q0 + 3 * NL + k) * wk
        store(out, q0, a0)
        store(out, q0 + NL, a1)
        store(out, q0 + 2 * NL, a2)
        store(out, q0 + 3 * NL, a3)


@njit(inline="always", fastmath=True)
def _vblur_row(ring, j, first, w, out):
    """out[:Wp] = sum_k w[k] ring[(first + k) % K, j] (the vertical blur of one row from the ring buffer), four
    NL-lane blocks at a time as _hblur_row."""
    K = w.shape[0]
    Wp = out.shape[0]
    r0 = ring[first % K, j]
    for q0 in range(0, Wp, 4 * NL):
        a0 = load(r0, q0) * w[0]
        a1 = load(r0, q0 + NL) * w[0]
        a2 = load(r0, q0 + 2 * NL) * w[0]
        a3 = load(r0, q0 + 3 * NL) * w[0]
        sl = first % K
        for k in range(1, K):
            sl = sl + 1 if sl + 1 < K else 0
            rk = ring[sl, j]
            wk = w[k]
            a0 = a0 + load(rk, q0) * wk
            a1 = a1 + load(rk, q0 + NL) * wk
            a2 = a2 + load(rk, q0 + 2 * NL) * wk
            a3 = a3 + load(rk, q0 + 3 * NL) * wk
        store(out, q0, a0)
        store(out, q0 + NL, a1)
        store(out, q0 + 2 * NL, a2)
        store(out, q0 + 3 * NL, a3)


@njit(inline="always")
def _padded(W):
    """W rounded up to whole groups of four NL-lane blocks (the blurs' step)."""
    return (W + 4 * NL - 1) // (4 * NL) * (4 * NL)


@njit(inline="always")
def _padded_line(W, K):
    """Length of a padded row (_hblur_row's `line`): R zeros, the W values, zeros to the last load's end."""
    return _padded(W) + K - 1 + NL


def _block_rows(H, C, nthreads):
    """Rows per block of the loss's row-block loops: a block blurs its 2 R rows of halo again, so blocks as tall as
    possible, in a number of tasks (C channels x blocks) that the threads share evenly.  The loss's value and
    gradient do not depend on it (sums are kept per row)."""
    nb = -(-H // _MAX_BLOCK_ROWS)
    while (C * nb) % nthreads and -(-H // (nb + 1)) >= _MIN_BLOCK_ROWS:
        nb += 1
    if (C * nb) % nthreads:  # no even share in blocks of _MIN_BLOCK_ROWS rows or more: blocks of that many
        nb = -(-H // _MIN_BLOCK_ROWS)
    return -(-H // nb)


@njit(inline="always")
def _blocking(w, H, rows):
    """The row-block loops' shape: blur width K, its radius R and the number of row blocks per channel."""
    K = w.shape[0]
    return K, K // 2, (H + rows - 1) // rows


@njit(inline="always")
def _block(task, nb, H, rows):
    """Task `task` of the row-block loops: (channel, first row, end row) of its block of `rows` rows."""
    c = task // nb
    r0 = (task - c * nb) * rows
    return c, r0, min(H, r0 + rows)


@njit(inline="always", fastmath=True)
def _hblur5(xl, yl, w, out):
    """out[0..4, :Wp] = the horizontal blurs of x, x*x, x*y, y, y*y, from the padded rows of x (xl) and y (yl)
    alone (as _hblur_row, two NL-lane blocks at a time): two loads per tap instead of five, the products formed
    in registers (forward 0.9x; the same values)."""
    K = w.shape[0]
    Wp = out.shape[1]
    o0 = out[0]
    o1 = out[1]
    o2 = out[2]
    o3 = out[3]
    o4 = out[4]
    for q0 in range(0, Wp, 2 * NL):
        w0 = w[0]
        xa = load(xl, q0)
        xb = load(xl, q0 + NL)
        ya = load(yl, q0)
        yb = load(yl, q0 + NL)
        a0 = xa * w0
        a1 = (xa * xa) * w0
        a2 = (xa * ya) * w0
        a3 = ya * w0
        a4 = (ya * ya) * w0
        b0 = xb * w0
        b1 = (xb * xb) * w0
        b2 = (xb * yb) * w0
        b3 = yb * w0
        b4 = (yb * yb) * w0
        for k in range(1, K):
            wk = w[k]
            xa = load(xl, q0 + k)
            xb = load(xl, q0 + NL + k)
            ya = load(yl, q0 + k)
            yb = load(yl, q0 + NL + k)
            a0 = a0 + xa * wk
            a1 = a1 + (xa * xa) * wk
            a2 = a2 + (xa * ya) * wk
            a3 = a3 + ya * wk
            a4 = a4 + (ya * ya) * wk
            b0 = b0 + xb * wk
            b1 = b1 + (xb * xb) * wk
            b2 = b2 + (xb * yb) * wk
            b3 = b3 + yb * wk
            b4 = b4 + (yb * yb) * wk
        store(o0, q0, a0)
        store(o1, q0, a1)
        store(o2, q0, a2)
        store(o3, q0, a3)
        store(o4, q0, a4)
        store(o0, q0 + NL, b0)
        store(o1, q0 + NL, b1)
        store(o2, q0 + NL, b2)
        store(o3, q0 + NL, b3)
        store(o4, q0 + NL, b4)


@njit(inline="always")
def _zero_pads(line, R, W):
    """Zero a padded row's pads: line[:R] and line[R + W:]."""
    line[:R] = 0.0
    line[R + W:] = 0.0


@njit(parallel=True, fastmath=True, cache=True)
def _loss_fwd(x, y, yscale, w, rows, dmaps, sums):
    """x (C, H, W) float32; y (C, H, W) float32 or uint8 (times yscale).  Writes dmaps (3C, H, _padded_line(W, K))
    = dSSIM/d(mu_x, E[xx], E[xy]) per pixel at [R:R + W] of each row with zeros around it (the backward blurs
    these rows in place), and sums (C, H, 3) = per row: sum of SSIM, of |x - y|, of (x - y)^2.  Blocks of `rows`
    rows (_block_rows)."""
    C, H, W = x.shape
    K, R, nb = _blocking(w, H, rows)
    ys = np.float32(yscale)
    # the per-pixel SSIM terms in float32, as train_loss's: float64 literals had made that loop float64 with
    # three divisions a pixel (now two reciprocals; forward 0.93x, values within 1e-6)
    f1 = np.float32(1.0)
    f2 = np.float32(2.0)
    c1 = np.float32(_C1)
    c2 = np.float32(_C2)
    for task in prange(C * nb):
        c, r0, r1 = _block(task, nb, H, rows)
        Wp = _padded(W)
        ring = np.zeros((K, _NQ, Wp), np.float32)
        qn = np.zeros((2, _padded_line(W, K)), np.float32)  # the padded rows of x and y; the pads stay zero
        v = np.empty((_NQ, Wp), np.float32)
        for rr in range(r0 - R, r1 + R):
            slot = rr % K
            if rr < 0 or rr >= H:
                ring[slot] = 0.0
            else:
                xl = qn[0, R:]  # views from R: an index R + q (sign unknown to numba) would keep the loop scalar
                yl = qn[1, R:]
                xr = x[c, rr]
                yr = y[c, rr]
                for q in range(W):
                    xl[q] = xr[q]
                    yl[q] = np.float32(yr[q]) * ys
                _hblur5(qn[0], qn[1], w, ring[slot])
            r = rr - R  # the row whose 11 rows are now all in the ring
            if r < r0:
                continue
            for j in range(_NQ):
                _vblur_row(ring, j, r - R, w, v[j])
            v0 = v[0]
            v1 = v[1]
            v2 = v[2]
            v3 = v[3]
            v4 = v[4]
            _zero_pads(dmaps[c, r], R, W)  # the backward's horizontal blur reads them
            _zero_pads(dmaps[C + c, r], R, W)
            _zero_pads(dmaps[2 * C + c, r], R, W)
            d0 = dmaps[c, r, R:]
            d1 = dmaps[C + c, r, R:]
            d2 = dmaps[2 * C + c, r, R:]
            xr = x[c, r]
            yr = y[c, r]
            s_ssim = 0.0
            s_l1 = 0.0
            s_l2 = 0.0
            for q in range(W):
                m1 = v0[q]
                e11 = v1[q]
                e12 = v2[q]
                m2 = v3[q]
                e22 = v4[q]
                A1 = f2 * m1 * m2 + c1
                A2 = f2 * (e12 - m1 * m2) + c2
                B1 = m1 * m1 + m2 * m2 + c1
                B2 = (e11 - m1 * m1) + (e22 - m2 * m2) + c2
                iB1 = f1 / B1
                iB2 = f1 / B2
                inv = iB1 * iB2
                S = A1 * A2 * inv
                s_ssim += S
                d0[q] = f2 * m2 * (A2 - A1) * inv - f2 * m1 * S * (iB1 - iB2)
                d1[q] = -S * iB2
                d2[q] = f2 * A1 * inv
                d = xr[q] - np.float32(yr[q]) * ys
                s_l1 += abs(d)
                s_l2 += d * d
            sums[c, r, 0] = s_ssim
            sums[c, r, 1] = s_l1
            sums[c, r, 2] = s_l2


@njit(parallel=True, fastmath=True, cache=True)
def _loss_bwd(x, y, yscale, dmaps, w, rows, k_ssim, k_l1, grad):
    """grad (C, H, W) = k_ssim * (blur(dS/dmu) + 2 x blur(dS/dE[xx]) + y blur(dS/dE[xy])) + k_l1 * sign(x - y)
    (the blur is self-adjoint; the same ring-buffer blocks as _loss_fwd)."""
    C, H, W = x.shape
    K, R, nb = _blocking(w, H, rows)
    ys = np.float32(yscale)
    for task in prange(C * nb):
        c, r0, r1 = _block(task, nb, H, rows)
        Wp = _padded(W)
        ring = np.zeros((K, 3, Wp), np.float32)
        v = np.empty((3, Wp), np.float32)
        for rr in range(r0 - R, r1 + R):
            slot = rr % K
            if rr < 0 or rr >= H:
                ring[slot] = 0.0
            else:
                for j in range(3):
                    _hblur_row(dmaps[j * C + c, rr], w, ring[slot, j])
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
                b = np.float32(yr[q]) * ys
                d = a - b
                sg = np.float32(1.0) if d > 0 else (np.float32(-1.0) if d < 0 else np.float32(0.0))
                gr[q] = k_ssim * (v0[q] + np.float32(2.0) * a * v1[q] + b * v2[q]) + k_l1 * sg


class _FusedLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, img, gt, lambda_dssim):
        x = np.ascontiguousarray(img.detach().to(torch.float32).numpy())
        g = gt.detach()
        if g.dtype == torch.uint8:
            y, yscale = np.ascontiguousarray(g.numpy()), 1.0 / 255.0
        else:
            y, yscale = np.ascontiguousarray(g.to(torch.float32).numpy()), 1.0
        C, H, W = x.shape
        dmaps = np.empty((3 * C, H, int(_padded_line(W, _W1D.shape[0]))), np.float32)
        rows = _block_rows(H, C, numba.get_num_threads())
        sums = np.empty((C, H, 3), np.float64)
        _loss_fwd(x, y, yscale, _W1D, rows, dmaps, sums)
        n = float(x.size)
        tot = sums.reshape(-1, 3).sum(axis=0)
        ctx.saved = (x, y, yscale, dmaps, rows)
        ctx.lam = float(lambda_dssim)
        ctx.dtype = img.dtype
        loss = (1.0 - lambda_dssim) * tot[1] / n + lambda_dssim * (1.0 - tot[0] / n)
        mse = torch.tensor(tot[2] / n, dtype=torch.float64)
        ctx.mark_non_differentiable(mse)
        return torch.tensor(loss, dtype=img.dtype), mse

    @staticmethod
    def backward(ctx, g, _g_mse):
        x, y, yscale, dmaps, rows = ctx.saved
        n = float(x.size)
        gv = float(g)
        grad = np.empty_like(x)
        _loss_bwd(x, y, yscale, dmaps, _W1D, rows, np.float32(-ctx.lam * gv / n), np.float32((1.0 - ctx.lam) * gv / n),
                  grad)
        ctx.saved = None
        return torch.from_numpy(grad).to(ctx.dtype), None, None


def fused_train_loss(img, gt, lambda_dssim=0.2, with_mse=False):
    """(1 - lambda) L1 + lambda (1 - SSIM) for (3, H, W) CPU images, as train_loss (11 x 11 Gaussian window,
    zero padding), forward and backward in one numba pass each; gt float32 in [0, 1] or uint8.  with_mse:
    also the mean squared error (a float, for PSNR without another pass)."""
    loss, mse = _FusedLoss.apply(img, gt, float(lambda_dssim))
    return (loss, float(mse)) if with_mse else loss


def fused_ssim(img, gt):
    """Same value as ssim() for (3, H, W) CPU images (and its gradient), from the same one-pass kernels."""
    loss, _ = _FusedLoss.apply(img, gt, 1.0)
    return 1.0 - loss


def psnr_from_mse(mse):
    return 100.0 if mse <= 1e-10 else 10.0 * math.log10(1.0 / mse)
