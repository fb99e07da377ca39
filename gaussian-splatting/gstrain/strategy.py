"""How the set of Gaussians changes during training: the strategies, each reading its schedule from the Plan.

* `MCMCStrategy` (the default): a fixed budget of Gaussians, as "3D Gaussian Splatting as Markov Chain Monte
  Carlo" (Kheradmand et al., NeurIPS 2024) and gsplat's / Brush's MCMC strategies.  Every `refine_every`
  iterations the dead Gaussians (opacity <= 0.005) are moved onto live ones drawn in proportion to their
  opacity (the pair's opacity and scale chosen so that together they render as the one did), and new
  Gaussians are added the same way, 5 % at a time, until the count reaches the plan's target (which grows
  with the resolution up to the budget).  Every iteration nearly transparent Gaussians get position noise
  shaped by their covariance, and an L1 term on opacity and scale pushes unused ones towards death, so
  they get relocated.  No gradient thresholds, no opacity resets: the count is what the user chose.
* `ADCStrategy`: the reference's adaptive density control (clone / split on the view-space gradient,
  prune transparent ones, periodic opacity reset), with an optional cap (see GaussianModel.densify_and_prune).

Also here: Gaussian dropout and the sparse-capture rule that sets the dropout rate and the budget.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange

from .plan import resolve_sparse  # noqa: F401  (the budget rule lives with the plan)


class GaussianDropout:
    """Gaussian dropout for one training step (as in DropGaussian, CVPR 2025): each Gaussian is left out with
    probability `rate`, and the opacity of those kept is divided by (1 - rate) so the expected coverage
    stays the same.  Applied as a per-Gaussian opacity factor (`scale`: 0 or 1 / (1 - rate)) inside the
    renderer, so no copy of the model is made; `kept` says which Gaussians took part."""

    def __init__(self, n, rate, device="cpu", generator=None):
        self.kept = torch.rand(n, generator=generator, device=device) >= rate
        self.scale = self.kept.to(torch.float32) / (1.0 - rate)


def visible_rows(out, drop):
    """Indices of the Gaussians that took part in this step's render (visible and not dropped)."""
    vis = out["idx"]
    if drop is not None:
        vis = vis[drop.kept[vis]]
    return vis


class ADCStrategy:
    """The reference's adaptive density control on the plan's schedule (densify_from/until, interval,
    opacity reset), with an optional cap on the count (plan.max_gaussians)."""

    name = "adc"
    # the loop calls step_post_backward before the optimizer's step (the reference's order: the parameters
    # densification replaces skip that step)
    refines_before_step = True

    def __init__(self, plan, extent, white_background=False, grad_threshold=0.0002):
        self.plan = plan
        self.extent = extent
        self.white_background = white_background
        self.grad_threshold = grad_threshold

    def initialise(self, model):
        pass

    def add_regulariser_grads(self, model, rows):
        pass

    def step_post_backward(self, it, model, out, drop, lr_means):
        p = self.plan
        if it < p.densify_until_iter and out["means2d"].grad is not None:
            vis = visible_rows(out, drop)
            # means2d gradients are in pixels of the rendered image; grad_scale takes them to NDC, so a
            # coarse level's statistics compare with the same threshold
            model.add_densification_stats(vis, out["means2d"].grad, out["radii"], out["grad_scale"], full=True)
        if it < p.densify_until_iter:
            if it > p.densify_from_iter and it % p.densification_interval == 0:
                size_threshold = 20 if it > p.opacity_reset_interval else None
                model.densify_and_prune(self.grad_threshold, 0.005, self.extent, size_threshold,
                                        p.max_gaussians or None)
            if it % p.opacity_reset_interval == 0 or (self.white_background and it == p.densify_from_iter):
                model.reset_opacity()

    def state_dict(self):
        return {}

    def load_state_dict(self, d):
        pass


# ----------------------------------------------------------------------------------------------- MCMC

N_MAX_RATIO = 51  # gsplat's cap on how many Gaussians share one source in a relocation


def _binomials(n):
    b = np.zeros((n, n), np.float64)
    for i in range(n):
        for k in range(i + 1):
            b[i, k] = math.comb(i, k)
    return b


_BINOMS = _binomials(N_MAX_RATIO)


@njit(cache=True)
def _relocation(opac, scales, ratios, binoms):
    """Opacity and scale for each of `ratio` copies of a Gaussian so that together they render like it
    (MCMC paper, eq. 9): o' = 1 - (1 - o)^(1/N); s' = o / (sum_{i=1..N} sum_{k<i} C(i-1,k) (-1)^k o'^(k+1)
    / sqrt(k+1)) * s.  float64 (the alternating sum cancels)."""
    n = opac.shape[0]
    new_o = np.empty(n, np.float64)
    new_s = np.empty((n, 3), np.float64)
    for j in range(n):
        r = min(max(ratios[j], 1), binoms.shape[0])
        o = opac[j]
        no = 1.0 - (1.0 - o) ** (1.0 / r)
        den = 0.0
        for i in range(1, r + 1):
            for k in range(i):
                den += binoms[i - 1, k] * ((-1.0) ** k / math.sqrt(k + 1.0)) * no ** (k + 1)
        c = o / den if den > 0 else 1.0
        new_o[j] = no
        for a in range(3):
            new_s[j, a] = c * scales[j, a]
    return new_o, new_s


@njit(parallel=True, cache=True)
def _position_noise(means, log_scales, quats, opac_logits, rows, normals, scaler):
    """means[rows] += Sigma z * sigmoid(100 (0.005 - opacity)) * scaler, Sigma = R S^2 R^T (in place)."""
    for j in prange(rows.shape[0]):
        i = rows[j]
        o = 1.0 / (1.0 + math.exp(-float(opac_logits[i, 0])))
        gate = 1.0 / (1.0 + math.exp(-100.0 * (0.005 - o)))
        w = float(quats[i, 0])
        x = float(quats[i, 1])
        y = float(quats[i, 2])
        z = float(quats[i, 3])
        nq = math.sqrt(w * w + x * x + y * y + z * z)
        w /= nq
        x /= nq
        y /= nq
        z /= nq
        R00 = 1 - 2 * (y * y + z * z)
        R01 = 2 * (x * y - w * z)
        R02 = 2 * (x * z + w * y)
        R10 = 2 * (x * y + w * z)
        R11 = 1 - 2 * (x * x + z * z)
        R12 = 2 * (y * z - w * x)
        R20 = 2 * (x * z - w * y)
        R21 = 2 * (y * z + w * x)
        R22 = 1 - 2 * (x * x + y * y)
        s0 = math.exp(2.0 * float(log_scales[i, 0]))
        s1 = math.exp(2.0 * float(log_scales[i, 1]))
        s2 = math.exp(2.0 * float(log_scales[i, 2]))
        # u = S^2 R^T n, then R u
        n0 = float(normals[j, 0])
        n1 = float(normals[j, 1])
        n2 = float(normals[j, 2])
        u0 = s0 * (R00 * n0 + R10 * n1 + R20 * n2)
        u1 = s1 * (R01 * n0 + R11 * n1 + R21 * n2)
        u2 = s2 * (R02 * n0 + R12 * n1 + R22 * n2)
        k = gate * scaler
        means[i, 0] += k * (R00 * u0 + R01 * u1 + R02 * u2)
        means[i, 1] += k * (R10 * u0 + R11 * u1 + R12 * u2)
        means[i, 2] += k * (R20 * u0 + R21 * u1 + R22 * u2)


def position_noise_torch(means, log_scales, quats, opac_logits, rows, normals, scaler):
    """_position_noise in torch (the CUDA backend): the same update, in place on means."""
    from .rasterize import quat_to_rotmat
    gate = torch.sigmoid(100.0 * (0.005 - torch.sigmoid(opac_logits[rows]).reshape(-1, 1)))
    R = quat_to_rotmat(quats[rows])
    u = torch.exp(2.0 * log_scales[rows]) * torch.einsum("nji,nj->ni", R, normals)  # S^2 R^T z
    means[rows] += gate * scaler * torch.einsum("nij,nj->ni", R, u)


class MCMCStrategy:
    """Fixed Gaussian budget with relocation (see the module docstring); figures in the trainer's README."""

    name = "mcmc"
    refines_before_step = False  # relocation and growth come after the optimizer's step (gsplat's order)
    min_opacity = 0.005
    noise_lr = 5e5
    grow_rate = 0.05
    # below this opacity the position noise gate sigmoid(100 (0.005 - o)) is < 1e-6: not worth computing
    noise_opacity_cutoff = 0.15

    def __init__(self, plan, extent, opacity_reg=0.01, scale_reg=0.01, init_opacity=0.5, init_scale=0.1,
                 initial_count=None):
        self.plan = plan
        # gsplat works in a world normalised so that the cameras lie within ~1 of their centre; the scene's
        # scale S turns its regularisers and noise into this scene's units
        self.scene_scale = max(extent / 1.1, 1e-9)
        self.opacity_reg = opacity_reg
        self.scale_reg = scale_reg
        self.init_opacity = init_opacity
        self.init_scale = init_scale
        self.initial_count = initial_count
        self.relocated = 0
        self.added = 0

    def initialise(self, model):
        """MCMC's start (gsplat's mcmc config): opacity 0.5 and 1/10 of the neighbour-distance scale."""
        self.initial_count = model.num
        with torch.no_grad():
            o = torch.full_like(model.params["opacity_logits"], float(self.init_opacity))
            model.params["opacity_logits"].copy_(torch.log(o / (1 - o)))
            model.params["log_scales"].add_(math.log(self.init_scale))

    def add_regulariser_grads(self, model, rows):
        """Gradients of opacity_reg * mean(opacity) + scale_reg * mean(scale / S) (gsplat's MCMC terms; the
        means are over all Gaussians), added to the rows that this step updates."""
        n = model.num
        if rows is None:
            rows = torch.arange(n)
        with torch.no_grad():
            ol = model.params["opacity_logits"]
            ls = model.params["log_scales"]
            if self.opacity_reg:
                s = torch.sigmoid(ol.detach()[rows])
                g = (self.opacity_reg / n) * s * (1 - s)
                if ol.grad is None:
                    ol.grad = torch.zeros_like(ol)
                ol.grad.index_add_(0, rows, g)
            if self.scale_reg:
                g = (self.scale_reg / (3 * n * self.scene_scale)) * torch.exp(ls.detach()[rows])
                if ls.grad is None:
                    ls.grad = torch.zeros_like(ls)
                ls.grad.index_add_(0, rows, g)

    def step_post_backward(self, it, model, out, drop, lr_means):
        p = self.plan
        if p.refine_from_iter < it < p.refine_until_iter and it % p.refine_every == 0:
            self.relocated += self.relocate(model)
            target = p.gaussian_target(it, self.initial_count or model.num)
            n_new = max(0, min(target, int((1.0 + self.grow_rate) * model.num)) - model.num)
            if n_new:
                self.add(model, n_new)
                self.added += n_new
        self.inject_noise(model, lr_means)

    @torch.no_grad()
    def relocate(self, model):
        opac = torch.sigmoid(model.params["opacity_logits"].detach()).reshape(-1)
        dead = torch.nonzero(opac <= self.min_opacity).squeeze(1)
        alive = torch.nonzero(opac > self.min_opacity).squeeze(1)
        if dead.numel() == 0 or alive.numel() == 0:
            return 0
        src = alive[torch.multinomial(opac[alive], dead.numel(), replacement=True)]
        ratios = torch.bincount(src, minlength=model.num)[src] + 1
        new_logit, new_log_scale = self._shared(model, src, ratios)
        model.relocate(dead, src, new_logit, new_log_scale)
        return int(dead.numel())

    @torch.no_grad()
    def add(self, model, n):
        opac = torch.sigmoid(model.params["opacity_logits"].detach()).reshape(-1)
        src = torch.multinomial(opac, n, replacement=True)
        ratios = torch.bincount(src, minlength=model.num)[src] + 1
        new_logit, new_log_scale = self._shared(model, src, ratios)
        model.append_copies(src, new_logit, new_log_scale)

    def _shared(self, model, src, ratios):
        """New opacity logits and log-scales of sources `src` each shared `ratios` ways."""
        opac = torch.sigmoid(model.params["opacity_logits"].detach()[src]).reshape(-1).double().cpu().numpy()
        scales = torch.exp(model.params["log_scales"].detach()[src]).double().cpu().numpy()
        no, ns = _relocation(opac, scales, ratios.cpu().numpy().astype(np.int64), _BINOMS)
        eps = float(np.finfo(np.float32).eps)
        no = np.clip(no, self.min_opacity, 1.0 - eps)
        logit = torch.from_numpy(np.log(no / (1.0 - no))).float().reshape(-1, 1)
        log_scale = torch.from_numpy(np.log(np.maximum(ns, 1e-30))).float()
        return logit.to(model.device), log_scale.to(model.device)

    @torch.no_grad()
    def inject_noise(self, model, lr_means):
        """Position noise for nearly transparent Gaussians: lr_means * noise_lr in gsplat's normalised world,
        i.e. Sigma z * lr_means / S^2 * noise_lr here (lr_means already carries the scene's scale)."""
        ol = model.params["opacity_logits"].detach()
        cutoff = math.log(self.noise_opacity_cutoff / (1 - self.noise_opacity_cutoff))
        rows = torch.nonzero(ol.reshape(-1) < cutoff).squeeze(1)
        if rows.numel() == 0:
            return
        normals = torch.randn(rows.numel(), 3, device=ol.device)
        scaler = lr_means / (self.scene_scale ** 2) * self.noise_lr
        p = model.params
        if ol.device.type == "cpu":
            _position_noise(p["means"].detach().numpy(), p["log_scales"].detach().numpy(), p["quats"].detach().numpy(),
                            ol.numpy(), rows.numpy(), normals.numpy(), scaler)
        else:
            position_noise_torch(p["means"].detach(), p["log_scales"].detach(), p["quats"].detach(), ol, rows, normals,
                                 scaler)

    def state_dict(self):
        return {"initial_count": self.initial_count, "relocated": self.relocated, "added": self.added}

    def load_state_dict(self, d):
        self.initial_count = d.get("initial_count")
        self.relocated = d.get("relocated", 0)
        self.added = d.get("added", 0)


def make_strategy(plan, extent, args):
    if plan.strategy == "mcmc":
        return MCMCStrategy(plan, extent, opacity_reg=args.opacity_reg, scale_reg=args.scale_reg,
                            init_opacity=args.init_opacity, init_scale=args.init_scale)
    return ADCStrategy(plan, extent, args.white_background, args.densify_grad_threshold)
