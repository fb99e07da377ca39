"""Slow, obviously-correct dense PyTorch compositing (every Gaussian x every pixel).  Tests only.

Semantics (shared with the numba kernels):
  a Gaussian is drawn only if its radius is > 0 (the projection's culling: in front, its 3-sigma square meets
  the image), and then touches every pixel its alpha test accepts (no per-pixel 3-sigma bound);
  power = -0.5 (a dx^2 + c dy^2) - b dx dy with d = mean2d - p; skip if power > 0;
  alpha = min(0.99, opacity * exp(power)); skip if alpha < 1/255;
  front-to-back by depth; stop before the Gaussian that would bring T below 1e-4;
  out = sum_i c_i alpha_i T_i + T_final * bg.
"""
import torch


def rasterize_reference(means2d, conics, colors, opacities, depths, radii, W, H, bg):
    order = torch.argsort(depths, stable=True)
    m = means2d[order]
    con = conics[order]
    col = colors[order]
    op = opacities[order]
    r = radii[order].to(m.dtype)
    dev, dt = m.device, m.dtype
    ys, xs = torch.meshgrid(torch.arange(H, device=dev, dtype=dt), torch.arange(W, device=dev, dtype=dt),
                            indexing="ij")
    px = xs.reshape(1, -1)
    py = ys.reshape(1, -1)
    dx = m[:, 0:1] - px  # (N, P)
    dy = m[:, 1:2] - py
    power = -0.5 * (con[:, 0:1] * dx * dx + con[:, 2:3] * dy * dy) - con[:, 1:2] * dx * dy
    alpha = torch.clamp(op[:, None] * torch.exp(power), max=0.99)
    with torch.no_grad():
        valid = (r[:, None] > 0) & (power <= 0) & (alpha >= 1.0 / 255.0)
    alpha = torch.where(valid, alpha, torch.zeros_like(alpha))
    with torch.no_grad():
        cum = torch.cumprod(1 - alpha, dim=0)  # T after including i (ignoring the stop)
        include = cum >= 1e-4
    alpha = torch.where(include, alpha, torch.zeros_like(alpha))
    one_minus = 1 - alpha
    T_incl = torch.cumprod(one_minus, dim=0)
    T_excl = torch.cat([torch.ones_like(T_incl[:1]), T_incl[:-1]], dim=0)
    w = alpha * T_excl  # (N, P)
    img = w.T @ col  # (P, 3)
    T_final = T_incl[-1] if T_incl.shape[0] > 0 else torch.ones(H * W, device=dev, dtype=dt)
    img = img + T_final[:, None] * bg.to(dt)[None, :]
    return img.T.reshape(3, H, W)
