"""The run's plan (gstrain/plan.py): one owner for the schedule, the resolution levels, the Gaussian target,
the cost model and time-budget planning (on a fake clock: no timing in these tests)."""
import math
import random

import numpy as np
import pytest
import torch
from gstrain.cli import build_parser
from gstrain.plan import CostModel, coarse_levels, make_plan, plan_cost, resolve_sparse
from gstrain.trainer import TimeBudget


def _args(*argv):
    return build_parser().parse_args(["-s", "src", "-m", "out", *argv])


def test_schedule_is_scaled_to_the_run_unless_given():
    """The reference's densification steps, until half the run; only very short runs scale them down."""
    p = make_plan(_args("--strategy", "adc"), 7000)
    assert (p.densify_from_iter, p.densify_until_iter, p.densification_interval, p.opacity_reset_interval,
            p.sh_increase_interval, p.position_lr_max_steps) == (500, 3500, 100, 3000, 233, 7000)
    p = make_plan(_args("--strategy", "adc"), 2000)
    assert (p.densify_from_iter, p.densify_until_iter, p.densification_interval, p.opacity_reset_interval) == \
        (500, 1000, 100, 3000)
    p = make_plan(_args("--strategy", "adc"), 300)
    assert (p.densify_from_iter, p.densify_until_iter, p.densification_interval) == (75, 150, 15)
    p = make_plan(_args(), 30000)
    assert (p.densify_from_iter, p.densify_until_iter, p.densification_interval, p.opacity_reset_interval,
            p.refine_from_iter, p.refine_until_iter, p.refine_every, p.sh_increase_interval) == \
        (500, 15000, 100, 3000, 500, 24900, 100, 1000)
    # given values are kept as they are, whatever the run's length
    p = make_plan(_args("--densify_from_iter", "50", "--densify_until_iter", "150", "--densification_interval", "30",
                        "--opacity_reset_interval", "3000", "--refine_every", "7"), 2000)
    assert (p.densify_from_iter, p.densify_until_iter, p.densification_interval, p.opacity_reset_interval,
            p.refine_every) == (50, 150, 30, 3000, 7)


def test_position_lr_is_held_until_full_resolution():
    """As DashGaussian: the coarse levels keep the start lr, the decay to the final lr runs at full resolution."""
    p = make_plan(_args(), 7000, min_side=596)
    assert p.full_resolution_iter == 3500 and p.position_lr_decay_from == 3499
    lrs = [p.position_lr(i, 1.6e-4, 1.6e-6, 0.01) for i in (1, 2000, 3499, 5250, 7000)]
    assert lrs[0] == lrs[1] == lrs[2] == pytest.approx(1.6e-4)
    assert lrs[3] == pytest.approx((1.6e-4 * 1.6e-6) ** 0.5, rel=1e-3) and lrs[4] == pytest.approx(1.6e-6)
    flat = make_plan(_args("--coarse_to_fine", "1"), 7000, min_side=596)
    assert flat.position_lr_decay_from == 0
    assert flat.position_lr(3500, 1.6e-4, 1.6e-6, 0.01) == pytest.approx((1.6e-4 * 1.6e-6) ** 0.5, rel=1e-3)


def test_resolution_levels_and_their_image_sizes(tiny_dataset):
    levels = coarse_levels(2000, 4, 0.5, 596)
    assert levels == ((1, 4), (333, 3), (667, 2), (1000, 1))
    p = make_plan(_args(), 2000, min_side=596)
    assert [p.factor(i) for i in (1, 332, 333, 666, 667, 999, 1000, 2000)] == [4, 4, 3, 3, 2, 2, 1, 1]
    assert p.full_resolution_iter == 1000
    # a level whose short side would be under 100 px is skipped; 1 (or nothing coarse) means no schedule
    assert coarse_levels(2000, 4, 0.5, 300) == ((1, 3), (500, 2), (1000, 1))
    assert coarse_levels(2000, 4, 0.5, 150) == ((1, 1),)
    assert coarse_levels(2000, 1, 0.5, 596) == coarse_levels(2000, 4, 0.0, 596) == ((1, 1),)
    # the images and intrinsics at each level (scaled with the image, pixel centres kept)
    from gstrain.dataset import load_scene
    cam = load_scene(tiny_dataset).train[0]
    assert cam.level_size(1) == (64, 64) and cam.level_size(4) == (16, 16) and cam.level_size(3) == (21, 21)
    rc = cam.level_camera(4)
    assert (rc.width, rc.height) == (16, 16)
    assert math.isclose(rc.fx, cam.fx / 4) and math.isclose(rc.cx, cam.cx / 4)
    img = cam.level_pixels(4)
    assert img.shape == (3, 16, 16) and img.dtype == torch.uint8  # held as the photo was decoded
    blocks = cam.pixels.float().reshape(3, 16, 4, 16, 4).mean(dim=(2, 4))  # area average of 4x4 blocks
    assert torch.equal(img, blocks.round().to(torch.uint8))
    assert torch.allclose(cam.level_image(4), img.float() / 255)
    assert cam.level_pixels(4) is img  # made once
    cam.drop_levels(2)
    assert cam.level_pixels(4) is not img


def test_gaussian_target_grows_with_resolution_to_the_budget():
    p = make_plan(_args("--max_gaussians", "80000"), 2000, min_side=596)
    targets = [p.gaussian_target(i, 8700) for i in range(1, 2001)]
    assert all(b >= a for a, b in zip(targets, targets[1:], strict=False))
    assert targets[0] < 0.2 * 80000 and targets[998] < 80000 and targets[999] == 80000 == targets[-1]


@pytest.mark.parametrize("strategy, argv, views, dropout, budget", [
    ("mcmc", [], 20, 0.3, 80_000),  # sparse capture: dropout and 4000 Gaussians per training view
    ("mcmc", ["--max_gaussians", "200000"], 20, 0.3, 200_000),  # the scene-detail dial wins
    ("mcmc", [], 60, 0.0, 240_000),  # dense capture: the automatic budget
    ("mcmc", [], 400, 0.0, 600_000),  # ... within its bounds
    ("mcmc", ["--sparse", "off"], 5, 0.0, 50_000),
])
def test_mcmc_budget(strategy, argv, views, dropout, budget):
    args = _args("--strategy", strategy, *argv)
    resolve_sparse(args, views)
    assert (args.dropout, args.max_gaussians) == (dropout, budget)


def _true_speed(pixels, gaussians):
    """A machine unlike the cost model's prior: 1.7x slower, with 15 ms of fixed cost per iteration."""
    m = CostModel()
    return 0.015 + 1.7 * (m.c_pix * pixels + m.c_gauss * gaussians + m.c_pg * pixels * gaussians)


@pytest.mark.parametrize("minutes", [3, 6, 12])
def test_time_budget_plans_and_replans_to_end_within_ten_percent(minutes):
    """The trainer's use of TimeBudget, replayed on a fake clock whose iterations take `_true_speed` with
    +-15 % noise, the machine getting 30 % slower halfway: the run ends within 10 % of the budget."""
    rng = random.Random(minutes)
    args = _args("--time_budget", str(minutes), "--max_gaussians", "80000")
    W, H, initial, startup, final_save = 794, 596, 8700, 6.0, 1.5

    def make(n):
        return make_plan(args, n, min(W, H))

    cost = CostModel()
    cost.calibrate([(W * H / f ** 2, initial, _true_speed(W * H / f ** 2, initial)) for f in (4, 1, 4, 1)])
    clock = startup
    budget = TimeBudget(60.0 * minutes, 0.0, make, W * H, initial, 200_000, cost)
    plan = make(budget.choose(0, clock, initial, 4))
    first_plan = plan.iterations
    factor, count, it = plan.levels[0][1], initial, 0
    while it < plan.iterations:
        it += 1
        n = budget.replan(it, clock, count, factor)
        if n is not None:
            plan = make(n)
        factor = min(factor, plan.factor(it))
        count = max(count, plan.gaussian_target(it, initial))
        pixels = W * H / factor ** 2
        slow = 1.3 if clock > 30.0 * minutes else 1.0
        dt = _true_speed(pixels, count) * slow * rng.uniform(0.85, 1.15)
        clock += dt
        cost.observe(pixels, count, dt)
        budget.account(dt, 0.0)
    clock += final_save
    assert abs(clock - 60.0 * minutes) <= 0.1 * 60.0 * minutes, (clock, first_plan, plan.iterations)
    assert factor == 1 and count == 80000  # the schedule ran to its end: full resolution, whole budget
    # the final plan, priced at the run's own average speed (the last iterations' k is the slowed machine's), is
    # what the clock says, within the re-plans' changes to the iterations before them
    cost.k = cost.run_factor / cost.s
    assert plan_cost(plan, W * H, initial, cost) == pytest.approx(clock - startup - final_save, rel=0.1)


def test_cost_model_calibration_fits_speed_and_fixed_cost():
    m = CostModel()
    samples = [(p, 9000, _true_speed(p, 9000)) for p in (29_000, 29_000, 473_000, 473_000)]
    m.calibrate(samples)
    for p, g, t in samples:
        assert m(p, g) == pytest.approx(t, rel=0.02)
    assert m.c0 * m.s == pytest.approx(0.015 + 1.7 * 1e-3 * 0, abs=2e-3)  # the fixed cost is found
    for _ in range(50):
        m.observe(473_000, 9000, 2 * _true_speed(473_000, 9000))
    assert m.k == pytest.approx(2.0, rel=0.02) and m.run_factor > 0


def test_estimate_without_a_dataset_needs_no_torch(tmp_path, monkeypatch):
    """`train.py --estimate` answers from the plan and the speed profile, without importing torch."""
    import json
    import os
    import subprocess
    import sys

    from gs_testlib import TRAIN_PY
    monkeypatch.setenv("SPLATSTUDIO_TRAINER_PROFILE", str(tmp_path / "speed.json"))
    env = dict(os.environ)
    code = (f"import runpy, sys; sys.argv = [{TRAIN_PY!r}, '--estimate', '--views', '20', '--width', '794', "
            "'--height', '596', '--iterations', '2000', '--threads', '2', '--detail_steps', '50000', '200000'];\n"
            "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('TORCH', 'torch' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert lines[-1] == "TORCH False"
    est = json.loads(lines[0])
    assert est["iterations"] == 2000 and est["max_gaussians"] == 80000 and est["calibrated"] is False
    assert est["expected_train_sec"] > 0 and est["levels"][0] == [1, 4]
    steps = est["detail_steps"]
    assert steps[0]["sec_per_iter"] < steps[1]["sec_per_iter"] and steps[0]["memory_mb"] < steps[1]["memory_mb"]
    # a measured speed factor (what a training run leaves) scales the answer and says it is calibrated
    from gstrain.estimate import save_speed_factor
    save_speed_factor(est["threads"], 2.0)
    p2 = subprocess.run([sys.executable, TRAIN_PY, "--estimate", "--views", "20", "--width", "794", "--height", "596",
                         "--iterations", "2000", "--threads", "2"], capture_output=True, text=True, env=env, timeout=60)
    est2 = json.loads(p2.stdout)
    assert est2["calibrated"] is True and est2["speed_factor"] == 2.0
    assert est2["expected_train_sec"] == pytest.approx(2 * est["expected_train_sec"], rel=0.01)


def test_sparse_and_dense_adam_agree_on_rows_seen_every_step():
    """Sparse Adam (only the rows that took part) equals dense Adam on Gaussians seen at every step, and
    leaves the others (parameters and moments) untouched."""
    from gstrain.model import Adam
    rng = np.random.default_rng(0)
    n = 50
    p_dense = {"a": torch.tensor(rng.normal(size=(n, 3)), dtype=torch.float32, requires_grad=True),
               "b": torch.tensor(rng.normal(size=(n, 2, 3)), dtype=torch.float32, requires_grad=True)}
    p_sparse = {k: v.detach().clone().requires_grad_(True) for k, v in p_dense.items()}
    lrs = {"a": 0.01, "b": 0.003}
    dense, sparse = Adam(p_dense, lrs), Adam(p_sparse, lrs)
    seen = np.arange(0, n, 2).astype(np.int64)  # even rows are seen at every step
    for _ in range(20):
        rows = np.union1d(seen, rng.choice(np.arange(1, n, 2), 5, replace=False)).astype(np.int64)
        r = torch.from_numpy(rows)
        for k, v in p_dense.items():
            g = torch.zeros_like(v)
            g[r] = torch.tensor(rng.normal(size=(len(rows),) + tuple(v.shape[1:])), dtype=torch.float32)
            v.grad = g
            p_sparse[k].grad = g.clone()
        dense.step(p_dense)
        sparse.step(p_sparse, rows)
    s = torch.from_numpy(seen)
    for k in p_dense:
        assert torch.allclose(p_dense[k].detach()[s], p_sparse[k].detach()[s], atol=1e-7)
        assert torch.allclose(dense.m[k][s], sparse.m[k][s]) and torch.allclose(dense.v[k][s], sparse.v[k][s])
    # rows seen only now and then: dense Adam keeps moving them on their momentum, sparse Adam does not
    odd = torch.arange(1, n, 2)
    assert not torch.allclose(p_dense["a"].detach()[odd], p_sparse["a"].detach()[odd])
