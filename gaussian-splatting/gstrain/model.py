"""Gaussian model: parameters, Adam, adaptive density control, PLY I/O, state for checkpoints."""
from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange

from .ply import read_gaussian_ply, write_gaussian_ply
from .rasterize import quat_to_rotmat
from .sh import rgb2sh

PARAM_NAMES = ("means", "f_dc", "f_rest", "opacity_logits", "log_scales", "quats")


def inverse_sigmoid(x):
    return torch.log(x / (1 - x))


@njit(parallel=True, cache=True)
def _adam_cpu(p, g, m, v, b1, b2, sqrt_bc2, eps, step):
    """Adam.step's torch ops fused, in the same float32 order: m = b1 m + (1 - b1) g,
    v = b2 v + (1 - b2) g^2, p += step * m / (sqrt(v) / sqrt(bc2) + eps)."""
    one = np.float32(1.0)
    for i in prange(p.shape[0]):
        gi = g[i]
        mi = m[i] * b1 + gi * (one - b1)
        vi = v[i] * b2 + gi * gi * (one - b2)
        m[i] = mi
        v[i] = vi
        p[i] += step * (mi / (math.sqrt(vi) / sqrt_bc2 + eps))


@njit(parallel=True, cache=True)
def _adam_rows_cpu(p, g, m, v, rows, b1, b2, sqrt_bc2, eps, step):
    """_adam_cpu on the given rows of (N, D) arrays only (sparse Adam): the other rows' parameters and
    moments are left as they are."""
    one = np.float32(1.0)
    D = p.shape[1]
    for j in prange(rows.shape[0]):
        i = rows[j]
        for d in range(D):
            gi = g[i, d]
            mi = m[i, d] * b1 + gi * (one - b1)
            vi = v[i, d] * b2 + gi * gi * (one - b2)
            m[i, d] = mi
            v[i, d] = vi
            p[i, d] += step * (mi / (math.sqrt(vi) / sqrt_bc2 + eps))


@njit(parallel=True, cache=True)
def _densification_stats_cpu(idx, g2d, radii, sx, sy, accum, denom, max_radii, full):
    """add_densification_stats' torch ops in one pass (the same float32 maths, no index copies); g2d and radii
    hold idx's rows, or every Gaussian's (full)."""
    for j in prange(idx.shape[0]):
        i = idx[j]
        r = np.int64(i) if full else np.int64(j)
        gx = g2d[r, 0] * sx
        gy = g2d[r, 1] * sy
        accum[i] += np.float32(math.sqrt(gx * gx + gy * gy))
        denom[i] += np.float32(1.0)
        max_radii[i] = max(max_radii[i], np.float32(radii[r]))


class Adam:
    """Plain Adam (same update as torch.optim.Adam, eps=1e-15) with per-parameter state we can edit.

    step(params, rows): with `rows` (indices of the Gaussians that took part in the step), only those rows
    are updated: "sparse" or "selective" Adam (as gsplat's SelectiveAdam and 3DGS's sparse_adam): a
    Gaussian that was not rendered keeps its parameters and moments, instead of drifting on its old
    momentum while its gradient is zero.  The bias correction uses the global step count."""

    def __init__(self, params, lrs, betas=(0.9, 0.999), eps=1e-15):
        self.lrs = dict(lrs)
        self.betas = betas
        self.eps = eps
        self.step_count = 0
        self.m = {k: torch.zeros_like(v) for k, v in params.items()}
        self.v = {k: torch.zeros_like(v) for k, v in params.items()}

    @torch.no_grad()
    def step(self, params, rows=None, skip=()):
        """skip: names of parameters not updated this step (their gradients are ignored)."""
        self.step_count += 1
        b1, b2 = self.betas
        bc1 = 1 - b1 ** self.step_count
        bc2 = 1 - b2 ** self.step_count
        for k, p in params.items():
            g = p.grad
            if g is None or k in skip:
                continue
            m, v = self.m[k], self.v[k]
            n = p.shape[0]
            if p.device.type == "cpu" and p.dtype == torch.float32 and p.is_contiguous() and m.is_contiguous() \
                    and v.is_contiguous():
                consts = (np.float32(b1), np.float32(b2), np.float32(math.sqrt(bc2)), np.float32(self.eps),
                          np.float32(-self.lrs[k] / bc1))
                if rows is not None:
                    _adam_rows_cpu(p.detach().view(n, -1).numpy(), g.contiguous().view(n, -1).numpy(),
                                   m.view(n, -1).numpy(), v.view(n, -1).numpy(), rows, *consts)
                else:
                    # one fused pass over memory instead of six (the update is memory-bound)
                    _adam_cpu(p.detach().view(-1).numpy(), g.contiguous().view(-1).numpy(), m.view(-1).numpy(),
                              v.view(-1).numpy(), *consts)
                continue
            if rows is not None:
                r = torch.as_tensor(rows, device=p.device, dtype=torch.long)
                gr, mr, vr = g[r], m[r], v[r]
                mr.mul_(b1).add_(gr, alpha=1 - b1)
                vr.mul_(b2).addcmul_(gr, gr, value=1 - b2)
                denom = (vr.sqrt() / math.sqrt(bc2)).add_(self.eps)
                m[r], v[r] = mr, vr
                p.data[r] = p.data[r].addcdiv(mr, denom, value=-self.lrs[k] / bc1)
                continue
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / math.sqrt(bc2)).add_(self.eps)
            p.addcdiv_(m, denom, value=-self.lrs[k] / bc1)

    def state_dict(self):
        return {"lrs": dict(self.lrs), "step": self.step_count, "m": {k: v.clone() for k, v in self.m.items()},
                "v": {k: v.clone() for k, v in self.v.items()}}

    def load_state_dict(self, d):
        self.lrs = dict(d["lrs"])
        self.step_count = int(d["step"])
        self.m = {k: v.clone() for k, v in d["m"].items()}
        self.v = {k: v.clone() for k, v in d["v"].items()}


class GaussianModel:
    def __init__(self, sh_degree=3, device="cpu"):
        self.max_sh_degree = sh_degree
        self.active_sh_degree = 0
        self.device = device
        self.params = {}
        self.optimizer = None
        self.percent_dense = 0.01
        self.spatial_lr_scale = 1.0

    # ------------------------------------------------------------------ accessors used by the renderer
    @property
    def means(self):
        return self.params["means"]

    @property
    def log_scales(self):
        return self.params["log_scales"]

    @property
    def quats(self):
        return self.params["quats"]

    @property
    def opacity_logits(self):
        return self.params["opacity_logits"]

    @property
    def f_dc(self):
        return self.params["f_dc"]

    @property
    def f_rest(self):
        return self.params["f_rest"]

    @property
    def sh(self):
        return torch.cat([self.params["f_dc"], self.params["f_rest"]], dim=1)

    @property
    def num(self):
        return self.params["means"].shape[0]

    # ------------------------------------------------------------------ creation
    def create_from_points(self, xyz, rgb, spatial_lr_scale):
        from scipy.spatial import cKDTree
        self.spatial_lr_scale = float(spatial_lr_scale)
        xyz = np.asarray(xyz, np.float64)
        n = xyz.shape[0]
        if n >= 2:
            k = min(4, n)
            d, _ = cKDTree(xyz).query(xyz, k=k)
            dist2 = np.clip((d[:, 1:] ** 2).mean(1), 1e-7, None)
        else:
            dist2 = np.full(n, 1e-2)
        K = (self.max_sh_degree + 1) ** 2
        colors = rgb2sh(torch.tensor(np.asarray(rgb, np.float64) / 255.0, dtype=torch.float32))
        f_dc = colors[:, None, :].clone()
        f_rest = torch.zeros(n, K - 1, 3)
        scales = torch.log(torch.sqrt(torch.tensor(dist2, dtype=torch.float32)))[:, None].repeat(1, 3)
        quats = torch.zeros(n, 4)
        quats[:, 0] = 1
        opac = inverse_sigmoid(0.1 * torch.ones(n, 1))
        self._set_params({"means": torch.tensor(xyz, dtype=torch.float32), "f_dc": f_dc, "f_rest": f_rest,
                          "opacity_logits": opac, "log_scales": scales, "quats": quats})
        self.reset_stats()

    def _set_params(self, d):
        self.params = {k: d[k].to(self.device).contiguous().requires_grad_(True) for k in PARAM_NAMES}

    def reset_stats(self):
        n = self.num
        self.grad_accum = torch.zeros(n, 1, device=self.device)
        self.denom = torch.zeros(n, 1, device=self.device)
        self.max_radii2D = torch.zeros(n, device=self.device)

    def setup_optimizer(self, position_lr_init=0.00016, feature_lr=0.0025, opacity_lr=0.025, scaling_lr=0.005,
                        rotation_lr=0.001):
        lrs = {"means": position_lr_init * self.spatial_lr_scale, "f_dc": feature_lr, "f_rest": feature_lr / 20.0,
               "opacity_logits": opacity_lr, "log_scales": scaling_lr, "quats": rotation_lr}
        self.optimizer = Adam(self.params, lrs)

    def zero_grad(self):
        for p in self.params.values():
            p.grad = None

    def oneup_sh(self):
        if self.active_sh_degree < self.max_sh_degree:
            self.active_sh_degree += 1

    # ------------------------------------------------------------------ density control
    @torch.no_grad()
    def add_densification_stats(self, idx, grad2d, radii, grad_scale, full=False):
        """idx: visible indices, grad2d: d loss / d means2d (pixels), converted to NDC units like the reference.
        grad2d and radii hold idx's rows, or with full=True every Gaussian's (read at idx: no gathered copies)."""
        stats = (self.grad_accum, self.denom, self.max_radii2D)
        if all(t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous() for t in stats) \
                and grad2d.device.type == "cpu" and grad2d.dtype == torch.float32:
            _densification_stats_cpu(idx.numpy(), grad2d.contiguous().numpy(), radii.contiguous().numpy(),
                                     np.float32(grad_scale[0]), np.float32(grad_scale[1]),
                                     self.grad_accum.view(-1).numpy(), self.denom.view(-1).numpy(),
                                     self.max_radii2D.numpy(), bool(full))
            return
        if full:
            grad2d, radii = grad2d[idx], radii[idx]
        g = grad2d.clone()
        g[:, 0] *= grad_scale[0]
        g[:, 1] *= grad_scale[1]
        self.grad_accum[idx] += g.norm(dim=-1, keepdim=True)
        self.denom[idx] += 1
        self.max_radii2D[idx] = torch.maximum(self.max_radii2D[idx], radii.to(self.max_radii2D.dtype))

    @torch.no_grad()
    def _apply_mask(self, keep):
        for k in PARAM_NAMES:
            self.params[k] = self.params[k][keep].contiguous().requires_grad_(True)
            if self.optimizer is not None:
                self.optimizer.m[k] = self.optimizer.m[k][keep].contiguous()
                self.optimizer.v[k] = self.optimizer.v[k][keep].contiguous()
        self.grad_accum = self.grad_accum[keep]
        self.denom = self.denom[keep]
        self.max_radii2D = self.max_radii2D[keep]

    @torch.no_grad()
    def _append(self, new):
        n_new = new["means"].shape[0]
        for k in PARAM_NAMES:
            self.params[k] = torch.cat([self.params[k].detach(), new[k]], 0).contiguous().requires_grad_(True)
            if self.optimizer is not None:
                z = torch.zeros_like(new[k])
                self.optimizer.m[k] = torch.cat([self.optimizer.m[k], z], 0)
                self.optimizer.v[k] = torch.cat([self.optimizer.v[k], z.clone()], 0)
        dev = self.device
        self.grad_accum = torch.cat([self.grad_accum, torch.zeros(n_new, 1, device=dev)])
        self.denom = torch.cat([self.denom, torch.zeros(n_new, 1, device=dev)])
        self.max_radii2D = torch.cat([self.max_radii2D, torch.zeros(n_new, device=dev)])

    @staticmethod
    def _limit(mask, score, budget):
        """Keep at most `budget` True entries of mask (highest score first)."""
        if budget is None:
            return mask
        cnt = int(mask.sum())
        if cnt <= budget:
            return mask
        out = torch.zeros_like(mask)
        if budget <= 0:
            return out
        cand = torch.nonzero(mask).squeeze(1)
        top = torch.topk(score[cand], budget).indices
        out[cand[top]] = True
        return out

    @torch.no_grad()
    def _too_big(self, max_screen_size, extent):
        """Gaussians too big on screen (max 2D radius since the last step) or in the world (0.1 * extent);
        none when max_screen_size is not set (before the first opacity reset, as in the reference)."""
        if not max_screen_size:
            return torch.zeros(self.num, dtype=torch.bool, device=self.device)
        world = torch.exp(self.params["log_scales"].detach()).max(dim=1).values > 0.1 * extent
        return (self.max_radii2D > max_screen_size) | world

    @torch.no_grad()
    def densify_and_prune(self, max_grad, min_opacity, extent, max_screen_size, max_gaussians=None):
        """Clone small / split large Gaussians whose mean view-space gradient reaches max_grad, then prune
        transparent ones (and, with max_screen_size, ones too big on screen or in the world).

        Without max_gaussians this is the reference's densify_and_prune. With a cap, two things differ,
        because a capped model cannot grow back what pruning removes: the slots freed by transparent
        Gaussians are usable in the same step, and Gaussians that are too big are split (big ones first)
        or, when no slot is left, kept, never deleted. Deleting them opened holes that the capped
        densification could not refill: the optimiser regrew neighbours to cover them, those were pruned
        as too big in turn, and training PSNR fell from 24 to 12-17 dB for as long as densification ran."""
        grads = self.grad_accum / self.denom
        grads[grads.isnan()] = 0.0
        grads = grads.squeeze(1)
        scaling = torch.exp(self.params["log_scales"])
        max_scale = scaling.max(dim=1).values
        opac = torch.sigmoid(self.params["opacity_logits"].detach()).squeeze(1)
        big = self._too_big(max_screen_size, extent)
        high = grads >= max_grad
        clone_mask = high & (max_scale <= self.percent_dense * extent)
        split_mask = high & (max_scale > self.percent_dense * extent)
        capped = bool(max_gaussians)
        if capped:
            low = opac < min_opacity
            budget = max(0, int(max_gaussians) - self.num + int(low.sum()))
            big_split = self._limit(big & ~low, max_scale, budget)
            budget -= int(big_split.sum())
            clone_mask = self._limit(clone_mask & ~low & ~big, grads, budget)
            budget -= int(clone_mask.sum())
            split_mask = big_split | self._limit(split_mask & ~low & ~big, grads, budget)
        n0 = self.num
        if clone_mask.any():
            self._append({k: self.params[k].detach()[clone_mask] for k in PARAM_NAMES})
        # split (N = 2)
        N = 2
        split_full = torch.zeros(self.num, dtype=torch.bool, device=self.device)
        split_full[:n0] = split_mask
        if split_mask.any():
            sel = split_full
            stds = scaling[split_mask].repeat(N, 1)
            samples = torch.normal(torch.zeros_like(stds), stds)
            rots = quat_to_rotmat(self.params["quats"].detach()[sel]).repeat(N, 1, 1)
            new_means = torch.bmm(rots, samples.unsqueeze(-1)).squeeze(-1) + self.params["means"].detach()[sel].repeat(N, 1)
            new_scales = torch.log(scaling[split_mask].repeat(N, 1) / (0.8 * N))
            new = {"means": new_means, "log_scales": new_scales}
            for k in ("f_dc", "f_rest", "opacity_logits", "quats"):
                p = self.params[k].detach()[sel]
                new[k] = p.repeat(N, *([1] * (p.dim() - 1)))
            self._append(new)
            prune_split = torch.cat([split_full, torch.zeros(N * int(split_mask.sum()), dtype=torch.bool,
                                                             device=self.device)])
            self._apply_mask(~prune_split)
        # prune
        opac = torch.sigmoid(self.params["opacity_logits"].detach()).squeeze(1)
        prune = opac < min_opacity
        if not capped:
            prune = prune | self._too_big(max_screen_size, extent)
        if prune.all():  # never remove everything
            prune[torch.argmax(opac)] = False
        self._apply_mask(~prune)
        self.grad_accum.zero_()
        self.denom.zero_()
        self.max_radii2D.zero_()

    @torch.no_grad()
    def relocate(self, dead, src, new_logit, new_log_scale):
        """MCMC relocation: sources `src` get opacity logits / log-scales `new_*` (shared with their
        copies), and the dead Gaussians' slots become copies of them; both lose their Adam moments."""
        ol, ls = self.params["opacity_logits"], self.params["log_scales"]
        ol.data[src] = new_logit.to(ol.device)
        ls.data[src] = new_log_scale.to(ls.device)
        for k in PARAM_NAMES:
            p = self.params[k]
            p.data[dead] = p.data[src]
            if self.optimizer is not None:
                for st in (self.optimizer.m[k], self.optimizer.v[k]):
                    st[src] = 0
                    st[dead] = 0
        for st in (self.grad_accum, self.denom):
            st[dead] = 0
        self.max_radii2D[dead] = 0

    @torch.no_grad()
    def append_copies(self, src, new_logit, new_log_scale):
        """MCMC growth: sources `src` get the shared opacity / scale and a copy each is appended (new
        Gaussians start with zero Adam moments; the sources' moments are reset too)."""
        ol, ls = self.params["opacity_logits"], self.params["log_scales"]
        ol.data[src] = new_logit.to(ol.device)
        ls.data[src] = new_log_scale.to(ls.device)
        if self.optimizer is not None:
            for k in PARAM_NAMES:
                self.optimizer.m[k][src] = 0
                self.optimizer.v[k][src] = 0
        self._append({k: self.params[k].detach()[src].clone() for k in PARAM_NAMES})

    @torch.no_grad()
    def reset_opacity(self):
        cur = torch.sigmoid(self.params["opacity_logits"].detach())
        new = inverse_sigmoid(torch.clamp(cur, max=0.01))
        self.params["opacity_logits"] = new.contiguous().requires_grad_(True)
        if self.optimizer is not None:
            self.optimizer.m["opacity_logits"].zero_()
            self.optimizer.v["opacity_logits"].zero_()

    # ------------------------------------------------------------------ I/O
    def save_ply(self, path):
        p = {k: v.detach().cpu() for k, v in self.params.items()}
        write_gaussian_ply(path, p["means"].numpy(), p["f_dc"].numpy(), p["f_rest"].numpy(),
                           p["opacity_logits"].numpy(), p["log_scales"].numpy(), p["quats"].numpy())

    def load_ply(self, path):
        d = read_gaussian_ply(path)
        rest = d["f_rest"]
        deg = int(round(math.sqrt(rest.shape[1] + 1))) - 1
        self.max_sh_degree = deg
        self.active_sh_degree = deg
        self._set_params({k: torch.from_numpy(np.ascontiguousarray(d[k])).float() for k in PARAM_NAMES})
        self.reset_stats()

    def state_dict(self):
        return {"params": {k: v.detach().clone() for k, v in self.params.items()},
                "optimizer": self.optimizer.state_dict() if self.optimizer else None,
                "grad_accum": self.grad_accum.clone(), "denom": self.denom.clone(),
                "max_radii2D": self.max_radii2D.clone(), "active_sh_degree": self.active_sh_degree,
                "max_sh_degree": self.max_sh_degree, "spatial_lr_scale": self.spatial_lr_scale,
                "percent_dense": self.percent_dense}

    def load_state_dict(self, d):
        self.max_sh_degree = d["max_sh_degree"]
        self.active_sh_degree = d["active_sh_degree"]
        self.spatial_lr_scale = d["spatial_lr_scale"]
        self.percent_dense = d["percent_dense"]
        self._set_params(d["params"])
        self.grad_accum = d["grad_accum"].to(self.device)
        self.denom = d["denom"].to(self.device)
        self.max_radii2D = d["max_radii2D"].to(self.device)
        if d["optimizer"] is not None:
            self.optimizer = Adam(self.params, d["optimizer"]["lrs"])
            self.optimizer.load_state_dict(d["optimizer"])
