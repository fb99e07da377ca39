"""Per-photo exposure compensation for training (as the reference 3DGS's exposure optimisation).

Phone and camera photos of one capture are taken at different exposures and white balances (monstree's 23
photos span 0.9 stops of exposure time x ISO).  Without compensation the model can only explain a brighter
photo with view-dependent colour or with semi-transparent Gaussians in front of that camera, which is
overfitting that new viewpoints pay for.  Each training photo gets a 3x3 colour matrix and an offset that
map the model's render to that photo; they start at the identity and are learnt with the Gaussians.

The model and the transforms can trade a global colour change between them; the gauge is fixed by
applying each photo's transform relative to the mean over all training photos, so the model always
renders at the training photos' average exposure, and that is what held-out views, the viewer and the
exported splat show.
"""
from __future__ import annotations

import math

import torch

from .model import expon_lr

LR_INIT = 0.01  # the reference's exposure_lr_init / exposure_lr_final
LR_FINAL = 0.001


class Exposure:
    """Adam on the transforms is written out here (the update of torch.optim.Adam, eps 1e-15): creating a
    torch.optim.Adam imports torch's compiler stack, seconds of start-up for 12 numbers per photo."""

    def __init__(self, num_views, iterations, lr_init=LR_INIT, lr_final=LR_FINAL, device="cpu"):
        self.iterations = iterations
        self.lr_init, self.lr_final = lr_init, lr_final
        self.delta = torch.zeros(num_views, 3, 4, device=device, requires_grad=True)  # [A - I | b]
        self.exp_avg = torch.zeros(num_views, 3, 4, device=device)
        self.exp_avg_sq = torch.zeros(num_views, 3, 4, device=device)
        self.steps = 0

    def _relative(self):
        """Each view's [A - I | b] minus the mean over all views (the gauge: their mean transform is I)."""
        return self.delta - self.delta.mean(0)

    def transform(self, view):
        """(3, 4) affine colour transform of training view `view`, relative to the mean of all views."""
        d = self._relative()[view]
        return torch.eye(3, 4, device=d.device, dtype=d.dtype) + d

    def apply(self, image, view):
        """image (3, H, W) -> the same render as photo `view` would record it."""
        t = self.transform(view)
        C, H, W = image.shape
        return torch.addmm(t[:, 3:], t[:, :3], image.reshape(C, H * W)).reshape(C, H, W)

    @torch.no_grad()
    def step(self, iteration, betas=(0.9, 0.999), eps=1e-15):
        g = self.delta.grad
        if g is None:
            return
        lr = expon_lr(iteration, self.lr_init, self.lr_final, 1.0, self.iterations)
        self.steps += 1
        b1, b2 = betas
        self.exp_avg.mul_(b1).add_(g, alpha=1 - b1)
        self.exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (self.exp_avg_sq.sqrt() / math.sqrt(1 - b2 ** self.steps)).add_(eps)
        self.delta.addcdiv_(self.exp_avg, denom, value=-lr / (1 - b1 ** self.steps))
        self.delta.grad = None

    def stats(self):
        """Per-view brightness gain (mean of the matrix's diagonal) relative to the average, for the log."""
        with torch.no_grad():
            d = self._relative()
            gain = 1.0 + d[:, [0, 1, 2], [0, 1, 2]].mean(1)
            return float(gain.min()), float(gain.max())

    def state_dict(self):
        """In torch.optim.Adam's layout (checkpoints of earlier versions load the same way)."""
        return {"delta": self.delta.detach().clone(),
                "optimizer": {"state": {0: {"step": torch.tensor(float(self.steps)), "exp_avg": self.exp_avg.clone(),
                                            "exp_avg_sq": self.exp_avg_sq.clone()}}}}

    def load_state_dict(self, d):
        with torch.no_grad():
            self.delta.copy_(d["delta"])
        st = d.get("optimizer", {}).get("state", {}).get(0)
        if st:
            self.exp_avg.copy_(st["exp_avg"])
            self.exp_avg_sq.copy_(st["exp_avg_sq"])
            self.steps = int(float(st["step"]))
