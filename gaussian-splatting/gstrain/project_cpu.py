"""The per-Gaussian half of the CPU renderer, compiled with numba: projection, SH colour and pixel box forward
(`_prepare`), and the backward that turns a Gaussian's summed rasteriser gradients into its parameters'
gradients (`_param_grads`).  One pass over the Gaussians each way: no intermediate (N, k) arrays between
projection, colour, box and rasteriser, and no autograd graph between them (gstrain/render_cpu.py wraps the
two kernels and the rasteriser in one autograd Function).

Same maths as rasterize.preprocess's PyTorch path (which the `reference` backend uses and the tests compare
against): p = V m; EWA Jacobian with the 1.3x frustum clamp; cov2d = (J R Rq S)(J R Rq S)^T + 0.3 I; conic =
inverse(cov2d) stored as (a, b, c) with power = -0.5 (a dx^2 + c dy^2) - b dx dy; colour = max(SH(dir) + 0.5, 0).
All of it in float32, as the reference's and gsplat's, NL Gaussians at a time (one a lane of gstrain/simd.py's
vectors: 16 with AVX-512), except where a Gaussian's row of SH coefficients is read: that is a loop over the
lanes, reading each row in order (gathering coefficient k of 16 Gaussians touched 16 cache lines per k).
"""
import numpy as np
from numba import njit, prange

from .simd import (
    NL,
    bits,
    isplat,
    lane,
    load,
    mask_bits,
    prefetch_row,
    select,
    splat,
    store,
    vmax,
    vmin,
)
from .simd_math import (
    to_int,
    vabs,
    vceil,
    vexp,
    vfloor,
    vfma,
    vlog,
    vsqrt,
)
from .simd_rows import (
    gather,
    iscatter,
    row_load,
    row_store,
    scatter,
    transpose_in,
    transpose_out,
)

NEAR_PLANE = 0.2
LOWPASS = 0.3
PREFETCH_AHEAD = 8  # rows read in a scattered order: prefetched this many reads ahead
CHUNK = 1024  # Gaussians a call of the per-chunk kernels (a multiple of NL)
NF = 10  # a row of `pre`: mx my a b c opacity r g b log-threshold (raster_cpu's packed row)
ROW = (NF + NL - 1) // NL * NL  # a packed row in whole vectors: the row stride of `pre` and the tile rows (16)
_SH_COLS = (45 + NL - 1) // NL * NL  # a Gaussian's SH coefficients past band 0 (degree 3), in whole vectors


# ----------------------------------------------------------------------------- SH -> RGB
_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2_0 = 1.0925484305920792
_C2_1 = -1.0925484305920792
_C2_2 = 0.31539156525252005
_C2_3 = -1.0925484305920792
_C2_4 = 0.5462742152960396
_C3_0 = -0.5900435899266435
_C3_1 = 2.890611442640554
_C3_2 = -0.4570457994644658
_C3_3 = 0.3731763325901154
_C3_4 = -0.4570457994644658
_C3_5 = 1.445305721320277
_C3_6 = -0.5900435899266435


# ----------------------------------------------------------------------------- lanes: NL Gaussians at a time
# The kernels' bodies run per chunk of CHUNK Gaussians in functions compiled on their own: numba's parfor
# analysis cannot follow tuples of vectors inside a prange loop.  Lanes past the array's end and the lanes of
# culled Gaussians compute on stand-in values (z = 1, det = 1) so that every lane's maths stays finite: the
# vector ops carry fast-math flags, and the masks decide what is kept.
@njit(inline="always")
def _gather3(a, i0, cnt):
    """The 3 columns of rows i0..i0+NL-1 of a flattened (N, 3) float32 array, as vectors (0 past row i0+cnt-1)."""
    return gather(a, i0 * 3, 3, cnt), gather(a, i0 * 3 + 1, 3, cnt), gather(a, i0 * 3 + 2, 3, cnt)


@njit(inline="always")
def _gather4(a, i0, cnt):
    return (gather(a, i0 * 4, 4, cnt), gather(a, i0 * 4 + 1, 4, cnt), gather(a, i0 * 4 + 2, 4, cnt),
            gather(a, i0 * 4 + 3, 4, cnt))


@njit(inline="always")
def _det2(a, b, c):
    """a c - b b with one rounding's error (Kahan's difference of products: the conic's and the covariance's
    determinants cancel for long thin Gaussians)."""
    w = b * b
    return vfma(a, c, -w) + vfma(-b, b, w)


@njit(inline="always")
def _rot_v(qw, qx, qy, qz):
    """Lanes' normalised quaternion rotation matrices (9 vectors, row-major), norms and unit components."""
    n = vsqrt(vmax(qw * qw + qx * qx + qy * qy + qz * qz, 1e-30))
    inv = 1.0 / n
    w = qw * inv
    x = qx * inv
    y = qy * inv
    z = qz * inv
    R = (1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - w * z), 2.0 * (x * z + w * y),
         2.0 * (x * y + w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - w * x),
         2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y))
    return R, n, w, x, y, z


@njit(inline="always")
def _tm_v(Vt, x, y, z, fx, fy, lt, R, s0, s1, s2):
    """The EWA Jacobian J (with the 1.3x frustum clamp) and TM = J V[:3, :3] Rq diag(s) on lanes (cov2d = TM TM^T +
    0.3 I): TM's two rows, T = J V[:3, :3]'s two rows, 1/z and the clamped x/z and y/z (z past the near plane)."""
    iz = 1.0 / z
    txtz = vmin(vmax(x * iz, lt[0]), lt[1])
    tytz = vmin(vmax(y * iz, lt[2]), lt[3])
    J00 = fx * iz
    J02 = -fx * txtz * iz
    J11 = fy * iz
    J12 = -fy * tytz * iz
    T00 = J00 * Vt[0] + J02 * Vt[8]
    T01 = J00 * Vt[1] + J02 * Vt[9]
    T02 = J00 * Vt[2] + J02 * Vt[10]
    T10 = J11 * Vt[4] + J12 * Vt[8]
    T11 = J11 * Vt[5] + J12 * Vt[9]
    T12 = J11 * Vt[6] + J12 * Vt[10]
    M0 = (T00 * R[0] + T01 * R[3] + T02 * R[6]) * s0
    M1 = (T00 * R[1] + T01 * R[4] + T02 * R[7]) * s1
    M2 = (T00 * R[2] + T01 * R[5] + T02 * R[8]) * s2
    N0 = (T10 * R[0] + T11 * R[3] + T12 * R[6]) * s0
    N1 = (T10 * R[1] + T11 * R[4] + T12 * R[7]) * s1
    N2 = (T10 * R[2] + T11 * R[5] + T12 * R[8]) * s2
    return (M0, M1, M2), (N0, N1, N2), (T00, T01, T02), (T10, T11, T12), iz, txtz, tytz


@njit(inline="always")
def _sh_dir_v(mx, my, mz, ct):
    dx = mx - ct[0]
    dy = my - ct[1]
    dz = mz - ct[2]
    ln = vmax(vsqrt(dx * dx + dy * dy + dz * dz), 1e-12)
    il = 1.0 / ln
    return dx * il, dy * il, dz * il, ln


@njit(inline="always")
def _sh_basis_v(x, y, z):
    """The SH basis values 1..15 on lanes (reference ordering; the constant band 0 is _C0)."""
    xx = x * x
    yy = y * y
    zz = z * z
    return (y * -_C1, z * _C1, x * -_C1,
            x * y * _C2_0, y * z * _C2_1, (2.0 * zz - xx - yy) * _C2_2, x * z * _C2_3, (xx - yy) * _C2_4,
            y * (3.0 * xx - yy) * _C3_0, x * y * z * _C3_1, y * (4.0 * zz - xx - yy) * _C3_2,
            z * (2.0 * zz - 3.0 * xx - 3.0 * yy) * _C3_3, x * (4.0 * zz - xx - yy) * _C3_4, z * (xx - yy) * _C3_5,
            x * (xx - 3.0 * yy) * _C3_6)


@njit(inline="always")
def _box_v(u, v, ca, cb, cc, o255, lo, Wm, Hm):
    """The pixel boxes where alpha >= 1/255 is possible, from the float32 values the rasteriser reads (2D mean,
    conic, 255 x opacity, lo = log(255 o)), inside the image (last column Wm, last row Hm): whether a lane's box
    is not empty, and x0 x1 y0 y1 (whole numbers).  The ellipse power >= -lo spans +-sqrt(2 lo cc / det) in x and
    +-sqrt(2 lo ca / det) in y (det: the conic's); the margins cover float32 rounding, and rounding u -+ h can
    only widen the box (whole numbers are exact).  So every pixel the kernels' alpha test accepts lies inside,
    and the kernels test no box per pixel (raster_cpu._strip_ok).  The box is not clipped to the 3-sigma square:
    a Gaussian the culling keeps touches exactly the pixels of its alpha test (its ellipse reaches at most
    sqrt(2 log 255) = 3.33 sigma, for opacity 1)."""
    detc = _det2(ca, cb, cc)
    ok = (o255 >= 1.0) & (detc > 0.0) & (vabs(u) < 1e7) & (vabs(v) < 1e7)
    idc = 1.0 / select(ok, detc, 1.0)
    t = lo * 2.0
    hx = vsqrt(vmax(t * cc * idc, 0.0)) * 1.0001 + 1e-3
    hy = vsqrt(vmax(t * ca * idc, 0.0)) * 1.0001 + 1e-3
    x0 = vmax(vceil(u - hx), 0.0)
    x1 = vmin(vfloor(u + hx), Wm)
    y0 = vmax(vceil(v - hy), 0.0)
    y1 = vmin(vfloor(v + hy), Hm)
    return ok & (x0 <= x1) & (y0 <= y1), x0, x1, y0, y1


@njit(inline="always")
def _view_v(mx, my, mz, Vt):
    """Lanes' camera-space points."""
    return (mx * Vt[0] + my * Vt[1] + mz * Vt[2] + Vt[3], mx * Vt[4] + my * Vt[5] + mz * Vt[6] + Vt[7],
            mx * Vt[8] + my * Vt[9] + mz * Vt[10] + Vt[11])


@njit(inline="always")
def _projection_v(x, y, z, l0, l1, l2, qw, qx, qy, qz, Vt, fx, fy, lt):
    """The projection both passes compute (the backward recomputes the forward's float32 values): the rotation
    (R, the quaternion's norm and unit components), the scales, _tm_v's values and the 2D covariance (a, b, c)
    with the low-pass."""
    R, qn, w, ux, uy, uz = _rot_v(qw, qx, qy, qz)
    s0 = vexp(l0)
    s1 = vexp(l1)
    s2 = vexp(l2)
    TM0, TM1, T0, T1, iz, txtz, tytz = _tm_v(Vt, x, y, z, fx, fy, lt, R, s0, s1, s2)
    a = TM0[0] * TM0[0] + TM0[1] * TM0[1] + TM0[2] * TM0[2] + LOWPASS
    b = TM0[0] * TM1[0] + TM0[1] * TM1[1] + TM0[2] * TM1[2]
    c = TM1[0] * TM1[0] + TM1[1] * TM1[1] + TM1[2] * TM1[2] + LOWPASS
    return (R, qn, w, ux, uy, uz), (s0, s1, s2), (TM0, TM1, T0, T1, iz, txtz, tytz), (a, b, c)


@njit(inline="always")
def _cov_v(mx, my, mz, lf, qf, i0, cnt, Vt, fx, fy, lt):
    """Lanes' camera-space point (z set to 1 where not past the near plane: `front`), 1/z and 2D covariance
    (a, b, c) with the low-pass."""
    x, y, z = _view_v(mx, my, mz, Vt)
    front = z > NEAR_PLANE
    z = select(front, z, 1.0)
    l0, l1, l2 = _gather3(lf, i0, cnt)
    qw, qx, qy, qz = _gather4(qf, i0, cnt)
    _, _, tm, abc = _projection_v(x, y, z, l0, l1, l2, qw, qx, qy, qz, Vt, fx, fy, lt)
    return x, y, z, front, tm[4], abc[0], abc[1], abc[2]


@njit(inline="always")
def _colour_v(mx, my, mz, ct, dcf, rf, i0, nr, cnt, K, rt):
    """Lanes' colour max(SH(direction) + 0.5, 0), per channel.  The SH coefficients' rows are turned into
    columns in rt (gathering a column across rows touched a cache line per row and column: slower than
    reading each row in order)."""
    c0, c1, c2 = _gather3(dcf, i0, cnt)
    c0 = c0 * _C0
    c1 = c1 * _C0
    c2 = c2 * _C0
    if K > 1:
        sx, sy, sz, _ = _sh_dir_v(mx, my, mz, ct)
        sb = _sh_basis_v(sx, sy, sz)
        nc = 3 * (K - 1)
        for col in range(0, nc, NL):
            transpose_in(rf, i0 * nr, nr, col, nc, cnt, rt, col * NL)
        for k in range(K - 1):
            c0 = c0 + sb[k] * load(rt, 3 * k * NL)
            c1 = c1 + sb[k] * load(rt, (3 * k + 1) * NL)
            c2 = c2 + sb[k] * load(rt, (3 * k + 2) * NL)
    return vmax(c0 + 0.5, 0.0), vmax(c1 + 0.5, 0.0), vmax(c2 + 0.5, 0.0)


@njit(cache=True)
def _prepare_chunk(g0, g1, n, mf, lf, qf, opac, dcf, rf, pf, rw, bf, depth, radii, visible, m2d, K, nr, Vt, lt, ct,
                   fx, fy, ox, oy, Wm, Hm):
    """_prepare on Gaussians g0..g1-1 (g0 a multiple of NL); pf: `pre` flat, rows of rw >= NF floats."""
    tb = np.zeros(ROW * NL, np.float32)  # the lanes' packed rows, column by column (transposed into pre; padding 0)
    rt = np.empty(_SH_COLS * NL, np.float32)  # the lanes' SH coefficients, column by column
    for i0 in range(g0, g1, NL):
        cnt = min(NL, n - i0)
        mx, my, mz = _gather3(mf, i0, cnt)
        x, y, z, front, iz, a, b, c = _cov_v(mx, my, mz, lf, qf, i0, cnt, Vt, fx, fy, lt)
        scatter(depth, i0, 1, z, cnt)
        det = _det2(a, b, c)
        u = select(front, x * iz * fx + ox, 0.0)
        v = select(front, y * iz * fy + oy, 0.0)
        ok = front & (det > 0.0)
        det = select(ok, det, 1.0)
        hd = (a - c) * 0.5  # mid^2 - det without its cancellation (or overflow)
        lam1 = (a + c) * 0.5 + vsqrt(vmax(hd * hd + b * b, 0.1))
        r = vmin(vceil(vsqrt(lam1) * 3.0), 1e9)
        ok = ok & (u + r >= 0.0) & (u - r <= Wm) & (v + r >= 0.0) & (v - r <= Hm) & (vabs(u) < 1e9) & (vabs(v) < 1e9)
        iscatter(radii, i0, 1, select(ok, to_int(r), isplat(0)), cnt)
        idet = 1.0 / det
        ca = c * idet
        cb = -b * idet
        cc = a * idet
        o = gather(opac, i0, 1, cnt)
        o255 = o * 255.0
        lo = vlog(vmax(o255, 1.0))  # log(255 o), 0 where 255 o < 1 (never visible): one log a Gaussian
        inbox, x0, x1, y0, y1 = _box_v(u, v, ca, cb, cc, o255, lo, Wm, Hm)
        ok = ok & inbox
        x0 = select(ok, x0, 1.0)
        x1 = select(ok, x1, 0.0)
        cr, cg, cl = _colour_v(mx, my, mz, ct, dcf, rf, i0, nr, cnt, K, rt)
        for j, col in enumerate((u, v, ca, cb, cc, o, cr, cg, cl, -lo)):  # -lo: alpha < 1/255 <=> power < -lo
            store(tb, j * NL, col)
        for col in range(0, rw, NL):
            transpose_out(tb, col * NL, pf, i0 * rw, rw, col, rw, cnt)
        okb = bits(ok)
        x0i = to_int(x0)
        x1i = to_int(x1)
        y0i = to_int(select(ok, y0, 1.0))
        y1i = to_int(select(ok, y1, 0.0))
        for la in range(cnt):
            i = i0 + la
            visible[i] = (okb >> la) & 1 != 0
            bf[4 * i] = lane(x0i, la)
            bf[4 * i + 1] = lane(x1i, la)
            bf[4 * i + 2] = lane(y0i, la)
            bf[4 * i + 3] = lane(y1i, la)
            m2d[i, 0] = lane(u, la)
            m2d[i, 1] = lane(v, la)


@njit(parallel=True, cache=True)
def _prepare(means, log_scales, quats, opac, dc, rest, deg, V, fx, fy, cx, cy, W, H, lim, cam, pre, box, depth,
             radii, visible, m2d):
    """Per Gaussian i: its packed rasteriser row pre[i] (NF float32: 2D mean in pixel-index coordinates,
    conic, opacity, colour, log alpha threshold), its pixel box (x0 x1 y0 y1: where alpha >= 1/255 is possible,
    inside the image), its depth, its 3-sigma radius (0: culled, behind the
    near plane, degenerate or off screen), whether its box is not empty (visible) and its 2D mean again in
    m2d (N, 2) (the render's `means2d`).  V (12,): the view matrix's first three rows; lim (4,): the frustum
    clamp; cam (3,): the camera centre.  The parameter arrays are C-contiguous float32; NL Gaussians at a time,
    one a lane, in float32 (as the reference's).

    The box and alpha threshold are computed from the float32 values the rasteriser reads (an entry must not
    reach a pixel the kernels' own test would refuse: see binning._ellipse).  Rows of the Gaussians that are
    not visible hold their 2D mean (0 behind the near plane) and otherwise unspecified values."""
    n = means.shape[0]
    K = (deg + 1) ** 2
    mf = means.reshape(-1)
    lf = log_scales.reshape(-1)
    qf = quats.reshape(-1)
    dcf = dc.reshape(-1)
    rf = rest.reshape(-1)
    pf = pre.reshape(-1)
    bf = box.reshape(-1)
    nr = rest.shape[1] * 3
    f = np.float32
    Vt = (f(V[0]), f(V[1]), f(V[2]), f(V[3]), f(V[4]), f(V[5]), f(V[6]), f(V[7]), f(V[8]), f(V[9]), f(V[10]),
          f(V[11]))
    lt = (f(lim[0]), f(lim[1]), f(lim[2]), f(lim[3]))
    ct = (f(cam[0]), f(cam[1]), f(cam[2]))
    fx32, fy32 = f(fx), f(fy)
    ox, oy = f(cx - 0.5), f(cy - 0.5)
    Wm, Hm = f(W - 1), f(H - 1)
    for ch in prange((n + CHUNK - 1) // CHUNK):
        _prepare_chunk(ch * CHUNK, min(n, (ch + 1) * CHUNK), n, mf, lf, qf, opac, dcf, rf, pf, pre.shape[1], bf, depth,
                       radii, visible, m2d, K, nr, Vt, lt, ct, fx32, fy32, ox, oy, Wm, Hm)


@njit(cache=True)
def _boxes(u, v, ca, cb, cc, o, W, H, box, lo, visible):
    """_prepare's pixel boxes (box (N, 4) int32), log(255 o) and box-not-empty for 2D Gaussians given by their
    float32 rasteriser values (for tests of the culling on chosen 2D shapes)."""
    n = u.shape[0]
    bf = box.reshape(-1)
    for i0 in range(0, n, NL):
        cnt = min(NL, n - i0)
        o255 = gather(o, i0, 1, cnt) * 255.0
        lov = vlog(vmax(o255, 1.0))
        ok, x0, x1, y0, y1 = _box_v(gather(u, i0, 1, cnt), gather(v, i0, 1, cnt), gather(ca, i0, 1, cnt),
                                    gather(cb, i0, 1, cnt), gather(cc, i0, 1, cnt), o255, lov, np.float32(W - 1),
                                    np.float32(H - 1))
        scatter(lo, i0, 1, lov, cnt)
        iscatter(bf, i0 * 4, 4, to_int(x0), cnt)
        iscatter(bf, i0 * 4 + 1, 4, to_int(x1), cnt)
        iscatter(bf, i0 * 4 + 2, 4, to_int(y0), cnt)
        iscatter(bf, i0 * 4 + 3, 4, to_int(y1), cnt)
        okb = bits(ok)
        for la in range(cnt):
            visible[i0 + la] = (okb >> la) & 1 != 0


@njit(parallel=True, cache=True)
def _gather_rows(order, pre, box):
    """The visible Gaussians' rows in depth order: gp (n, pre's row width) and gb (n, 4) (the tile lists index
    these)."""
    n = order.shape[0]
    rw = pre.shape[1]
    gp = np.empty((n, rw), np.float32)
    gb = np.empty((n, 4), np.int32)
    for k in prange(n):
        if k + PREFETCH_AHEAD < n:
            prefetch_row(pre, order[k + PREFETCH_AHEAD])
        g = order[k]
        for col in range(0, rw, NL):  # a packed row is one vector (two with 8 lanes)
            row_store(gp, k, col, row_load(pre, g, col))
        for j in range(4):
            gb[k, j] = box[g, j]
    return gp, gb


# ----------------------------------------------------------------------------- backward
@njit(parallel=True, cache=True)
def _entry_sums(koff, where, egrad, order, gp, n):
    """(n, 9) per Gaussian (in the caller's order): its tile entries' 9 gradients summed, in tile order (the same
    sums whatever the thread count), with a colour channel clamped at 0 given no gradient.  Rows of the
    Gaussians the image does not see are left unwritten.  In depth order, where each Gaussian's entries are
    found: the per-Gaussian pass that follows then reads its row here and its parameters in order (visiting
    Gaussians in their own order and looking up their entries cost a cache miss per lookup, twice the time).
    An entry's row is one vector (two with 8 lanes)."""
    out = np.empty((n, 9), np.float32)
    ne = where.shape[0]
    for k in prange(order.shape[0]):
        a = splat(0.0)
        b = splat(0.0)
        for e in range(koff[k], koff[k + 1]):
            if e + PREFETCH_AHEAD < ne:
                prefetch_row(egrad, where[e + PREFETCH_AHEAD])
            p = where[e]
            a = a + row_load(egrad, p, 0)
            if NL < 9:
                b = b + row_load(egrad, p, NL)
        g = order[k]
        for j in range(min(NL, 6)):
            out[g, j] = lane(a, j)
        for j in range(6, min(NL, 9)):
            out[g, j] = lane(a, j) if gp[k, j] > 0 else np.float32(0.0)
        for j in range(NL, 9):
            out[g, j] = lane(b, j - NL) if gp[k, j] > 0 else np.float32(0.0)
    return out


@njit(inline="always")
def _ld(buf, k):
    return load(buf, k * NL)


@njit(inline="always")
def _sh_dir_grad(gbb, K, x, y, z):
    """d loss / d (unit direction) on lanes, from d loss / d basis value k at row k - 1 of gbb, through the
    basis' partial derivatives (_sh_basis_v's, the zero ones left out)."""
    gdx = splat(0.0)
    gdy = splat(0.0)
    gdz = splat(0.0)
    if K > 1:
        g0, g1, g2 = _ld(gbb, 0), _ld(gbb, 1), _ld(gbb, 2)
        gdx = g2 * -_C1
        gdy = g0 * -_C1
        gdz = g1 * _C1
    if K > 4:
        g3, g4, g5, g6, g7 = _ld(gbb, 3), _ld(gbb, 4), _ld(gbb, 5), _ld(gbb, 6), _ld(gbb, 7)
        gdx = gdx + g3 * (y * _C2_0) + g5 * (x * (-2.0 * _C2_2)) + g6 * (z * _C2_3) + g7 * (x * (2.0 * _C2_4))
        gdy = gdy + g3 * (x * _C2_0) + g4 * (z * _C2_1) + g5 * (y * (-2.0 * _C2_2)) + g7 * (y * (-2.0 * _C2_4))
        gdz = gdz + g4 * (y * _C2_1) + g5 * (z * (4.0 * _C2_2)) + g6 * (x * _C2_3)
    if K > 9:
        g8, g9, g10, g11 = _ld(gbb, 8), _ld(gbb, 9), _ld(gbb, 10), _ld(gbb, 11)
        g12, g13, g14 = _ld(gbb, 12), _ld(gbb, 13), _ld(gbb, 14)
        xx = x * x
        yy = y * y
        zz = z * z
        xy = x * y
        xz = x * z
        yz = y * z
        gdx = (gdx + g8 * (xy * (6.0 * _C3_0)) + g9 * (yz * _C3_1) + g10 * (xy * (-2.0 * _C3_2))
               + g11 * (xz * (-6.0 * _C3_3)) + g12 * ((4.0 * zz - 3.0 * xx - yy) * _C3_4) + g13 * (xz * (2.0 * _C3_5))
               + g14 * ((3.0 * xx - 3.0 * yy) * _C3_6))
        gdy = (gdy + g8 * ((3.0 * xx - 3.0 * yy) * _C3_0) + g9 * (xz * _C3_1) + g10 * ((4.0 * zz - xx - 3.0 * yy) * _C3_2)
               + g11 * (yz * (-6.0 * _C3_3)) + g12 * (xy * (-2.0 * _C3_4)) + g13 * (yz * (-2.0 * _C3_5))
               + g14 * (xy * (-6.0 * _C3_6)))
        gdz = (gdz + g9 * (xy * _C3_1) + g10 * (yz * (8.0 * _C3_2)) + g11 * ((6.0 * zz - 3.0 * xx - 3.0 * yy) * _C3_3)
               + g12 * (xz * (8.0 * _C3_4)) + g13 * ((xx - yy) * _C3_5))
    return gdx, gdy, gdz


@njit(inline="always")
def _cov_bwd_v(TM0, TM1, T0, T1, R, s0, s1, s2, qn, w, qx, qy, qz, a, b, c, vis, gA, gB, gC):
    """Lanes' d loss / d (log-scales, quaternion) and d loss / d T (T = J V[:3, :3], two rows) from the conic's
    gradient (gA, gB, gC), through the 2D covariance TM TM^T + 0.3 I (TM = T Rq diag(s))."""
    iD = 1.0 / select(vis, _det2(a, b, c), 1.0)
    iD2 = iD * iD
    ga = (gB * b * c - gA * c * c - gC * b * b) * iD2
    gb = (gA * 2.0 * b * c - gB * 2.0 * b * b + gC * 2.0 * a * b) * iD2 - gB * iD
    gc = (gB * a * b - gA * b * b - gC * a * a) * iD2
    # d cov / d TM; TM = T M with M = Rq diag(s): gT = gTM M^T, gM = T^T gTM
    gTM00 = ga * 2.0 * TM0[0] + gb * TM1[0]
    gTM01 = ga * 2.0 * TM0[1] + gb * TM1[1]
    gTM02 = ga * 2.0 * TM0[2] + gb * TM1[2]
    gTM10 = gb * TM0[0] + gc * 2.0 * TM1[0]
    gTM11 = gb * TM0[1] + gc * 2.0 * TM1[1]
    gTM12 = gb * TM0[2] + gc * 2.0 * TM1[2]
    gT00 = gTM00 * R[0] * s0 + gTM01 * R[1] * s1 + gTM02 * R[2] * s2
    gT10 = gTM10 * R[0] * s0 + gTM11 * R[1] * s1 + gTM12 * R[2] * s2
    gT01 = gTM00 * R[3] * s0 + gTM01 * R[4] * s1 + gTM02 * R[5] * s2
    gT11 = gTM10 * R[3] * s0 + gTM11 * R[4] * s1 + gTM12 * R[5] * s2
    gT02 = gTM00 * R[6] * s0 + gTM01 * R[7] * s1 + gTM02 * R[8] * s2
    gT12 = gTM10 * R[6] * s0 + gTM11 * R[7] * s1 + gTM12 * R[8] * s2
    m00 = T0[0] * gTM00 + T1[0] * gTM10
    m01 = T0[0] * gTM01 + T1[0] * gTM11
    m02 = T0[0] * gTM02 + T1[0] * gTM12
    m10 = T0[1] * gTM00 + T1[1] * gTM10
    m11 = T0[1] * gTM01 + T1[1] * gTM11
    m12 = T0[1] * gTM02 + T1[1] * gTM12
    m20 = T0[2] * gTM00 + T1[2] * gTM10
    m21 = T0[2] * gTM01 + T1[2] * gTM11
    m22 = T0[2] * gTM02 + T1[2] * gTM12
    gl0 = (m00 * R[0] + m10 * R[3] + m20 * R[6]) * s0  # d / d log-scale
    gl1 = (m01 * R[1] + m11 * R[4] + m21 * R[7]) * s1
    gl2 = (m02 * R[2] + m12 * R[5] + m22 * R[8]) * s2
    G0, G1, G2 = m00 * s0, m01 * s1, m02 * s2  # d / d Rq
    G3, G4, G5 = m10 * s0, m11 * s1, m12 * s2
    G6, G7, G8 = m20 * s0, m21 * s1, m22 * s2
    gw = (qy * G2 - qz * G1 + qz * G3 - qx * G5 - qy * G6 + qx * G7) * 2.0
    gx = (qy * G1 + qz * G2 + qy * G3 - qx * G4 * 2.0 - w * G5 + qz * G6 + w * G7 - qx * G8 * 2.0) * 2.0
    gy = (qx * G1 - qy * G0 * 2.0 + w * G2 + qx * G3 + qz * G5 - w * G6 + qz * G7 - qy * G8 * 2.0) * 2.0
    gz = (qx * G2 - qz * G0 * 2.0 - w * G1 + w * G3 - qz * G4 * 2.0 + qy * G5 + qx * G6 + qy * G7) * 2.0
    dot = w * gw + qx * gx + qy * gy + qz * gz
    iq = 1.0 / qn
    gq = ((gw - w * dot) * iq, (gx - qx * dot) * iq, (gy - qy * dot) * iq, (gz - qz * dot) * iq)
    return (gl0, gl1, gl2), gq, (gT00, gT01, gT02, gT10, gT11, gT12)


@njit(inline="always")
def _project_bwd_v(mx, my, mz, l0, l1, l2, qw0, qx0, qy0, qz0, vis, Vt, fx, fy, lt, gu, gv, gA, gB, gC):
    """Lanes' d loss / d (mean, log-scales, quaternion) through the 2D mean (gu, gv) and conic (gA, gB, gC): the
    forward's float32 maths again (_prepare), z set to 1 where not visible.  The SH colour adds its own
    gradient to the mean."""
    x, y, z = _view_v(mx, my, mz, Vt)
    z = select(vis, z, 1.0)
    rot, sc, tm, abc = _projection_v(x, y, z, l0, l1, l2, qw0, qx0, qy0, qz0, Vt, fx, fy, lt)
    R, qn, w, qx, qy, qz = rot
    s0, s1, s2 = sc
    TM0, TM1, T0, T1, iz, txtz, tytz = tm
    a, b, c = abc
    rx = x * iz
    ry = y * iz
    clx = (rx < lt[0]) | (rx > lt[1])
    cly = (ry < lt[2]) | (ry > lt[3])
    gl, gq, gT = _cov_bwd_v(TM0, TM1, T0, T1, R, s0, s1, s2, qn, w, qx, qy, qz, a, b, c, vis, gA, gB, gC)
    gT00, gT01, gT02, gT10, gT11, gT12 = gT
    # T = J Rv: gJ = gT Rv^T (only the non-zero entries of J)
    gJ00 = gT00 * Vt[0] + gT01 * Vt[1] + gT02 * Vt[2]
    gJ02 = gT00 * Vt[8] + gT01 * Vt[9] + gT02 * Vt[10]
    gJ11 = gT10 * Vt[4] + gT11 * Vt[5] + gT12 * Vt[6]
    gJ12 = gT10 * Vt[8] + gT11 * Vt[9] + gT12 * Vt[10]
    iz2 = iz * iz
    gpx = select(clx, 0.0, -gJ02 * fx * iz2) + gu * fx * iz
    gpy = select(cly, 0.0, -gJ12 * fy * iz2) + gv * fy * iz
    gpz = (select(clx, gJ02 * fx * txtz * iz2, gJ02 * 2.0 * fx * x * iz2 * iz)
           + select(cly, gJ12 * fy * tytz * iz2, gJ12 * 2.0 * fy * y * iz2 * iz)
           - gJ00 * fx * iz2 - gJ11 * fy * iz2 - gu * fx * x * iz2 - gv * fy * y * iz2)
    gm0 = gpx * Vt[0] + gpy * Vt[4] + gpz * Vt[8]
    gm1 = gpx * Vt[1] + gpy * Vt[5] + gpz * Vt[9]
    gm2 = gpx * Vt[2] + gpy * Vt[6] + gpz * Vt[10]
    return (gm0, gm1, gm2), gl, gq


@njit(inline="always")
def _sh_bwd_lanes(i0, cnt, vb, K, sf, rest, bb, buf, gbb, gls, gq, gop, gdc, grest, g2d, gmeans):
    """Lane by lane (bit la of vb: visible): the SH colour's backward, reading and writing each Gaussian's rows
    of rest and grest in order from the lanes' basis values (bb), d loss / d basis value into gbb, and the
    per-Gaussian outputs but the means' (buf: log-scale and quaternion gradients, value by value)."""
    for la in range(cnt):
        i = i0 + la
        if not (vb >> la) & 1:
            _zero_row(i, K, gmeans, gls, gq, gop, gdc, grest, g2d)
            for k in range(K - 1):
                gbb[k * NL + la] = 0.0
            continue
        g2d[i, 0] = sf[i * 9]
        g2d[i, 1] = sf[i * 9 + 1]
        gop[i] = sf[i * 9 + 5]
        for j in range(3):
            gls[i, j] = buf[j * NL + la]
        for j in range(4):
            gq[i, j] = buf[(3 + j) * NL + la]
        c0 = sf[i * 9 + 6]
        c1 = sf[i * 9 + 7]
        c2 = sf[i * 9 + 8]
        gdc[i, 0, 0] = np.float32(_C0) * c0
        gdc[i, 0, 1] = np.float32(_C0) * c1
        gdc[i, 0, 2] = np.float32(_C0) * c2
        for k in range(K - 1):
            bk = bb[k * NL + la]
            grest[i, k, 0] = bk * c0
            grest[i, k, 1] = bk * c1
            grest[i, k, 2] = bk * c2
            gbb[k * NL + la] = rest[i, k, 0] * c0 + rest[i, k, 1] * c1 + rest[i, k, 2] * c2


@njit(cache=True)
def _param_grads_chunk(g0, g1, n, visible, sf, mf, lf, qf, rest, K, Vt, lt, ct, fx, fy, gmeans, gls, gq, gop, gdc,
                       grest, g2d):
    """_param_grads on Gaussians g0..g1-1 (g0 a multiple of NL), NL at a time."""
    buf = np.empty(8 * NL, np.float32)  # the lanes' log-scale and quaternion gradients
    bb = np.empty(15 * NL, np.float32)  # the lanes' SH basis values, band by band
    gbb = np.empty(15 * NL, np.float32)  # d loss / d basis value, band by band
    gmf = gmeans.reshape(-1)
    for i0 in range(g0, g1, NL):
        cnt = min(NL, n - i0)
        vb = 0
        for la in range(cnt):
            if visible[i0 + la]:
                vb |= 1 << la
        if vb == 0:
            for la in range(cnt):
                _zero_row(i0 + la, K, gmeans, gls, gq, gop, gdc, grest, g2d)
            continue
        vis = mask_bits(vb)
        mx, my, mz = _gather3(mf, i0, cnt)
        l0, l1, l2 = _gather3(lf, i0, cnt)
        qw0, qx0, qy0, qz0 = _gather4(qf, i0, cnt)
        gu = select(vis, gather(sf, i0 * 9, 9, cnt), 0.0)  # unwritten rows (not visible) may hold anything
        gv = select(vis, gather(sf, i0 * 9 + 1, 9, cnt), 0.0)
        gA = select(vis, gather(sf, i0 * 9 + 2, 9, cnt), 0.0)
        gB = select(vis, gather(sf, i0 * 9 + 3, 9, cnt), 0.0)
        gC = select(vis, gather(sf, i0 * 9 + 4, 9, cnt), 0.0)
        pm, pl, pq = _project_bwd_v(mx, my, mz, l0, l1, l2, qw0, qx0, qy0, qz0, vis, Vt, fx, fy, lt, gu, gv, gA, gB,
                                    gC)
        for j in range(3):
            store(buf, j * NL, pl[j])
        for j in range(4):
            store(buf, (3 + j) * NL, pq[j])
        # the SH colour's backward, Gaussian by Gaussian (rows of rest and grest in order), from the lanes' basis
        sx, sy, sz, ln = _sh_dir_v(mx, my, mz, ct)
        if K > 1:
            sb = _sh_basis_v(sx, sy, sz)
            for k in range(15):
                store(bb, k * NL, sb[k])
        _sh_bwd_lanes(i0, cnt, vb, K, sf, rest, bb, buf, gbb, gls, gq, gop, gdc, grest, g2d, gmeans)
        gdx, gdy, gdz = _sh_dir_grad(gbb, K, sx, sy, sz)
        dd = sx * gdx + sy * gdy + sz * gdz
        il = 1.0 / ln
        vz = splat(0.0)
        scatter(gmf, i0 * 3, 3, select(vis, pm[0] + (gdx - sx * dd) * il, vz), cnt)
        scatter(gmf, i0 * 3 + 1, 3, select(vis, pm[1] + (gdy - sy * dd) * il, vz), cnt)
        scatter(gmf, i0 * 3 + 2, 3, select(vis, pm[2] + (gdz - sz * dd) * il, vz), cnt)


@njit(inline="always")
def _zero_row(i, K, gmeans, gls, gq, gop, gdc, grest, g2d):
    for j in range(3):
        gmeans[i, j] = 0.0
        gls[i, j] = 0.0
        gdc[i, 0, j] = 0.0
    for j in range(4):
        gq[i, j] = 0.0
    for r in range(K - 1):
        for j in range(3):
            grest[i, r, j] = 0.0
    gop[i] = 0.0
    g2d[i, 0] = 0.0
    g2d[i, 1] = 0.0


@njit(parallel=True, cache=True)
def _param_grads(visible, sums, means, log_scales, quats, rest, deg, V, fx, fy, lim, cam, gmeans, gls, gq, gop, gdc,
                 grest, g2d):
    """Per Gaussian i: its summed rasteriser gradients sums[i] (_entry_sums; read only where visible[i]) through
    the projection and the SH colour to its parameters.  Every row of the outputs is written (zero for the
    Gaussians the image does not see), grest only in its first (deg + 1)^2 - 1 rows (the caller zeroes the
    rest).  g2d: d loss / d 2D mean (the densification statistic).  Arrays C-contiguous float32; NL Gaussians at
    a time, one a lane, in float32 as the forward."""
    n = means.shape[0]
    K = (deg + 1) ** 2
    f = np.float32
    Vt = (f(V[0]), f(V[1]), f(V[2]), f(V[3]), f(V[4]), f(V[5]), f(V[6]), f(V[7]), f(V[8]), f(V[9]), f(V[10]),
          f(V[11]))
    lt = (f(lim[0]), f(lim[1]), f(lim[2]), f(lim[3]))
    ct = (f(cam[0]), f(cam[1]), f(cam[2]))
    sf = sums.reshape(-1)
    mf = means.reshape(-1)
    lf = log_scales.reshape(-1)
    qf = quats.reshape(-1)
    for ch in prange((n + CHUNK - 1) // CHUNK):
        _param_grads_chunk(ch * CHUNK, min(n, (ch + 1) * CHUNK), n, visible, sf, mf, lf, qf, rest, K, Vt, lt, ct,
                           f(fx), f(fy), gmeans, gls, gq, gop, gdc, grest, g2d)
