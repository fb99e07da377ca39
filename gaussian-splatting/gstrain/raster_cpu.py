"""Tile-based CPU compositing (forward + backward) compiled with numba: the pixel half of the CPU renderer
(gstrain/render_cpu.py runs it after project_cpu has projected, coloured and boxed the Gaussians).

Per render:
  1. sort:     the visible Gaussians by depth (LSD radix sort on the float32 bits); their packed rows
               (project_cpu.NF floats: 2D mean, conic, opacity, colour, log alpha threshold) are
               gathered in that order into gp (n, NF), their pixel boxes into gb (n, 4).
  2. bin:      each Gaussian is appended to every 16x16 tile its ellipse reaches (exactly, row by row, not
               every tile of its box: see NOTES for what that saves on a trained scene), with a mask of
               the tile's strips it reaches (counting sort -> per-tile lists of gp rows stay depth-ordered):
               gstrain/binning.py.
  3. forward:  prange over tiles; a tile first copies its entries' rows into a contiguous local block,
               splits them into strips (NL pixels of one row) by their masks, and a strip's pixels are SIMD
               lanes (gstrain/simd.py: AVX-512 or AVX2 on x86-64): every entry of the strip is composited into
               the lanes at once, masked, front to back with early stop.
  4. backward: prange over tiles; entry by entry back to front, each entry visiting the strips of its mask
               whose last contributor is not in front of it, with T and S = sum of (c.dL/dC) alpha T of the
               farther Gaussians per pixel kept per strip, and the entry's 9 gradients (2D mean, conic,
               opacity, colour) summed in registers over its strips into its *entry* slot (each entry belongs
               to exactly one tile, hence to one thread -> no write races, deterministic); project_cpu then
               sums them per Gaussian.
"""
from __future__ import annotations

import contextlib

import numba
import numpy as np
from numba import njit, prange
from numba.cpython.unsafe.numbers import trailing_zeros

from .project_cpu import ROW
from .simd import (
    NL,
    all_,
    bits,
    hsum,
    hsum8,
    iload,
    iota,
    isplat,
    istore,
    lane,
    load,
    prefetch_row,
    select,
    splat,
    store,
    store8_row,
    vmin,
)
from .simd_math import (
    vabs,
)
from .simd_rows import (
    row_load,
    row_store,
)

ALPHA_MAX = 0.99
T_MIN = 1e-4
TILE = 16
_FM = {"nnan", "ninf", "nsz", "arcp", "contract", "afn"}


@njit(inline="always", fastmath=True)
def exp16(y):
    """exp(16 y) for y in [-1/2, 0] (the kernels' powers over 16: the alpha test keeps powers in [-log 255, 0]):
    a degree-5 polynomial for exp(y), then 4 squarings.

    Relative error < 3e-6 (the polynomial is a near-minimax fit of exp on [-0.5, 0] in relative error, 3e-8
    before the squarings; tests/trainer/test_rasterizer.py checks the bound); branch-free so the compiler can
    pipeline/vectorise it.  The polynomial is evaluated by Estrin's scheme (pairs, then y^2): 3 dependent steps
    instead of Horner's 5, and the rasteriser's strips wait on this chain.  It replaced a degree-8 Taylor
    polynomial of the same accuracy: 4 operations fewer a strip visit (forward 0.94x, backward 0.97x on AVX2).
    Taking y = power / 16 rather than the power saves the kernels a multiplication a visit: they scale the conic
    by 1/16 once per entry instead (exact: a power of two)."""
    y2 = y * y
    p01 = y * np.float32(0.9999985694885254) + np.float32(1.0)
    p23 = y * np.float32(0.16640037298202515) + np.float32(0.4999680519104004)
    p45 = y * np.float32(0.006475534755736589) + np.float32(0.0406455360352993)
    p = (p45 * y2 + p23) * y2 + p01
    p = p * p
    p = p * p
    p = p * p
    return p * p


# tiles are handed to threads a few at a time as each finishes (dynamic scheduling): their costs differ by
# orders of magnitude, and equal static shares left a core idle at the end of every pass
TILE_CHUNK = 4
# entries ahead whose packed row is prefetched: a tile's entries index rows spread over the whole depth order,
# and the first read of each row was the backward's largest single cost (a cache miss per entry; see NOTES)
PREFETCH_AHEAD = 8
HALVES = TILE // NL  # a strip is NL pixels of a tile row: two per row with 8 lanes, one with 16
NS = TILE * HALVES  # strips per tile: strip s is part s // TILE (NL pixels from the left) of the tile's row s % TILE
# (half after half: a Gaussian's strip mask is then its rows' lane masks side by side, binning._tile_mask)
# what the kernels multiply a packed row (project_cpu's, ROW floats) by: _strip_alpha's conic -a / 32, b / 16,
# -c / 32 and the log-threshold / 16
CONIC_SCALE = np.ones(ROW, np.float32)
CONIC_SCALE[2] = CONIC_SCALE[4] = -1.0 / 32.0
CONIC_SCALE[3] = CONIC_SCALE[9] = 1.0 / 16.0


@njit(parallel=True, cache=True)
def _argsort_depth(idx, depths, nthreads):
    """idx sorted by depths[idx], stable (ties keep idx's order): LSD radix sort on the float32 bits, 3
    passes of 11 bits (depths are positive, so their bit patterns sort as the values do).  Each pass in
    parallel: per-chunk digit histograms, their prefix sums (chunk after chunk within a digit, so the order
    stays stable), then each chunk scatters its elements from its own offsets."""
    n = idx.shape[0]
    nch = max(1, min(4 * nthreads, n // 4096 + 1))
    keys = np.empty(n, np.uint32)
    for i in prange(n):
        keys[i] = np.float32(depths[idx[i]]).view(np.uint32)
    a = idx.copy()
    ka = keys
    b = np.empty_like(a)
    kb = np.empty_like(keys)
    hist = np.empty((nch, 2048), np.int64)
    for shift in (0, 11, 22):
        for c in prange(nch):
            h = hist[c]
            h[:] = 0
            for i in range(c * n // nch, (c + 1) * n // nch):
                h[(ka[i] >> shift) & 2047] += 1
        total = 0
        for d in range(2048):
            for c in range(nch):
                cnt = hist[c, d]
                hist[c, d] = total
                total += cnt
        for c in prange(nch):
            h = hist[c]
            for i in range(c * n // nch, (c + 1) * n // nch):
                d = (ka[i] >> shift) & 2047
                j = h[d]
                b[j] = a[i]
                kb[j] = ka[i]
                h[d] = j + 1
        a, b = b, a
        ka, kb = kb, ka
    return a


@njit(inline="always")
def _strip_alpha(dx, dy, ha, b, hc, op):
    """Power / 16, exp(power), raw and clamped alpha at a strip's pixels (dx: lanes, dy: the row's offset) of the
    Gaussian with conic (a, b, c) given as ha = -a / 32, b / 16, hc = -c / 32 and opacity op (CONIC_SCALE: the
    scalings are exact, so the power over 16 is the power's float32 value over 16 bit for bit).  The forward and
    backward both compute alpha here: the backward undoes the forward's transmittance with exactly its alphas.

    No clamp of the power to exp16's range: the only lanes whose alpha is used pass _strip_ok, whose powers lie in
    [-log 255, 0] (the threshold is -log(255 o), o <= 1); on the others exp16 may give anything, inf included,
    and every use selects it away (a clamp cost two operations and a register a visit: NOTES)."""
    pw = dx * dx * ha + (hc * dy * dy - b * dy * dx)
    e = exp16(pw)
    raw = e * op
    return pw, e, raw, vmin(raw, np.float32(ALPHA_MAX))


@njit(inline="always")
def _strip_ok(pw, thr):
    """Lanes where a Gaussian passes the alpha test: power >= log(1 / (255 o)) and power <= 0, as power / 16 >=
    thr = the row's log-threshold / 16 and power / 16 <= 0 (the same comparisons: exact scalings).  Testing
    alpha >= 1/255 as well only re-asked it through exp's polynomial.  No pixel-box test: the box is the bounding
    box of this very test's ellipse, widened for rounding (project_cpu._box_v), so a lane outside it fails the
    power test anyway, and the strip masks already leave out the rows and strips outside it (NOTES: what the
    per-lane box test cost)."""
    return (pw >= thr) & (pw <= np.float32(0.0))


@njit(inline="always")
def _tile_pack(packed, lists, start, end):
    """A copy of the tile's entries' rows of packed, contiguous and in depth order (local index l = entry -
    start), with the conic and the log-threshold scaled by CONIC_SCALE as _strip_alpha and _strip_ok take them
    (exact; multiplications a strip visit fewer).  Reading the shared rows through lists[] inside the
    strip loops instead cost a quarter more time at 100k Gaussians (a dependent load per entry and per strip,
    rows scattered)."""
    m = end - start
    rw = packed.shape[1]
    lp = np.empty((m, rw), np.float32)
    for q in range(m):
        if q + PREFETCH_AHEAD < m:
            prefetch_row(packed, lists[start + q + PREFETCH_AHEAD])
        k = lists[start + q]
        for col in range(0, rw, NL):  # a row is one vector (two with 8 lanes)
            row_store(lp, q, col, row_load(packed, k, col) * load(CONIC_SCALE, col))
    return lp


@njit(inline="always")
def _strip_bitmaps(smask, start, m):
    """The tile's entries split by strip (strip s = row s % TILE, part s // TILE of NL pixels) as the entries'
    strip masks say, as bitmaps: bit i of word w of row s is set when entry 64 w + i (local index) reaches
    strip s; a strip's entries are its set bits in order (depth order).  Built strip by strip as vectorised
    OR-sums of one mask bit, without branches.  Testing every entry's box against every strip instead cost
    more than the compositing itself (mispredicted branches); lists of entry indices per strip cost a sixth
    of the forward to build (bitmaps: forward 0.9x)."""
    sm = smask[start:start + m]  # a view: indexing smask[start + q] keeps numba's loops scalar
    nw = (m + 63) // 64
    bm = np.empty((NS, max(nw, 1)), np.uint64)
    for s in range(NS):
        for w in range(nw):
            base = 64 * w
            part = sm[base:min(m, base + 64)]
            word = np.uint64(0)
            for i in range(part.shape[0]):
                word |= np.uint64((part[i] >> s) & 1) << np.uint64(i)
            bm[s, w] = word
    return bm, nw


@njit(inline="always")
def _composite_strip(lp, bm, nw, strip, px0f, pyf, qv, dead, abuf, kbuf):
    """The forward's strip: T, R, G, B and the last contributor of its NL lanes (the pixels from column px0f of
    row pyf; dead: lanes past the image's edge) after compositing, front to back, the entries its bitmap row
    bm[strip] names (rows of the tile copy lp), until every lane is saturated.  abuf, kbuf: scratch of a bitmap
    word's visits (64 NL floats, 64 ints).

    A lane's T carries its saturation in its sign while compositing: negative once the lane has stopped, |T| its
    transmittance (a separate mask held one more vector across the loop, and AVX2's 16 registers do not hold the
    loop's state and constants as it is: NOTES, "Traps found").  Per bitmap word, first the alphas of its
    entries (up to 64), each independent of the others and of the strip's state, alpha 0 where the entry fails
    the alpha test; then the state updates, a short chain a visit.  In one loop each visit's exp and alpha
    waited on the out-of-order window (NOTES, "CPU renderer on AVX2, session 21").  At most a word's alphas are
    computed past the strip's saturation."""
    T = select(dead, splat(-1.0), splat(1.0))
    R = splat(0.0)
    G = splat(0.0)
    B = splat(0.0)
    last = isplat(0)
    for wd in range(nw):
        word = bm[strip, wd]
        nb = 0
        while word != 0:
            k = 64 * wd + trailing_zeros(word)  # local index of the entry: row of lp
            word &= word - np.uint64(1)
            dx = (lp[k, 0] - px0f) - qv
            # lp holds the conic and threshold scaled (_tile_pack)
            pw, e, raw, al = _strip_alpha(dx, lp[k, 1] - pyf, lp[k, 2], lp[k, 3], lp[k, 4], lp[k, 5])
            store(abuf, NL * nb, select(_strip_ok(pw, lp[k, 9]), al, np.float32(0.0)))
            kbuf[nb] = k
            nb += 1
        for j in range(nb):
            k = kbuf[j]
            # alpha > 0 exactly where the entry passed the test (alpha >= 1/255 there); where it failed, tt = T
            # and w = 0, so a running lane (T >= T_MIN) keeps its state
            al = load(abuf, NL * j)
            tt = T * (np.float32(1.0) - al)
            keep = tt >= np.float32(T_MIN)
            w = select(keep, al * T, np.float32(0.0))
            R = R + w * lp[k, 6]
            G = G + w * lp[k, 7]
            B = B + w * lp[k, 8]
            # a lane reached but not kept stops; a stopped lane's T < 0 is never kept
            T = select(keep, tt, -vabs(T))
            last = select(keep & (al > np.float32(0.0)), isplat(k + 1), last)
            if all_(T < np.float32(0.0)):
                return vabs(T), R, G, B, last
    return vabs(T), R, G, B, last


@njit(parallel=True, cache=True, fastmath=_FM)
def _forward(packed, lists, smask, offsets, tile_perm, W, H, tiles_x, bg, img, final_T, n_contrib):
    """Front to back per tile, one strip of NL pixels of a tile row at a time, the pixels as SIMD lanes: each
    entry whose strip mask names the strip is composited into all its lanes at once (masked), and the strip
    stops when every pixel in it is saturated (T would fall below 1e-4)."""
    ntiles = tile_perm.shape[0]
    for i in prange(ntiles):
        t = tile_perm[i]
        ty = t // tiles_x
        tx = t - ty * tiles_x
        start = offsets[t]
        end = offsets[t + 1]
        buf = np.empty(5 * NL, np.float32)
        ibuf = np.empty(NL, np.int32)
        abuf = np.empty(64 * NL, np.float32)  # a bitmap word's visits: alphas, rows of lp
        kbuf = np.empty(64, np.int64)
        qv = iota()
        lp = _tile_pack(packed, lists, start, end)
        bm, nw = _strip_bitmaps(smask, start, lp.shape[0])
        for strip in range(NS):
            py = ty * TILE + strip % TILE
            px0 = tx * TILE + (strip // TILE) * NL
            if py >= H or px0 >= W:
                continue
            nvalid = min(NL, W - px0)
            dead = qv >= np.float32(nvalid)  # lanes past the image edge count as saturated
            px0f = np.float32(px0)
            pyf = np.float32(py)
            T, R, G, B, last = _composite_strip(lp, bm, nw, strip, px0f, pyf, qv, dead, abuf, kbuf)
            if nvalid == NL:  # a whole strip: straight into the image rows
                store(final_T[py], px0, T)
                store(img[0, py], px0, R + T * bg[0])
                store(img[1, py], px0, G + T * bg[1])
                store(img[2, py], px0, B + T * bg[2])
                istore(n_contrib[py], px0, last)
                continue
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


VT = 6  # vectors of terms a backward visit keeps (_visit_terms)


@njit(inline="always")
def _visit_terms(packed, k, mk, q, sxy, qv, lk, vb):
    """The backward's first pass over entry q's strips (mk: their bits; k: its row of packed): for its visit j
    (in strip order: to the strip of mk's j-th bit) the terms that do not depend on the strips' state, VT vectors
    at vb[VT * NL * j]: 1 / (1 - alpha) and alpha where the entry reaches a pixel (1 and 0 elsewhere), exp(power)
    where it gets gradients (alpha not clamped, else 0) and that times dx and dy, and dx.  Returns the number of
    visits.  Split from the state updates so that the visits' exponentials and divisions are independent of each
    other and of the state (backward 0.75x on AVX2: one loop doing both waited on each visit's chain, NOTES).
    The state loop walks mk's bits again for the strips and their rows rather than reading them stored here
    (fewer stores a visit, and two arrays' pointers fewer in a loop short of registers)."""
    mx = packed[k, 0]
    my = packed[k, 1]
    ha = CONIC_SCALE[2] * packed[k, 2]
    b = CONIC_SCALE[3] * packed[k, 3]
    hc = CONIC_SCALE[4] * packed[k, 4]
    op = packed[k, 5]
    thr = CONIC_SCALE[9] * packed[k, 9]
    qk = isplat(q)
    nv = 0
    while mk != 0:
        s = trailing_zeros(mk)
        mk &= mk - 1
        px0 = sxy[s]
        dy = my - sxy[NS + s]
        dx = (mx - px0) - qv
        pw, ex, raw, al = _strip_alpha(dx, dy, ha, b, hc, op)
        ok = _strip_ok(pw, thr) & (qk < iload(lk, NL * s))
        ec = select(ok & (raw <= np.float32(ALPHA_MAX)), ex, np.float32(0.0))  # clamped: no dG, d opacity
        v = VT * NL * nv
        store(vb, v, select(ok, np.float32(1.0) / (np.float32(1.0) - al), np.float32(1.0)))
        store(vb, v + NL, select(ok, al, np.float32(0.0)))
        store(vb, v + 2 * NL, ec)
        store(vb, v + 3 * NL, ec * dx)
        store(vb, v + 4 * NL, ec * dy)
        store(vb, v + 5 * NL, dx)
        nv += 1
    return nv


@njit(parallel=True, cache=True, fastmath=_FM)
def _backward(packed, lists, smask, offsets, tile_perm, W, H, tiles_x, bg, final_T, n_contrib, grad_img, egrad):
    """Reverse traversal per tile, entry by entry from the back (entry-major): each entry visits the strips its
    mask names (NL pixels of a tile row as SIMD lanes, as _forward) whose last contributor is not in front of
    it, updating that strip's running state (T, and S = sum of (c.dL/dC) alpha T of the farther Gaussians per
    pixel), and sums its own 9 gradients in registers; egrad (E, >= 9), the first 9 columns of every row
    written: d mean x, y, d conic a, b, c, d opacity, d colour r, g, b per entry.

    Every strip still sees its entries back to front, and every entry adds its strips' terms in strip order,
    so the sums are those of a strip-major traversal.  Strip-major kept a (entries, 9 x NL) accumulator per
    tile, read and written once per strip an entry meets (megabytes at 100k Gaussians, out of L1); here the
    strips' state is a few kilobytes and an entry's sums stay in registers.  An entry belongs to one tile,
    hence to one thread: no races, and the same sums in the same order at any thread count.

    Long on purpose: the strips' state set-up, the live-strip bookkeeping and the per-entry loop with its nine
    register accumulators share their locals within one prange iteration; split into functions they would pass
    the strips' state arrays, the nine accumulators and a dozen scalars per entry (a call per entry, at
    10^5-10^6 entries a render)."""
    ntiles = tile_perm.shape[0]
    for i in prange(ntiles):
        t = tile_perm[i]
        ty = t // tiles_x
        tx = t - ty * tiles_x
        start = offsets[t]
        m = offsets[t + 1] - start
        if m == 0:
            continue
        qv = iota()
        # per strip: T, S, G0, G1, G2, T_final (bg . dL/dC) in NL lanes each, last contributor per lane, and
        # the strip's largest one (entries at or behind it touch no pixel of the strip)
        st = np.zeros(6 * NS * NL, np.float32)
        lk = np.zeros(NS * NL, np.int32)
        kmax = np.zeros(NS, np.int32)  # the strips' last contributors: an entry at or behind it touches none
        vb = np.empty(VT * NS * NL, np.float32)  # an entry's visits' terms (_visit_terms)
        # per strip: its first pixel's column, then its row, as floats (_visit_terms reads them rather than
        # converting the strip index at every visit)
        sxy = np.empty(2 * NS, np.float32)
        for s in range(NS):
            py = ty * TILE + s % TILE
            px0 = tx * TILE + (s // TILE) * NL
            sxy[s] = np.float32(px0)
            sxy[NS + s] = np.float32(py)
            o = 6 * NL * s
            if py < H and px0 + NL <= W:  # a whole strip: its rows' lanes in one load each
                T = load(final_T[py], px0)
                g0 = load(grad_img[0, py], px0)
                g1 = load(grad_img[1, py], px0)
                g2 = load(grad_img[2, py], px0)
                store(st, o, T)
                store(st, o + 2 * NL, g0)
                store(st, o + 3 * NL, g1)
                store(st, o + 4 * NL, g2)
                store(st, o + 5 * NL, T * (g0 * bg[0] + g1 * bg[1] + g2 * bg[2]))
                istore(lk, NL * s, iload(n_contrib[py], px0))
                lks = lk[NL * s:NL * s + NL]
                km = np.int32(0)
                for q in range(NL):
                    km = max(km, lks[q])
                kmax[s] = km
                continue
            for q in range(NL):
                if py < H and px0 + q < W:
                    T = final_T[py, px0 + q]
                    g0 = grad_img[0, py, px0 + q]
                    g1 = grad_img[1, py, px0 + q]
                    g2 = grad_img[2, py, px0 + q]
                    st[o + q] = T
                    st[o + 2 * NL + q] = g0
                    st[o + 3 * NL + q] = g1
                    st[o + 4 * NL + q] = g2
                    st[o + 5 * NL + q] = T * (g0 * bg[0] + g1 * bg[1] + g2 * bg[2])
                    lk[NL * s + q] = n_contrib[py, px0 + q]
                    kmax[s] = max(kmax[s], lk[NL * s + q])
                else:  # past the image edge: saturated lanes that no entry reaches
                    st[o + q] = np.float32(1.0)
        for q in range(m - 1, -1, -1):
            if q >= PREFETCH_AHEAD:
                prefetch_row(packed, lists[start + q - PREFETCH_AHEAD])
            # the strips whose last contributor is behind entry q
            live = np.int64(0)
            for j in range(NS // NL):
                live |= np.int64(bits(iload(kmax, j * NL) > isplat(q))) << (j * NL)
            e = start + q
            mk = np.int64(smask[e]) & live
            if mk == 0:
                egrad[e, :] = 0.0
                continue
            k = lists[e]
            nv = _visit_terms(packed, k, mk, q, sxy, qv, lk, vb)
            a = packed[k, 2]
            b = packed[k, 3]
            c = packed[k, 4]
            op = packed[k, 5]
            cr = packed[k, 6]
            cgr = packed[k, 7]
            cb = packed[k, 8]
            A0 = splat(0.0)
            A1 = splat(0.0)
            A2 = splat(0.0)
            A3 = splat(0.0)
            A4 = splat(0.0)
            A5 = splat(0.0)
            A6 = splat(0.0)
            A7 = splat(0.0)
            A8 = splat(0.0)
            my = packed[k, 1]
            mm = mk
            for j in range(nv):  # the visits in strip order (the mask's bits again), through the strips' state
                s = trailing_zeros(mm)
                mm &= mm - 1
                v = VT * NL * j
                o = 6 * NL * s
                io = load(vb, v)
                T = load(st, o)
                S = load(st, o + NL)
                G0 = load(st, o + 2 * NL)
                G1 = load(st, o + 3 * NL)
                G2 = load(st, o + 4 * NL)
                Tn = T * io  # io is 1 where the entry does not reach: T, S unchanged, w 0
                store(st, o, Tn)
                w = load(vb, v + NL) * Tn
                cg = G0 * cr + G1 * cgr + G2 * cb
                # dC/dalpha_k = T_k c_k - (sum_{j>k} c_j alpha_j T_j + T_final bg) / (1 - alpha_k)
                da = Tn * cg - (S + load(st, o + 5 * NL)) * io
                store(st, o + NL, S + cg * w)
                # the mean's two sums as sums of dG ex dx and dG ex dy: the entry's conic (a, b, c) is applied
                # once, after the strips (backward 0.95x)
                dG = da * op
                dgx = dG * load(vb, v + 3 * NL)
                dgy = dG * load(vb, v + 4 * NL)
                dx = load(vb, v + 5 * NL)
                dy = my - sxy[NS + s]
                A0 = A0 + dgx
                A1 = A1 + dgy
                A2 = A2 + dgx * dx
                A3 = A3 + dgx * dy
                A4 = A4 + dgy * dy
                A5 = A5 + load(vb, v + 2 * NL) * da
                A6 = A6 + w * G0
                A7 = A7 + w * G1
                A8 = A8 + w * G2
            # the nine sums: eight in one transposed reduction (-0.5 and -1: exact scalings, the same sums)
            sums = hsum8(A0, A1, A2 * np.float32(-0.5), -A3, A4 * np.float32(-0.5), A5, A6, A7)
            store8_row(egrad, e, sums)
            egrad[e, 8] = hsum(A8)
            P = lane(sums, 0)  # the sums of dG ex dx and dG ex dy -> d mean x, y (over lanes 0 and 1 as stored)
            Q = lane(sums, 1)
            egrad[e, 0] = -a * P - b * Q
            egrad[e, 1] = -c * Q - b * P


_PERM_CACHE = {}


def _tile_perm(ntiles):
    p = _PERM_CACHE.get(ntiles)
    if p is None:
        # interleave tiles so that the static chunks numba hands to each thread carry similar load
        p = np.random.RandomState(12345).permutation(ntiles).astype(np.int64)
        _PERM_CACHE[ntiles] = p
    return p


@contextlib.contextmanager
def parallel_chunks(size):
    """Iterations numba hands a thread at a time inside the block (dynamic scheduling), restored after it."""
    prev = numba.set_parallel_chunksize(size)
    try:
        yield
    finally:
        numba.set_parallel_chunksize(prev)


def set_threads(n):
    """Threads for the kernels and torch (at most numba's pool), and the heap tuned for per-iteration arrays."""
    keep_freed_memory()
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    import torch

    torch.set_num_threads(n)
    return n


def keep_freed_memory():
    """Let glibc's malloc reuse the memory of freed large arrays instead of returning it to the system.

    Every iteration allocates and frees arrays of megabytes (images, tile lists, gradients); by default glibc
    maps each one afresh and unmaps it when freed, so every iteration pays a page fault per 4 KiB touched
    (a fifth of the kernels' time at 100k Gaussians, see NOTES).  With the mmap threshold at its ceiling and
    trimming off, freed arrays stay in the heap for the next iteration: peak memory is unchanged (the same arrays
    are alive at once), the process keeps what it once used until it exits.  No-op where glibc is absent."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
    return bool(ok and libc.mallopt(m_trim_threshold, 1 << 30))
