"""CUDA backend: gsplat's `rasterization` (optional dependency, imported lazily).

NOTE: not exercised on the development machine (no GPU); the test for it skips there.
"""
import torch


def gsplat_available():
    if not torch.cuda.is_available():
        return False, "no CUDA GPU"
    try:
        import gsplat  # noqa: F401
    except Exception as e:  # pragma: no cover - depends on the environment
        return False, f"gsplat not installed ({e.__class__.__name__})"
    return True, ""


def render_gsplat(gaussians, cam, bg, sh_degree, opacity_scale=None):
    ok, why = gsplat_available()
    if not ok:
        raise RuntimeError(f"cuda backend unavailable: {why}")
    from gsplat import rasterization
    dev = gaussians.means.device
    K = torch.tensor([[cam.fx, 0.0, cam.cx], [0.0, cam.fy, cam.cy], [0.0, 0.0, 1.0]], device=dev,
                     dtype=gaussians.means.dtype)
    sh = gaussians.sh
    nk = (sh_degree + 1) ** 2
    opacities = torch.sigmoid(gaussians.opacity_logits).squeeze(-1)
    if opacity_scale is not None:
        opacities = torch.clamp(opacities * opacity_scale, max=0.999)
    colors, _alphas, info = rasterization(
        means=gaussians.means, quats=gaussians.quats, scales=torch.exp(gaussians.log_scales),
        opacities=opacities, colors=sh[:, :nk],
        viewmats=cam.viewmat.to(dev)[None], Ks=K[None], width=cam.width, height=cam.height, sh_degree=sh_degree,
        backgrounds=bg[None].to(dev), packed=False, near_plane=0.2)
    means2d = info["means2d"]
    if means2d.requires_grad:
        means2d.retain_grad()
    radii = info["radii"][0]
    if radii.dim() == 2:  # newer gsplat: per-axis radii
        radii = radii.max(dim=-1).values
    idx = torch.nonzero(radii > 0).squeeze(1)

    class _View:
        """Exposes the (1, N, 2) means2d gradient as (N, 2) like the CPU path."""

        def __init__(self, t):
            self.t = t

        @property
        def grad(self):
            return None if self.t.grad is None else self.t.grad[0]

    return dict(image=colors[0].permute(2, 0, 1), means2d=_View(means2d), idx=idx, radii=radii,
                grad_scale=(cam.width / 2.0, cam.height / 2.0))
