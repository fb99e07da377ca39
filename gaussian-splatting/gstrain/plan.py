"""The run's plan: every quantity of a training run that depends on the iteration, decided in one place.

`make_plan(args, iterations)` turns the command line into a `Plan`: an option the user gave is kept as it
is; every other one gets a default scaled to the run's length.  The trainer, the strategies, the time
budget and `--plan` (which the app asks for the expected duration) all read the plan; nothing else
decides a schedule.  With `--time_budget` the number of iterations is re-planned as the run learns its own
speed, and the plan is made again from the same arguments for the new length.

Resolution schedule (coarse to fine, as in DashGaussian, CVPR 2025): the first part of the run renders
the training photos scaled down by an integer factor (4 -> 1/16 of the pixels), stepping down to 1 (the
training resolution) at `full_resolution_at` of the run.  On a CPU an iteration at 1/4 of the size costs
about a tenth of a full one (the per-Gaussian work stays), and the coarse iterations fit the scene's
large structure, which is what early iterations do anyway.  The Gaussian count may grow in step with the
resolution (`gaussian_target`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

# Sparse captures (issue 3, NOTES.md): with ~20 photos, the standard method fits the training photos ever
# closer (train PSNR 32-39 dB) while held-out PSNR falls from 2k to 7k iterations.  Dropout plus a budget of
# Gaussians per training view keeps the held-out views 1.6-2.2 dB better at 7k (monstree, 20 training views,
# 80k Gaussians); 4000 per view measured as good as 6000 at 7k at both resolutions, with a third fewer
# Gaussians.  Figures: the trainer's README.
SPARSE_VIEWS = 50
SPARSE_DROPOUT = 0.3
SPARSE_GAUSSIANS_PER_VIEW = 4000
# Gaussian budget (mcmc) or cap (adc) when none is given ("scene detail: auto"): per training view, within these bounds
AUTO_GAUSSIANS_PER_VIEW = 4000
AUTO_BUDGET_MIN = 50_000
AUTO_BUDGET_MAX = 600_000


def resolve_sparse(args, num_train):
    """Turn --sparse/--dropout/--gaussians_per_view/--max_gaussians into the run's dropout rate and Gaussian
    budget (mcmc) or cap (adc); returns whether the sparse-capture regularisation is on.

    --max_gaussians, when given, is the user's "scene detail" and is kept.  Otherwise a sparse capture gets
    `gaussians_per_view` per training view, and any other AUTO_GAUSSIANS_PER_VIEW per view within
    [AUTO_BUDGET_MIN, AUTO_BUDGET_MAX]: on a CPU, densification without a bound (the reference's) can grow
    a few hundred photos' model past what an hour of training can afford."""
    sparse = args.sparse == "on" or (args.sparse == "auto" and num_train < SPARSE_VIEWS)
    if args.dropout is None:
        args.dropout = SPARSE_DROPOUT if sparse else 0.0
    if not args.max_gaussians:
        per_view = args.gaussians_per_view * num_train if sparse and args.gaussians_per_view > 0 else 0
        args.max_gaussians = per_view or min(AUTO_BUDGET_MAX, max(AUTO_BUDGET_MIN, AUTO_GAUSSIANS_PER_VIEW * num_train))
    return sparse


# Reference 3DGS schedule (30,000 iterations)
REF_ITERATIONS = 30000
# Smallest side, in pixels, that a coarse level keeps: below it the photos hold too little to fit.
MIN_LEVEL_SIDE = 100


@dataclass
class Plan:
    iterations: int
    strategy: str
    max_gaussians: int  # the budget (mcmc) or cap (adc); 0 = none
    # adaptive density control (strategy "adc")
    densify_from_iter: int
    densify_until_iter: int
    densification_interval: int
    opacity_reset_interval: int
    # MCMC relocation / growth (strategy "mcmc")
    refine_from_iter: int
    refine_until_iter: int
    refine_every: int
    sh_increase_interval: int
    position_lr_max_steps: int
    position_lr_decay_from: int = 0
    # coarse to fine: (first iteration, downscale factor), factors falling, the last one 1
    levels: tuple = field(default_factory=lambda: ((1, 1),))

    def factor(self, it: int) -> int:
        """Downscale factor of the training images at iteration `it`."""
        f = self.levels[0][1]
        for start, factor in self.levels:
            if it >= start:
                f = factor
        return f

    @property
    def full_resolution_iter(self) -> int:
        return self.levels[-1][0]

    def gaussian_target(self, it: int, initial: int) -> int:
        """How many Gaussians the model may hold at iteration `it` (mcmc): the budget, reached in step with
        the resolution (DashGaussian's rule: initial + (budget - initial) / f^(2 - p), p = the share of
        the coarse phase done), so a coarse image does not get more Gaussians than it can constrain."""
        if not self.max_gaussians:
            return 0
        budget = max(self.max_gaussians, initial)
        f = self.factor(it)
        if f <= 1:
            return budget
        p = min(1.0, it / max(1, self.full_resolution_iter))
        return int(initial + (budget - initial) / f ** (2.0 - p))

    def position_lr(self, it: int, lr_init: float, lr_final: float, delay_mult: float) -> float:
        """The reference's exponential decay of the position learning rate, held at lr_init until
        position_lr_decay_from."""
        from_ = min(self.position_lr_decay_from, self.position_lr_max_steps - 1)
        return expon_lr(max(0, it - from_), lr_init, lr_final, delay_mult, max(1, self.position_lr_max_steps - from_))

    def describe(self) -> str:
        lv = ", ".join(f"1/{f} from {s}" if f > 1 else f"full from {s}" for s, f in self.levels)
        if self.strategy == "mcmc":
            grow = (f"MCMC budget {self.max_gaussians:,} Gaussians, relocation {self.refine_from_iter}.."
                    f"{self.refine_until_iter} every {self.refine_every}")
        else:
            grow = (f"densify {self.densify_from_iter}..{self.densify_until_iter} every {self.densification_interval}"
                    f", opacity reset every {self.opacity_reset_interval}"
                    + (f", at most {self.max_gaussians:,} Gaussians" if self.max_gaussians else ""))
        return (f"{self.iterations} iterations; {grow}; SH degree +1 every {self.sh_increase_interval}; "
                f"resolution {lv}")


def expon_lr(step, lr_init, lr_final, lr_delay_mult=0.01, max_steps=30000, lr_delay_steps=0):
    """Reference get_expon_lr_func."""
    if step < 0 or (lr_init == 0.0 and lr_final == 0.0):
        return 0.0
    if lr_delay_steps > 0:
        delay_rate = lr_delay_mult + (1 - lr_delay_mult) * math.sin(0.5 * math.pi * min(max(step / lr_delay_steps, 0),
                                                                                          1))
    else:
        delay_rate = 1.0
    t = min(max(step / max_steps, 0), 1)
    log_lerp = math.exp(math.log(lr_init) * (1 - t) + math.log(lr_final) * t)
    return delay_rate * log_lerp


def coarse_levels(iterations: int, coarse: int, full_at: float, min_side: int) -> tuple:
    """Levels for a coarse-to-fine run: factors coarse, coarse - 1, ..., 2 share the first `full_at` of the
    iterations equally, then 1.  A factor that would leave the photos' shorter side under MIN_LEVEL_SIDE
    pixels is skipped; coarse <= 1 or full_at <= 0 means the training resolution throughout."""
    coarse = int(coarse)
    while coarse > 1 and min_side / coarse < MIN_LEVEL_SIDE:
        coarse -= 1
    if coarse <= 1 or full_at <= 0:
        return ((1, 1),)
    full = max(2, int(round(full_at * iterations)))
    factors = list(range(coarse, 1, -1))
    levels = [(max(1, int(round(i * full / len(factors)))), f) for i, f in enumerate(factors)]
    levels.append((full, 1))
    return tuple(levels)


def _scaled(explicit, default):
    return default if explicit is None else explicit


def make_plan(args, iterations: int, min_side: int = 10_000) -> Plan:
    """The plan for a run of `iterations` iterations.  `args` holds the command line (None = not given);
    `min_side` is the training photos' shortest side (limits the coarsest level)."""
    n = int(iterations)
    f = min(1.0, n / REF_ITERATIONS)
    # adaptive density control: the reference's steps (densify from 500 every 100, opacity reset every 3000)
    # with densification until half the run; only very short runs (tests, previews of a few hundred
    # iterations) scale the start and the interval down.  Scaling the reset and the interval with the run
    # (a reset every 400 in a 2000-iteration run) cost 0.3 dB held out on monstree (NOTES.md).
    until = _scaled(args.densify_until_iter, int(round(0.5 * n)))
    dfrom = _scaled(args.densify_from_iter, int(min(500, round(0.25 * n))))
    interval = _scaled(args.densification_interval, int(min(100, max(10, round((until - dfrom) / 5.0)))))
    reset = _scaled(args.opacity_reset_interval, 3000)
    # MCMC: gsplat relocates / adds every 100 from 500 to 25,000 of 30,000 (the same short-run rule)
    rfrom = _scaled(args.refine_from_iter, int(min(500, max(1, round(0.25 * n)))))
    runtil = _scaled(args.refine_until_iter, int(round(0.83 * n)))
    revery = _scaled(args.refine_every, int(min(100, max(10, round((runtil - rfrom) / 10.0)))))
    sh_step = _scaled(args.sh_increase_interval, 1000 if f >= 1 else int(max(10, round(1000 * f))))
    lr_steps = _scaled(args.position_lr_max_steps, n)
    levels = coarse_levels(n, args.coarse_to_fine, args.full_resolution_at, min_side)
    # DashGaussian holds the position lr until full resolution: the coarse levels place the Gaussians only
    # roughly, and a decayed lr left too little to refine them at full resolution (monstree, 7000
    # iterations: +0.2 dB held out at 5k, NOTES.md)
    lr_from = _scaled(getattr(args, "position_lr_decay_from", None), levels[-1][0] - 1 if len(levels) > 1 else 0)
    return Plan(iterations=n, strategy=args.strategy, max_gaussians=int(args.max_gaussians or 0),
                densify_from_iter=int(dfrom), densify_until_iter=int(until), densification_interval=int(interval),
                opacity_reset_interval=int(reset), refine_from_iter=int(rfrom), refine_until_iter=int(runtil),
                refine_every=int(revery), sh_increase_interval=int(sh_step), position_lr_max_steps=int(lr_steps),
                position_lr_decay_from=int(lr_from),
                levels=levels)


def plan_cost(plan: Plan, pixels_full: float, initial_gaussians: int, model, start: int = 1,
              end: int | None = None, current_gaussians: int | None = None, factor_cap: int | None = None) -> float:
    """Predicted seconds for iterations start..end of `plan` with the cost model `model` (seconds per
    iteration as a function of pixels and Gaussians), summed in blocks of iterations.  `factor_cap`: the
    run's current downscale factor (the schedule never goes back to a coarser level)."""
    end = plan.iterations if end is None else end
    step = max(10, (end - start + 1) // 400)
    total = 0.0
    cur = current_gaussians if current_gaussians is not None else initial_gaussians
    it = start
    while it <= end:
        k = min(step, end - it + 1)
        fac = plan.factor(it)
        if factor_cap is not None:
            fac = min(fac, factor_cap)
        count = _expected_count(plan, it, initial_gaussians, cur)
        total += k * model(pixels_full / (fac * fac), count)
        it += k
    return total


def _expected_count(plan: Plan, it: int, initial: int, current: int) -> int:
    """Gaussians expected at iteration `it` (never fewer than now): mcmc follows its target; adc is assumed
    to grow linearly to its cap (or 10x the start) by the end of densification."""
    if plan.strategy == "mcmc":
        return max(current, plan.gaussian_target(it, initial) or current)
    cap = plan.max_gaussians or 10 * initial
    if it >= plan.densify_until_iter:
        return max(current, cap)
    p = max(0.0, (it - plan.densify_from_iter) / max(1, plan.densify_until_iter - plan.densify_from_iter))
    return max(current, int(initial + p * (cap - initial)))


@dataclass
class CostModel:
    """Seconds per training iteration with P rendered pixels and N Gaussians:
    k * s * (c0 + c_pix P + c_gauss N + c_pg P N).

    The coefficients are this trainer's CPU figures on the development VM (2 threads; NOTES.md);
    `calibrate` sets the machine's speed factor s from a few timed iterations, and `observe` keeps k, the
    ratio of measured to predicted time over the recent iterations (the machine's load, the strategy's
    own work), so a prediction follows the run."""
    c0: float = 1.0e-3
    c_pix: float = 5.9e-8
    c_gauss: float = 2.4e-7
    c_pg: float = 6.2e-13
    s: float = 1.0
    k: float = 1.0
    window: list = field(default_factory=list)
    sum_seconds: float = 0.0
    sum_unscaled: float = 0.0

    def base(self, pixels: float, gaussians: float) -> float:
        return self.s * (self.c0 + self.c_pix * pixels + self.c_gauss * gaussians + self.c_pg * pixels * gaussians)

    def __call__(self, pixels: float, gaussians: float) -> float:
        return self.k * self.base(pixels, gaussians)

    @property
    def run_factor(self) -> float:
        """This machine's speed factor over all the iterations observed (what the speed profile keeps)."""
        return self.sum_seconds / self.sum_unscaled if self.sum_unscaled > 0 else 0.0

    def calibrate(self, samples) -> None:
        """samples: (pixels, gaussians, seconds) of timed iterations on this machine.  With two or more
        image sizes both the speed factor s and the fixed cost per iteration c0 (the glue around the
        kernels, which dominates small images) are fitted; with one size only s."""
        import statistics
        by_size = {}
        for p, g, t in samples:
            by_size.setdefault((p, g), []).append(t)
        pts = sorted(((p, g, statistics.median(ts)) for (p, g), ts in by_size.items()), key=lambda x: x[0])
        if not pts:
            return
        var = [(self.base(p, g) / self.s - self.c0, t) for p, g, t in pts]  # per-pixel/Gaussian work, seconds
        if len(pts) >= 2 and var[-1][0] > 1.5 * var[0][0]:
            (b0, t0), (b1, t1) = var[0], var[-1]
            s = (t1 - t0) / (b1 - b0)
            if s > 0:
                c0 = (t0 - s * b0) / s
                self.s = s
                self.c0 = max(c0, 0.0)
                return
        pred = sum(self.base(p, g) / self.s for p, g, _ in pts)
        took = sum(t for _, _, t in pts)
        if pred > 0 and took > 0:
            self.s = took / pred

    def observe(self, pixels: float, gaussians: float, seconds: float, keep: int = 100) -> None:
        base = self.base(pixels, gaussians)
        self.sum_seconds += seconds
        self.sum_unscaled += base / self.s
        self.window.append((base, seconds))
        if len(self.window) > keep:
            del self.window[:len(self.window) - keep]
        pred = sum(p for p, _ in self.window)
        if len(self.window) >= 5 and pred > 0:
            self.k = sum(t for _, t in self.window) / pred


def solve_iterations(make, cost_of, low: int, high: int, seconds: float) -> int:
    """The largest n in [low, high] whose plan `make(n)` is predicted (`cost_of(plan)`) to fit in `seconds`
    (bisection: the cost grows with n)."""
    if cost_of(make(low)) > seconds:
        return low
    if cost_of(make(high)) <= seconds:
        return high
    while high - low > max(1, low // 200):
        mid = (low + high) // 2
        if cost_of(make(mid)) <= seconds:
            low = mid
        else:
            high = mid
    return low


def fmt_minutes(sec: float) -> str:
    m, s = divmod(int(math.ceil(sec)), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"
