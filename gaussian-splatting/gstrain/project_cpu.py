"""Numba projection step (means -> 2D means, EWA conic, depth, radius) with a hand-written backward.

Same maths as rasterize.preprocess's PyTorch path (which the `reference` backend uses, and which the tests
compare against): p = R m + t; EWA Jacobian with the 1.3x frustum clamp; cov2d = (J R Rq S)(J R Rq S)^T + 0.3 I;
conic = inverse(cov2d) stored as (a, b, c) with power = -0.5 (a dx^2 + c dy^2) - b dx dy.
"""
import math

import numpy as np
import torch
from numba import njit, prange

NEAR_PLANE = 0.2
LOWPASS = 0.3


@njit(inline="always")
def _quat_rot(qw, qx, qy, qz):
    n = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
    w = qw / n
    x = qx / n
    y = qy / n
    z = qz / n
    R = np.empty((3, 3))
    R[0, 0] = 1 - 2 * (y * y + z * z)
    R[0, 1] = 2 * (x * y - w * z)
    R[0, 2] = 2 * (x * z + w * y)
    R[1, 0] = 2 * (x * y + w * z)
    R[1, 1] = 1 - 2 * (x * x + z * z)
    R[1, 2] = 2 * (y * z - w * x)
    R[2, 0] = 2 * (x * z - w * y)
    R[2, 1] = 2 * (y * z + w * x)
    R[2, 2] = 1 - 2 * (x * x + y * y)
    return R, n, w, x, y, z


@njit(parallel=True, cache=True)
def _project_fwd(means, log_scales, quats, V, fx, fy, cx, cy, W, H, lim, out2d, conic, depth, radii, TMs):
    N = means.shape[0]
    for i in prange(N):
        mxw = means[i, 0]
        myw = means[i, 1]
        mzw = means[i, 2]
        x = V[0, 0] * mxw + V[0, 1] * myw + V[0, 2] * mzw + V[0, 3]
        y = V[1, 0] * mxw + V[1, 1] * myw + V[1, 2] * mzw + V[1, 3]
        z = V[2, 0] * mxw + V[2, 1] * myw + V[2, 2] * mzw + V[2, 3]
        depth[i] = z if z > NEAR_PLANE else 1.0
        radii[i] = 0
        if not (z > NEAR_PLANE):
            out2d[i, 0] = 0.0
            out2d[i, 1] = 0.0
            conic[i, 0] = 0.0
            conic[i, 1] = 0.0
            conic[i, 2] = 0.0
            continue
        iz = 1.0 / z
        txtz = min(max(x * iz, lim[0]), lim[1])
        tytz = min(max(y * iz, lim[2]), lim[3])
        J00 = fx * iz
        J02 = -fx * txtz * iz
        J11 = fy * iz
        J12 = -fy * tytz * iz
        Rq, _, _, _, _, _ = _quat_rot(quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3])
        s0 = math.exp(log_scales[i, 0])
        s1 = math.exp(log_scales[i, 1])
        s2 = math.exp(log_scales[i, 2])
        # T = J V[:3,:3]; TM = T Rq diag(s)
        T0 = np.empty(3)
        T1 = np.empty(3)
        for k in range(3):
            T0[k] = J00 * V[0, k] + J02 * V[2, k]
            T1[k] = J11 * V[1, k] + J12 * V[2, k]
        for jj in range(3):
            sj = s0 if jj == 0 else (s1 if jj == 1 else s2)
            TMs[i, 0, jj] = (T0[0] * Rq[0, jj] + T0[1] * Rq[1, jj] + T0[2] * Rq[2, jj]) * sj
            TMs[i, 1, jj] = (T1[0] * Rq[0, jj] + T1[1] * Rq[1, jj] + T1[2] * Rq[2, jj]) * sj
        a = TMs[i, 0, 0] ** 2 + TMs[i, 0, 1] ** 2 + TMs[i, 0, 2] ** 2 + LOWPASS
        b = TMs[i, 0, 0] * TMs[i, 1, 0] + TMs[i, 0, 1] * TMs[i, 1, 1] + TMs[i, 0, 2] * TMs[i, 1, 2]
        c = TMs[i, 1, 0] ** 2 + TMs[i, 1, 1] ** 2 + TMs[i, 1, 2] ** 2 + LOWPASS
        det = a * c - b * b
        u = fx * x * iz + cx - 0.5
        v = fy * y * iz + cy - 0.5
        out2d[i, 0] = u
        out2d[i, 1] = v
        if not (det > 0):
            conic[i, 0] = 0.0
            conic[i, 1] = 0.0
            conic[i, 2] = 0.0
            continue
        conic[i, 0] = c / det
        conic[i, 1] = -b / det
        conic[i, 2] = a / det
        mid = 0.5 * (a + c)
        lam1 = mid + math.sqrt(max(mid * mid - det, 0.1))
        r = math.ceil(3.0 * math.sqrt(lam1))
        if u + r >= 0 and u - r <= W - 1 and v + r >= 0 and v - r <= H - 1 and abs(u) < 1e9 and abs(v) < 1e9:
            radii[i] = int(r)


@njit(parallel=True, cache=True)
def _project_bwd(means, log_scales, quats, V, fx, fy, lim, conic, radii, TMs, g2d, gcon, gmeans, gls, gq):
    N = means.shape[0]
    for i in prange(N):
        gmeans[i, 0] = 0.0
        gmeans[i, 1] = 0.0
        gmeans[i, 2] = 0.0
        gls[i, 0] = 0.0
        gls[i, 1] = 0.0
        gls[i, 2] = 0.0
        gq[i, 0] = 0.0
        gq[i, 1] = 0.0
        gq[i, 2] = 0.0
        gq[i, 3] = 0.0
        if radii[i] <= 0:
            continue
        mxw = means[i, 0]
        myw = means[i, 1]
        mzw = means[i, 2]
        x = V[0, 0] * mxw + V[0, 1] * myw + V[0, 2] * mzw + V[0, 3]
        y = V[1, 0] * mxw + V[1, 1] * myw + V[1, 2] * mzw + V[1, 3]
        z = V[2, 0] * mxw + V[2, 1] * myw + V[2, 2] * mzw + V[2, 3]
        iz = 1.0 / z
        rx = x * iz
        ry = y * iz
        clx = rx < lim[0] or rx > lim[1]
        cly = ry < lim[2] or ry > lim[3]
        txtz = min(max(rx, lim[0]), lim[1])
        tytz = min(max(ry, lim[2]), lim[3])
        J00 = fx * iz
        J02 = -fx * txtz * iz
        J11 = fy * iz
        J12 = -fy * tytz * iz
        Rq, qn, w, qx, qy, qz = _quat_rot(quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3])
        s = np.empty(3)
        s[0] = math.exp(log_scales[i, 0])
        s[1] = math.exp(log_scales[i, 1])
        s[2] = math.exp(log_scales[i, 2])
        TM0 = TMs[i, 0]
        TM1 = TMs[i, 1]
        a = TM0[0] ** 2 + TM0[1] ** 2 + TM0[2] ** 2 + LOWPASS
        b = TM0[0] * TM1[0] + TM0[1] * TM1[1] + TM0[2] * TM1[2]
        c = TM1[0] ** 2 + TM1[1] ** 2 + TM1[2] ** 2 + LOWPASS
        D = a * c - b * b
        D2 = D * D
        gA = gcon[i, 0]
        gB = gcon[i, 1]
        gC = gcon[i, 2]
        ga = (-gA * c * c + gB * b * c - gC * b * b) / D2
        gb = gA * 2.0 * b * c / D2 + gB * (-1.0 / D - 2.0 * b * b / D2) + gC * 2.0 * a * b / D2
        gc = (-gA * b * b + gB * a * b - gC * a * a) / D2
        # d cov / d TM
        gTM0 = np.empty(3)
        gTM1 = np.empty(3)
        for k in range(3):
            gTM0[k] = 2.0 * ga * TM0[k] + gb * TM1[k]
            gTM1[k] = gb * TM0[k] + 2.0 * gc * TM1[k]
        # TM = T M, M = Rq diag(s): gT = gTM M^T, gM = T^T gTM
        T0 = np.empty(3)
        T1 = np.empty(3)
        for k in range(3):
            T0[k] = J00 * V[0, k] + J02 * V[2, k]
            T1[k] = J11 * V[1, k] + J12 * V[2, k]
        gT0 = np.zeros(3)
        gT1 = np.zeros(3)
        G = np.empty((3, 3))  # dL/dRq
        for r in range(3):
            for jj in range(3):
                Mrj = Rq[r, jj] * s[jj]
                gT0[r] += gTM0[jj] * Mrj
                gT1[r] += gTM1[jj] * Mrj
                gM = T0[r] * gTM0[jj] + T1[r] * gTM1[jj]
                G[r, jj] = gM * s[jj]
                gls[i, jj] += gM * Rq[r, jj] * s[jj]
        # quaternion (normalised) backward
        gw = 2.0 * (-qz * G[0, 1] + qy * G[0, 2] + qz * G[1, 0] - qx * G[1, 2] - qy * G[2, 0] + qx * G[2, 1])
        gx = 2.0 * (qy * G[0, 1] + qz * G[0, 2] + qy * G[1, 0] - 2 * qx * G[1, 1] - w * G[1, 2] + qz * G[2, 0]
                    + w * G[2, 1] - 2 * qx * G[2, 2])
        gy = 2.0 * (-2 * qy * G[0, 0] + qx * G[0, 1] + w * G[0, 2] + qx * G[1, 0] + qz * G[1, 2] - w * G[2, 0]
                    + qz * G[2, 1] - 2 * qy * G[2, 2])
        gz = 2.0 * (-2 * qz * G[0, 0] - w * G[0, 1] + qx * G[0, 2] + w * G[1, 0] - 2 * qz * G[1, 1]
                    + qy * G[1, 2] + qx * G[2, 0] + qy * G[2, 1])
        dot = w * gw + qx * gx + qy * gy + qz * gz
        gq[i, 0] = (gw - w * dot) / qn
        gq[i, 1] = (gx - qx * dot) / qn
        gq[i, 2] = (gy - qy * dot) / qn
        gq[i, 3] = (gz - qz * dot) / qn
        # T = J Rv: gJ = gT Rv^T (only the non-zero entries of J)
        gJ00 = gT0[0] * V[0, 0] + gT0[1] * V[0, 1] + gT0[2] * V[0, 2]
        gJ02 = gT0[0] * V[2, 0] + gT0[1] * V[2, 1] + gT0[2] * V[2, 2]
        gJ11 = gT1[0] * V[1, 0] + gT1[1] * V[1, 1] + gT1[2] * V[1, 2]
        gJ12 = gT1[0] * V[2, 0] + gT1[1] * V[2, 1] + gT1[2] * V[2, 2]
        iz2 = iz * iz
        gpx = 0.0
        gpy = 0.0
        gpz = -gJ00 * fx * iz2 - gJ11 * fy * iz2
        if clx:
            gpz += gJ02 * fx * txtz * iz2
        else:
            gpx += -gJ02 * fx * iz2
            gpz += gJ02 * 2.0 * fx * x * iz2 * iz
        if cly:
            gpz += gJ12 * fy * tytz * iz2
        else:
            gpy += -gJ12 * fy * iz2
            gpz += gJ12 * 2.0 * fy * y * iz2 * iz
        gu = g2d[i, 0]
        gv = g2d[i, 1]
        gpx += gu * fx * iz
        gpy += gv * fy * iz
        gpz += -gu * fx * x * iz2 - gv * fy * y * iz2
        for k in range(3):
            gmeans[i, k] = V[0, k] * gpx + V[1, k] * gpy + V[2, k] * gpz


class ProjectCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, log_scales, quats, viewmat, fx, fy, cx, cy, W, H, lim):
        m = means.detach().double().numpy()
        ls = log_scales.detach().double().numpy()
        q = quats.detach().double().numpy()
        V = viewmat.detach().double().cpu().numpy()
        n = m.shape[0]
        out2d = np.empty((n, 2))
        con = np.empty((n, 3))
        depth = np.empty(n)
        radii = np.empty(n, np.int32)
        TMs = np.empty((n, 2, 3))
        limv = np.asarray(lim, np.float64)
        _project_fwd(m, ls, q, V, fx, fy, cx, cy, W, H, limv, out2d, con, depth, radii, TMs)
        ctx.save = (m, ls, q, V, fx, fy, limv, con, radii, TMs)
        ctx.dt = means.dtype
        r = torch.from_numpy(radii)
        d = torch.from_numpy(depth).to(means.dtype)
        ctx.mark_non_differentiable(r, d)
        return torch.from_numpy(out2d).to(means.dtype), torch.from_numpy(con).to(means.dtype), d, r

    @staticmethod
    def backward(ctx, g2d, gcon, _gd, _gr):
        m, ls, q, V, fx, fy, limv, con, radii, TMs = ctx.save
        n = m.shape[0]
        gm = np.empty((n, 3))
        gl = np.empty((n, 3))
        gq = np.empty((n, 4))
        g2 = np.zeros((n, 2)) if g2d is None else g2d.detach().double().numpy()
        gc = np.zeros((n, 3)) if gcon is None else gcon.detach().double().numpy()
        _project_bwd(m, ls, q, V, fx, fy, limv, con, radii, TMs, np.ascontiguousarray(g2), np.ascontiguousarray(gc),
                     gm, gl, gq)
        dt = ctx.dt
        return (torch.from_numpy(gm).to(dt), torch.from_numpy(gl).to(dt), torch.from_numpy(gq).to(dt), None, None,
                None, None, None, None, None, None)


def project_cpu(means, log_scales, quats, cam):
    W, H = cam.width, cam.height
    lim = (-1.3 * (cam.cx / cam.fx), 1.3 * ((W - cam.cx) / cam.fx), -1.3 * (cam.cy / cam.fy),
           1.3 * ((H - cam.cy) / cam.fy))
    return ProjectCPU.apply(means, log_scales, quats, cam.viewmat, float(cam.fx), float(cam.fy), float(cam.cx),
                            float(cam.cy), int(W), int(H), lim)


# ----------------------------------------------------------------------------- SH -> RGB (numba, forward + backward)
_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
       -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


@njit(inline="always")
def _sh_basis(deg, x, y, z, b, db):
    """b[k]: real SH basis at unit direction (x, y, z) (reference ordering); db[k, :]: its gradient."""
    for k in range(16):
        b[k] = 0.0
        db[k, 0] = 0.0
        db[k, 1] = 0.0
        db[k, 2] = 0.0
    b[0] = _C0
    if deg > 0:
        b[1] = -_C1 * y
        db[1, 1] = -_C1
        b[2] = _C1 * z
        db[2, 2] = _C1
        b[3] = -_C1 * x
        db[3, 0] = -_C1
        if deg > 1:
            xx = x * x
            yy = y * y
            zz = z * z
            b[4] = _C2[0] * x * y
            db[4, 0] = _C2[0] * y
            db[4, 1] = _C2[0] * x
            b[5] = _C2[1] * y * z
            db[5, 1] = _C2[1] * z
            db[5, 2] = _C2[1] * y
            b[6] = _C2[2] * (2.0 * zz - xx - yy)
            db[6, 0] = _C2[2] * -2.0 * x
            db[6, 1] = _C2[2] * -2.0 * y
            db[6, 2] = _C2[2] * 4.0 * z
            b[7] = _C2[3] * x * z
            db[7, 0] = _C2[3] * z
            db[7, 2] = _C2[3] * x
            b[8] = _C2[4] * (xx - yy)
            db[8, 0] = _C2[4] * 2.0 * x
            db[8, 1] = _C2[4] * -2.0 * y
            if deg > 2:
                b[9] = _C3[0] * y * (3.0 * xx - yy)
                db[9, 0] = _C3[0] * 6.0 * x * y
                db[9, 1] = _C3[0] * (3.0 * xx - 3.0 * yy)
                b[10] = _C3[1] * x * y * z
                db[10, 0] = _C3[1] * y * z
                db[10, 1] = _C3[1] * x * z
                db[10, 2] = _C3[1] * x * y
                b[11] = _C3[2] * y * (4.0 * zz - xx - yy)
                db[11, 0] = _C3[2] * -2.0 * x * y
                db[11, 1] = _C3[2] * (4.0 * zz - xx - 3.0 * yy)
                db[11, 2] = _C3[2] * 8.0 * y * z
                b[12] = _C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy)
                db[12, 0] = _C3[3] * -6.0 * x * z
                db[12, 1] = _C3[3] * -6.0 * y * z
                db[12, 2] = _C3[3] * (6.0 * zz - 3.0 * xx - 3.0 * yy)
                b[13] = _C3[4] * x * (4.0 * zz - xx - yy)
                db[13, 0] = _C3[4] * (4.0 * zz - 3.0 * xx - yy)
                db[13, 1] = _C3[4] * -2.0 * x * y
                db[13, 2] = _C3[4] * 8.0 * x * z
                b[14] = _C3[5] * z * (xx - yy)
                db[14, 0] = _C3[5] * 2.0 * x * z
                db[14, 1] = _C3[5] * -2.0 * y * z
                db[14, 2] = _C3[5] * (xx - yy)
                b[15] = _C3[6] * x * (xx - 3.0 * yy)
                db[15, 0] = _C3[6] * (3.0 * xx - 3.0 * yy)
                db[15, 1] = _C3[6] * -6.0 * x * y


@njit(parallel=True, cache=True)
def _sh_fwd(means, sh, deg, cam, out):
    N = means.shape[0]
    K = sh.shape[1]
    for i in prange(N):
        b = np.empty(16)
        db = np.empty((16, 3))
        dx = means[i, 0] - cam[0]
        dy = means[i, 1] - cam[1]
        dz = means[i, 2] - cam[2]
        ln = max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-12)
        _sh_basis(deg, dx / ln, dy / ln, dz / ln, b, db)
        for ch in range(3):
            acc = 0.0
            for k in range(K):
                acc += b[k] * sh[i, k, ch]
            out[i, ch] = max(acc + 0.5, 0.0)


@njit(parallel=True, cache=True)
def _sh_bwd(means, sh, deg, cam, out, gcol, gmeans, gsh):
    N = means.shape[0]
    K = sh.shape[1]
    for i in prange(N):
        b = np.empty(16)
        db = np.empty((16, 3))
        dx = means[i, 0] - cam[0]
        dy = means[i, 1] - cam[1]
        dz = means[i, 2] - cam[2]
        ln = max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-12)
        x = dx / ln
        y = dy / ln
        z = dz / ln
        _sh_basis(deg, x, y, z, b, db)
        g0 = gcol[i, 0] if out[i, 0] > 0 else 0.0
        g1 = gcol[i, 1] if out[i, 1] > 0 else 0.0
        g2 = gcol[i, 2] if out[i, 2] > 0 else 0.0
        gdx = 0.0
        gdy = 0.0
        gdz = 0.0
        for k in range(K):
            gsh[i, k, 0] = b[k] * g0
            gsh[i, k, 1] = b[k] * g1
            gsh[i, k, 2] = b[k] * g2
            gb = sh[i, k, 0] * g0 + sh[i, k, 1] * g1 + sh[i, k, 2] * g2
            gdx += gb * db[k, 0]
            gdy += gb * db[k, 1]
            gdz += gb * db[k, 2]
        dot = x * gdx + y * gdy + z * gdz
        gmeans[i, 0] = (gdx - x * dot) / ln
        gmeans[i, 1] = (gdy - y * dot) / ln
        gmeans[i, 2] = (gdz - z * dot) / ln


class SHColorCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, sh, campos, deg):
        m = np.ascontiguousarray(means.detach().double().numpy())
        s = np.ascontiguousarray(sh.detach().double().numpy())
        cam = np.asarray(campos, np.float64)
        out = np.empty((m.shape[0], 3))
        _sh_fwd(m, s, int(deg), cam, out)
        ctx.save = (m, s, cam, int(deg), out)
        ctx.dt = means.dtype
        return torch.from_numpy(out).to(means.dtype)

    @staticmethod
    def backward(ctx, gcol):
        m, s, cam, deg, out = ctx.save
        gm = np.empty_like(m)
        gs = np.empty_like(s)
        _sh_bwd(m, s, deg, cam, out, np.ascontiguousarray(gcol.detach().double().numpy()), gm, gs)
        return torch.from_numpy(gm).to(ctx.dt), torch.from_numpy(gs).to(ctx.dt), None, None


def sh_colors_cpu(means, sh, campos, deg):
    """max(SH(deg, normalize(mean - campos)) + 0.5, 0), sh: (N, K, 3) with K >= (deg+1)^2."""
    K = (deg + 1) ** 2
    return SHColorCPU.apply(means, sh[:, :K], tuple(float(v) for v in campos), int(deg))
