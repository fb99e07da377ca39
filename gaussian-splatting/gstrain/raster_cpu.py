"""Tile-based CPU compositing (forward + backward) compiled with numba.

Pipeline per render:
  1. bin:      Gaussians (already depth-sorted, front to back) are appended to every 16x16 tile their
               pixel box touches (counting sort -> per-tile lists stay depth-ordered).
  2. pack:     per list entry, the Gaussian's 2D data is gathered into a contiguous (E, 12) array, and its
               pixel box (3-sigma square cut to where alpha >= 1/255 is possible) into bbox (E, 4).
  3. forward:  prange over tiles; each tile's entries are split into 32 strips (8 pixels of one row), and
               a strip's 8 pixels are SIMD lanes (gstrain/simd.py: AVX2 on x86-64): every entry of the strip
               is composited into the 8 lanes at once, masked, front to back with early stop.
  4. backward: prange over tiles; the same strips back to front from each pixel's last contributor,
               tracking T and S = sum of (c.dL/dC) alpha T of the farther Gaussians per pixel, summing
               the 8 lanes' gradients into the *entry* slots (each entry belongs to exactly one tile, hence
               to one thread -> no write races, deterministic), then a serial reduction sums entries per
               Gaussian.
The autograd.Function returns d/d(means2d, conics, colors, opacities); torch autograd handles the
projection / covariance / SH part (rasterize.preprocess).
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch
from numba import njit, prange

from .simd import NL, all_, any_, hsum, iload, iota, isplat, istore, load, select, splat, store, vmax, vmin

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99
T_MIN = 1e-4
TILE = 16
_FM = {"nnan", "ninf", "nsz", "arcp", "contract", "afn"}


@njit(inline="always", fastmath=True)
def fexp(x):
    """exp(x) for x in [-8, 0] (the only range the kernels need): Taylor(x/16) then 4 squarings.

    Relative error < 2e-6; branch-free so the compiler can pipeline/vectorise it."""
    y = x * np.float32(0.0625)
    p = np.float32(1.0 / 40320.0)
    p = p * y + np.float32(1.0 / 5040.0)
    p = p * y + np.float32(1.0 / 720.0)
    p = p * y + np.float32(1.0 / 120.0)
    p = p * y + np.float32(1.0 / 24.0)
    p = p * y + np.float32(1.0 / 6.0)
    p = p * y + np.float32(0.5)
    p = p * y + np.float32(1.0)
    p = p * y + np.float32(1.0)
    p = p * p
    p = p * p
    p = p * p
    return p * p


NF = 12  # packed features per entry: mx my a b c opacity hx hy r g b log-threshold


@njit(cache=True)
def _extents(means2d, conics, opac, radii, W, H):
    """Per-Gaussian half extents (hx, hy) of the region where it can reach alpha >= 1/255.

    It is the intersection of the reference's 3-sigma square (|d| <= radius) and the bounding box of
    the ellipse op * exp(-0.5 d^T Q d) >= 1/255; pixels outside cannot pass the alpha test, so
    restricting work to it changes nothing but the amount of work.  hx < 0 means invisible.
    """
    n = means2d.shape[0]
    ext = np.empty((n, 2), np.float32)
    for g in range(n):
        r = radii[g]
        o = opac[g]
        a = conics[g, 0]
        b = conics[g, 1]
        c = conics[g, 2]
        det = a * c - b * b
        if r <= 0 or o * 255.0 < 1.0 or det <= 0:
            ext[g, 0] = -1.0
            ext[g, 1] = -1.0
            continue
        t = 2.0 * math.log(o * 255.0)
        hx = math.sqrt(t * c / det) * 1.0001 + 1e-3
        hy = math.sqrt(t * a / det) * 1.0001 + 1e-3
        ext[g, 0] = min(hx, r)
        ext[g, 1] = min(hy, r)
    return ext


@njit(cache=True)
def _bin(order, means2d, ext, W, H, TS, tiles_x, tiles_y):
    ntiles = tiles_x * tiles_y
    n = order.shape[0]
    rect = np.empty((n, 4), np.int32)
    counts = np.zeros(ntiles + 1, np.int64)
    for k in range(n):
        g = order[k]
        hx = ext[g, 0]
        hy = ext[g, 1]
        rect[k, 0] = 1
        rect[k, 1] = 0
        if hx < 0:
            continue
        u = means2d[g, 0]
        v = means2d[g, 1]
        if not (abs(u) < 1e7 and abs(v) < 1e7):
            continue
        x0 = max(0, int(math.ceil(u - hx)))
        x1 = min(W - 1, int(math.floor(u + hx)))
        y0 = max(0, int(math.ceil(v - hy)))
        y1 = min(H - 1, int(math.floor(v + hy)))
        if x0 > x1 or y0 > y1:
            continue
        tx0 = x0 // TS
        tx1 = x1 // TS
        ty0 = y0 // TS
        ty1 = y1 // TS
        rect[k, 0] = tx0
        rect[k, 1] = tx1
        rect[k, 2] = ty0
        rect[k, 3] = ty1
        for ty in range(ty0, ty1 + 1):
            for tx in range(tx0, tx1 + 1):
                counts[ty * tiles_x + tx + 1] += 1
    for t in range(ntiles):
        counts[t + 1] += counts[t]
    offsets = counts
    fill = offsets[:-1].copy()
    lists = np.empty(offsets[ntiles], np.int32)
    for k in range(n):
        if rect[k, 0] > rect[k, 1]:
            continue
        g = order[k]
        for ty in range(rect[k, 2], rect[k, 3] + 1):
            for tx in range(rect[k, 0], rect[k, 1] + 1):
                t = ty * tiles_x + tx
                lists[fill[t]] = g
                fill[t] += 1
    return offsets, lists


@njit(parallel=True, cache=True)
def _pack(lists, means2d, conics, colors, opac, ext, W, H):
    """Gathers each list entry's data (packed, float32) and its pixel box clipped to the image (bbox, int32:
    x0 x1 y0 y1, the same box _bin binned it by)."""
    E = lists.shape[0]
    packed = np.empty((E, NF), np.float32)
    bbox = np.empty((E, 4), np.int32)
    for e in prange(E):
        g = lists[e]
        u = means2d[g, 0]
        v = means2d[g, 1]
        bbox[e, 0] = max(0, int(math.ceil(u - ext[g, 0])))
        bbox[e, 1] = min(W - 1, int(math.floor(u + ext[g, 0])))
        bbox[e, 2] = max(0, int(math.ceil(v - ext[g, 1])))
        bbox[e, 3] = min(H - 1, int(math.floor(v + ext[g, 1])))
        packed[e, 0] = means2d[g, 0]
        packed[e, 1] = means2d[g, 1]
        packed[e, 2] = conics[g, 0]
        packed[e, 3] = conics[g, 1]
        packed[e, 4] = conics[g, 2]
        o = opac[g]
        packed[e, 5] = o
        packed[e, 6] = ext[g, 0]
        packed[e, 7] = ext[g, 1]
        packed[e, 8] = colors[g, 0]
        packed[e, 9] = colors[g, 1]
        packed[e, 10] = colors[g, 2]
        # alpha < 1/255  <=>  power < log(1 / (255 * o)); lets the kernels skip exp() for faint pixels
        packed[e, 11] = math.log(ALPHA_MIN / o) if o > 0 else np.inf
    return packed, bbox


@njit(cache=True)
def _reduce(lists, egrad, n):
    out = np.zeros((n, 9), np.float32)
    for e in range(lists.shape[0]):
        g = lists[e]
        for j in range(9):
            out[g, j] += egrad[e, j]
    return out


@njit(inline="always")
def _strip_alpha(packed, k, fx, dy, qv):
    """Power, exp(power) and alpha of entry k at the strip's 8 pixels (dx = fx - lane)."""
    a = packed[k, 2]
    b = packed[k, 3]
    c = packed[k, 4]
    dx = fx - qv
    pw = dx * dx * (np.float32(-0.5) * a) + (np.float32(-0.5) * c * dy * dy - b * dy * dx)
    e = fexp(vmin(vmax(pw, np.float32(-8.0)), np.float32(0.0)))
    raw = e * packed[k, 5]
    return dx, pw, e, raw, vmin(raw, np.float32(ALPHA_MAX))


@njit(inline="always")
def _strip_ok(packed, bbox, k, px0, pw, al, qv):
    """Lanes where entry k passes the alpha test inside its (3-sigma / alpha) pixel box."""
    lof = np.float32(bbox[k, 0] - px0)
    hif = np.float32(bbox[k, 1] - px0)
    return (pw >= packed[k, 11]) & (pw <= np.float32(0.0)) & (al >= np.float32(ALPHA_MIN)) & (qv >= lof) & \
        (qv <= hif)


@njit(inline="always")
def _strip_lists(bbox, start, end, tx, ty):
    """The tile's entries split by strip (strip s = row s // 2, left or right 8 pixels), each list in
    depth order: soff (33,) offsets into slist.  Testing every entry's box against every strip instead
    cost more than the compositing itself (mispredicted branches)."""
    x0 = tx * TILE
    y0 = ty * TILE
    soff = np.zeros(2 * TILE + 1, np.int64)
    for k in range(start, end):
        r0 = max(bbox[k, 2] - y0, 0)
        r1 = min(bbox[k, 3] - y0, TILE - 1)
        h0 = 0 if bbox[k, 0] < x0 + NL else 1
        h1 = 1 if bbox[k, 1] >= x0 + NL else 0
        for r in range(r0, r1 + 1):
            for h in range(h0, h1 + 1):
                soff[2 * r + h + 1] += 1
    for s in range(2 * TILE):
        soff[s + 1] += soff[s]
    fill = soff[:-1].copy()
    slist = np.empty(soff[2 * TILE], np.int64)
    for k in range(start, end):
        r0 = max(bbox[k, 2] - y0, 0)
        r1 = min(bbox[k, 3] - y0, TILE - 1)
        h0 = 0 if bbox[k, 0] < x0 + NL else 1
        h1 = 1 if bbox[k, 1] >= x0 + NL else 0
        for r in range(r0, r1 + 1):
            for h in range(h0, h1 + 1):
                slist[fill[2 * r + h]] = k
                fill[2 * r + h] += 1
    return soff, slist


@njit(parallel=True, cache=True, fastmath=_FM)
def _forward(packed, bbox, offsets, tile_perm, W, H, tiles_x, bg, img, final_T, n_contrib):
    """Front to back per tile, one strip of 8 pixels of a tile row at a time, the 8 pixels as SIMD lanes:
    each entry whose pixel box meets the strip is composited into all 8 lanes at once (masked), and the
    strip stops when every pixel in it is saturated (T would fall below 1e-4)."""
    ntiles = tile_perm.shape[0]
    for i in prange(ntiles):
        t = tile_perm[i]
        ty = t // tiles_x
        tx = t - ty * tiles_x
        start = offsets[t]
        end = offsets[t + 1]
        buf = np.empty(5 * NL, np.float32)
        ibuf = np.empty(NL, np.int32)
        qv = iota()
        soff, slist = _strip_lists(bbox, start, end, tx, ty)
        for strip in range(2 * TILE):
            py = ty * TILE + strip // 2
            px0 = tx * TILE + (strip % 2) * NL
            if py >= H or px0 >= W:
                continue
            nvalid = min(NL, W - px0)
            dead = qv >= np.float32(nvalid)  # lanes past the image edge count as saturated
            fx0 = -np.float32(px0)
            pyf = np.float32(py)
            T = splat(1.0)
            R = splat(0.0)
            G = splat(0.0)
            B = splat(0.0)
            last = isplat(start)
            sat = dead
            for j in range(soff[strip], soff[strip + 1]):
                k = slist[j]
                dx, pw, e, raw, al = _strip_alpha(packed, k, packed[k, 0] + fx0, packed[k, 1] - pyf, qv)
                ok = _strip_ok(packed, bbox, k, px0, pw, al, qv) & ~sat
                tt = T * (np.float32(1.0) - al)
                keep = tt >= np.float32(T_MIN)
                co = ok & keep
                w = select(co, al * T, np.float32(0.0))
                R = R + w * packed[k, 8]
                G = G + w * packed[k, 9]
                B = B + w * packed[k, 10]
                T = select(co, tt, T)
                last = select(co, isplat(k + 1), last)
                sat = sat | (ok & ~keep)
                if all_(sat):
                    break
            store(buf, 0, T)
            store(buf, NL, R + T * bg[0])
            store(buf, 2 * NL, G + T * bg[1])
            store(buf, 3 * NL, B + T * bg[2])
            istore(ibuf, 0, last)
            for q in range(nvalid):
                final_T[py, px0 + q] = buf[q]
                img[0, py, px0 + q] = buf[NL + q]
                img[1, py, px0 + q] = buf[2 * NL + q]
                img[2, py, px0 + q] = buf[3 * NL + q]
                n_contrib[py, px0 + q] = ibuf[q]


@njit(parallel=True, cache=True, fastmath=_FM)
def _backward(packed, bbox, offsets, tile_perm, W, H, tiles_x, bg, final_T, n_contrib, grad_img, egrad):
    """Reverse traversal per tile and strip (8 lanes, as _forward), from the strip's last contributor back;
    egrad (E, 9), zeroed by the caller: d mean x, y, d conic a, b, c, d opacity, d colour r, g, b per entry.
    An entry belongs to one tile, hence to one thread, whose strips add into it in turn: no races, and
    the same sums in the same order at any thread count."""
    ntiles = tile_perm.shape[0]
    for i in prange(ntiles):
        t = tile_perm[i]
        ty = t // tiles_x
        tx = t - ty * tiles_x
        start = offsets[t]
        buf = np.zeros(4 * NL, np.float32)
        ibuf = np.zeros(NL, np.int32)
        qv = iota()
        soff, slist = _strip_lists(bbox, start, offsets[t + 1], tx, ty)
        for strip in range(2 * TILE):
            py = ty * TILE + strip // 2
            px0 = tx * TILE + (strip % 2) * NL
            if py >= H or px0 >= W:
                continue
            nvalid = min(NL, W - px0)
            kmax = start
            for q in range(NL):
                if q < nvalid:
                    buf[q] = final_T[py, px0 + q]
                    buf[NL + q] = grad_img[0, py, px0 + q]
                    buf[2 * NL + q] = grad_img[1, py, px0 + q]
                    buf[3 * NL + q] = grad_img[2, py, px0 + q]
                    ibuf[q] = n_contrib[py, px0 + q]
                    kmax = max(kmax, ibuf[q])
                else:
                    buf[q] = np.float32(1.0)
                    buf[NL + q] = np.float32(0.0)
                    buf[2 * NL + q] = np.float32(0.0)
                    buf[3 * NL + q] = np.float32(0.0)
                    ibuf[q] = 0
            T = load(buf, 0)
            G0 = load(buf, NL)
            G1 = load(buf, 2 * NL)
            G2 = load(buf, 3 * NL)
            LK = iload(ibuf, 0)
            TB = T * (G0 * bg[0] + G1 * bg[1] + G2 * bg[2])
            S = splat(0.0)
            fx0 = -np.float32(px0)
            pyf = np.float32(py)
            for j in range(soff[strip + 1] - 1, soff[strip] - 1, -1):
                k = slist[j]
                if k >= kmax:
                    continue
                dy = packed[k, 1] - pyf
                dx, pw, e, raw, al = _strip_alpha(packed, k, packed[k, 0] + fx0, dy, qv)
                ok = _strip_ok(packed, bbox, k, px0, pw, al, qv) & (isplat(k) < LK)
                if not any_(ok):
                    continue
                io = np.float32(1.0) / (np.float32(1.0) - al)
                Tn = T * io
                T = select(ok, Tn, T)
                w = select(ok, al * Tn, np.float32(0.0))
                cg = G0 * packed[k, 8] + G1 * packed[k, 9] + G2 * packed[k, 10]
                # dC/dalpha_k = T_k c_k - (sum_{j>k} c_j alpha_j T_j + T_final bg) / (1 - alpha_k)
                da = Tn * cg - (S + TB) * io
                S = S + cg * w
                da = select(ok & (raw <= np.float32(ALPHA_MAX)), da, np.float32(0.0))  # clamped: no dG, dop
                a = packed[k, 2]
                b = packed[k, 3]
                c = packed[k, 4]
                dG = da * packed[k, 5]
                gx = e * dx
                gy = e * dy
                egrad[k, 0] += hsum(dG * (gx * -a - gy * b))
                egrad[k, 1] += hsum(dG * (gy * -c - gx * b))
                egrad[k, 2] += hsum(gx * dx * dG) * np.float32(-0.5)
                egrad[k, 3] += -hsum(gx * dG) * dy
                egrad[k, 4] += hsum(gy * dG) * (np.float32(-0.5) * dy)
                egrad[k, 5] += hsum(e * da)
                egrad[k, 6] += hsum(w * G0)
                egrad[k, 7] += hsum(w * G1)
                egrad[k, 8] += hsum(w * G2)


_PERM_CACHE = {}


def _tile_perm(ntiles):
    p = _PERM_CACHE.get(ntiles)
    if p is None:
        # interleave tiles so that the static chunks numba hands to each thread carry similar load
        p = np.random.RandomState(12345).permutation(ntiles).astype(np.int64)
        _PERM_CACHE[ntiles] = p
    return p


def _np32(t):
    return np.ascontiguousarray(t.detach().to(dtype=torch.float32, device="cpu").numpy())


class RasterizeCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means2d, conics, colors, opacities, depths, radii, W, H, bg, TS):
        if TS != TILE:
            raise ValueError(f"the CPU rasteriser works on {TILE}x{TILE} tiles, not {TS}")
        m = _np32(means2d)
        con = _np32(conics)
        col = _np32(colors)
        op = _np32(opacities).reshape(-1)
        rad = np.ascontiguousarray(radii.detach().cpu().numpy().astype(np.int32))
        dep = depths.detach().cpu().numpy()
        order = np.argsort(dep, kind="stable").astype(np.int64)
        tiles_x = (W + TS - 1) // TS
        tiles_y = (H + TS - 1) // TS
        ext = _extents(m, con, op, rad, W, H)
        offsets, lists = _bin(order, m, ext, W, H, TS, tiles_x, tiles_y)
        packed, bbox = _pack(lists, m, con, col, op, ext, W, H)
        bgn = _np32(bg).reshape(3)
        img = np.empty((3, H, W), np.float32)
        final_T = np.empty((H, W), np.float32)
        n_contrib = np.empty((H, W), np.int32)
        perm = _tile_perm(tiles_x * tiles_y)
        _forward(packed, bbox, offsets, perm, W, H, tiles_x, bgn, img, final_T, n_contrib)
        ctx.state = (packed, bbox, offsets, lists, perm, W, H, tiles_x, bgn, final_T, n_contrib, m.shape[0])
        ctx.dtypes = (means2d.dtype, conics.dtype, colors.dtype, opacities.dtype)
        ctx.shape_op = opacities.shape
        ctx.num_entries = int(lists.shape[0])
        return torch.from_numpy(img).to(means2d.dtype)

    @staticmethod
    def backward(ctx, grad_img):
        packed, bbox, offsets, lists, perm, W, H, tiles_x, bgn, final_T, n_contrib, n = ctx.state
        g = np.ascontiguousarray(grad_img.detach().to(torch.float32).numpy())
        egrad = np.zeros((packed.shape[0], 9), np.float32)
        _backward(packed, bbox, offsets, perm, W, H, tiles_x, bgn, final_T, n_contrib, g, egrad)
        out = torch.from_numpy(_reduce(lists, egrad, n))
        dm, dcon, dcol, dop = ctx.dtypes
        ctx.state = None
        return (out[:, 0:2].to(dm), out[:, 2:5].to(dcon), out[:, 6:9].to(dcol),
                out[:, 5].reshape(ctx.shape_op).to(dop), None, None, None, None, None, None)


def rasterize_cpu(means2d, conics, colors, opacities, depths, radii, W, H, bg, tile_size=16):
    return RasterizeCPU.apply(means2d, conics, colors, opacities, depths, radii, int(W), int(H), bg, int(tile_size))


def set_threads(n):
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    torch.set_num_threads(n)
    return n
