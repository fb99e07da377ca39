"""End-to-end tests of gaussian-splatting/train.py and render.py run as subprocesses (like the app does)."""
import ast
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from gs_testlib import RENDER_PY, TRAIN_PY, json_events, run_train
from gstrain.ply import gaussian_attribute_names

EXPOSURE_COMPARE = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "exposure_compare.py")
FAST = ["--densify_from_iter", "20", "--densify_until_iter", "150", "--densification_interval", "30",
        "--opacity_reset_interval", "1000", "--max_gaussians", "2500", "--progress", "json", "--threads", "2"]


def _ply_header(path):
    with open(path, "rb") as f:
        lines = []
        while True:
            line = f.readline().decode("ascii").strip()
            lines.append(line)
            if line == "end_header":
                return lines


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("model"))
    p = run_train(["-s", tiny_dataset, "-m", out, "--iterations", "300", "--eval", "--test_iterations", "1", "300",
                   "--save_iterations", "100", "--sh_degree", "1", "--preview_every", "100"] + FAST)
    assert p.returncode == 0, p.stderr[-3000:]
    return out, json_events(p.stdout), p


def test_outputs_layout(trained, tiny_dataset):
    out, events, _ = trained
    # cfg_args: the reference's Namespace(...) text
    text = open(os.path.join(out, "cfg_args")).read()
    assert text.startswith("Namespace(")
    call = ast.parse(text, mode="eval").body
    cfg = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    assert cfg["source_path"] == os.path.abspath(tiny_dataset) and cfg["sh_degree"] == 1 and cfg["eval"] is True
    # cameras.json: test cameras first, reference fields
    cams = json.load(open(os.path.join(out, "cameras.json")))
    assert len(cams) == 10
    assert [c["img_name"] for c in cams[:2]] == ["view_000", "view_008"]
    assert [c["id"] for c in cams] == list(range(10))
    for c in cams:
        assert set(c) == {"id", "img_name", "width", "height", "position", "rotation", "fy", "fx"}
        R = np.array(c["rotation"])
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-6)
        assert c["width"] == 64 and c["height"] == 64
    # camera position should be the ring camera centre (radius 4)
    assert abs(np.linalg.norm(np.array(cams[0]["position"])[:2]) - 4.0) < 1e-6
    # input.ply
    hdr = _ply_header(os.path.join(out, "input.ply"))
    assert hdr[1] == "format binary_little_endian 1.0"
    assert [h.split()[-1] for h in hdr if h.startswith("property")] == ["x", "y", "z", "nx", "ny", "nz", "red",
                                                                       "green", "blue"]
    # point clouds at the requested + final iterations
    for it in (100, 300):
        ply = os.path.join(out, "point_cloud", f"iteration_{it}", "point_cloud.ply")
        hdr = _ply_header(ply)
        props = [h.split() for h in hdr if h.startswith("property")]
        assert all(p[1] == "float" for p in props)
        assert [p[2] for p in props] == gaussian_attribute_names(9)  # degree 1 -> 3 * 3 rest coefficients
    assert os.path.isfile(os.path.join(out, "preview", "preview.ply"))
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


def test_progress_events(trained):
    _, events, p = trained
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    start = events[0]
    assert start["num_train"] == 8 and start["num_test"] == 2 and start["width"] == 64 and start["backend"] == "cpu"
    prog = [e for e in events if e["event"] == "progress"]
    assert prog[-1]["iteration"] == 300 and len(prog) >= 29
    for e in prog:
        for k in ("iteration", "loss", "psnr", "num_gaussians", "sec_per_iter", "eta_sec", "peak_rss_mb"):
            assert k in e
    assert {e["iteration"] for e in events if e["event"] == "saved"} == {100, 300}
    assert [e["iteration"] for e in events if e["event"] == "preview"] == [100, 200]
    assert all(line.startswith("{") for line in p.stdout.splitlines() if line.strip())  # stdout stays JSON


def test_convergence(trained):
    """Tiny generated scene: train PSNR must exceed 22 dB after 300 iterations and held-out PSNR must improve."""
    _, events, _ = trained
    prog = [e for e in events if e["event"] == "progress"]
    final_psnr = np.mean([e["psnr"] for e in prog[-3:]])
    assert final_psnr > 22.0, final_psnr
    evals = {e["iteration"]: e for e in events if e["event"] == "eval"}
    assert set(evals) == {1, 300}
    assert evals[300]["psnr"] > evals[1]["psnr"] + 2.0, evals
    assert evals[300]["ssim"] > evals[1]["ssim"]
    done = events[-1]
    assert done["num_gaussians"] <= 2500
    assert done["eval_psnr"] == evals[300]["psnr"]


def test_the_reported_count_is_the_saved_models_when_training_ends_while_densifying(tiny_dataset, tmp_path):
    """Findings file, minor item: with iterations <= densify_until_iter the last iteration densified after the
    save, so the count reported (and shown by the app) was not the saved model's."""
    p = run_train(["-s", tiny_dataset, "-m", str(tmp_path), "--iterations", "60", "--sh_degree", "0"] + FAST)
    assert p.returncode == 0, p.stderr[-3000:]
    done = json_events(p.stdout)[-1]
    header = _ply_header(tmp_path / "point_cloud" / "iteration_60" / "point_cloud.ply")
    saved = next(int(line.split()[2]) for line in header if line.startswith("element vertex"))
    assert done["num_gaussians"] == saved


def test_dropout_run_converges(tiny_dataset, tmp_path):
    """--dropout trains on a random subset each step (densification statistics mapped back to the full
    model): it still converges, and never leaves dropped Gaussians out of the saved model."""
    p = run_train(["-s", tiny_dataset, "-m", str(tmp_path), "--iterations", "300", "--eval", "--test_iterations", "1",
                   "300", "--sh_degree", "1", "--dropout", "0.2"] + FAST)
    assert p.returncode == 0, p.stderr[-3000:]
    events = json_events(p.stdout)
    evals = {e["iteration"]: e for e in events if e["event"] == "eval"}
    assert evals[300]["psnr"] > evals[1]["psnr"] + 2.0, evals
    done = events[-1]
    assert done["train_psnr"] > 22.0, done
    assert 400 < done["num_gaussians"] <= 2500  # grew from the 400 SfM points on the full model's statistics
    start = next(e for e in events if e["event"] == "start")
    assert (start["dropout"], start["max_gaussians"]) == (0.2, 2500)


def test_sparse_capture_is_announced_and_can_be_turned_off(trained, tiny_dataset, tmp_path):
    """The tiny scene has 8 training views, so by default it trains as a sparse capture (the `trained`
    run), and says so; --sparse off trains with the reference's behaviour."""
    _, events, p = trained
    start = next(e for e in events if e["event"] == "start")
    assert (start["num_train"], start["dropout"], start["max_gaussians"]) == (8, 0.3, 2500)
    assert "Sparse capture (8 training views): Gaussian dropout 0.3, at most 2,500 Gaussians" in p.stderr
    off = run_train(["-s", tiny_dataset, "-m", str(tmp_path), "--iterations", "20", "--sparse", "off"] + FAST)
    assert off.returncode == 0, off.stderr[-3000:]
    start = next(e for e in json_events(off.stdout) if e["event"] == "start")
    assert (start["dropout"], start["max_gaussians"]) == (0.0, 2500)
    assert "Sparse capture" not in off.stderr


def test_render_results(trained):
    out, events, _ = trained
    p = subprocess.run([sys.executable, RENDER_PY, "-m", out, "--progress", "json"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.load(open(os.path.join(out, "results.json")))
    assert list(res) == ["ours_300"]
    r = res["ours_300"]
    assert r["num_views"] == 2 and r["LPIPS"] is None
    evals = {e["iteration"]: e for e in events if e["event"] == "eval"}
    assert abs(r["PSNR"] - evals[300]["psnr"]) < 0.05
    assert len(r["per_view"]) == 2
    assert os.path.isfile(os.path.join(out, "test", "ours_300", "renders", "00000.png"))
    assert "LPIPS" in p.stderr


def test_checkpoint_resume(tiny_dataset, tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    args = ["-s", tiny_dataset, "--iterations", "120", "--sh_degree", "1", "--seed", "3"] + FAST
    pa = run_train(["-m", a, "--checkpoint_iterations", "60"] + args)
    assert pa.returncode == 0, pa.stderr[-2000:]
    ck = os.path.join(a, "chkpnt60.pth")
    assert os.path.isfile(ck)
    pb = run_train(["-m", b, "--start_checkpoint", ck] + args)
    assert pb.returncode == 0, pb.stderr[-2000:]
    da = json_events(pa.stdout)[-1]
    eb = json_events(pb.stdout)
    db = eb[-1]
    assert eb[0]["first_iteration"] == 60
    assert da["event"] == db["event"] == "done"
    assert da["num_gaussians"] == db["num_gaussians"]
    assert abs(da["train_psnr"] - db["train_psnr"]) < 0.3, (da["train_psnr"], db["train_psnr"])
    # the per-photo exposures (on by default) are part of the checkpoint, learnt by then, and resumed
    import torch
    saved = torch.load(ck, map_location="cpu", weights_only=False)["extra"]["exposure"]
    assert tuple(saved["delta"].shape) == (10, 3, 4) and float(saved["delta"].abs().max()) > 0
    assert "exp_avg" in saved["optimizer"]["state"][0]


def test_exposure_compensation_on_unevenly_exposed_photos(dataset_factory, tmp_path):
    """Training photos taken at gains 0.7 / 1.3 (the held-out two at 1.0, the training photos' average):
    with the per-photo exposures learnt (the default) the held-out views come out better than with
    --exposure off, which must explain the brightness differences with the Gaussians themselves, and the
    gains learnt move towards the photos' (300 iterations are ~37 steps per photo: not all the way)."""
    gains = [1.0 if i % 8 == 0 else (0.7 if i % 2 else 1.3) for i in range(10)]
    src = dataset_factory(gains=gains, seed=4)
    base = ["-s", src, "--iterations", "300", "--eval", "--test_iterations", "300", "--sh_degree", "1"] + FAST
    on = run_train(["-m", str(tmp_path / "on")] + base)
    off = run_train(["-m", str(tmp_path / "off"), "--exposure", "off"] + base)
    assert on.returncode == 0 and off.returncode == 0, on.stderr[-2000:] + off.stderr[-2000:]
    ev_on, ev_off = json_events(on.stdout), json_events(off.stdout)
    assert ev_on[0]["exposure"] is True and ev_off[0]["exposure"] is False
    p_on = next(e["psnr"] for e in ev_on if e["event"] == "eval")
    p_off = next(e["psnr"] for e in ev_off if e["event"] == "eval")
    assert p_on > p_off + 1.0, (p_on, p_off)
    line = next(x for x in on.stderr.splitlines() if "Exposure gains of the training photos" in x)
    lo, hi = (float(v) for v in line.rsplit(" ", 1)[1].split(".."))
    assert 0.65 < lo < 0.9 and 1.1 < hi < 1.35, line


def test_held_out_views_are_compared_at_their_recorded_exposure(dataset_factory, tmp_path):
    """Photos whose brightness follows the exposure their EXIF records (gain = (exposure / geometric mean)^0.5,
    1/90 s and 1/40 s, the held-out two one of each): the trainer fits that law over the training photos'
    learnt gains and compares each held-out view at its own exposure, which beats the average exposure; it
    saves the law in exposure.json, and render.py measures what the run's evaluation measured, or the
    average exposure when asked."""
    times = [1 / 90 if i in (0, 2, 4, 6, 9) else 1 / 40 for i in range(10)]  # the held-out views are 0 and 8
    gains = [(t * 60) ** 0.5 for t in times]
    src = dataset_factory(gains=gains, exposures=[(t, 100, 2.0) for t in times], seed=4)
    out = str(tmp_path / "m")
    p = run_train(["-s", src, "-m", out, "--iterations", "300", "--eval", "--test_iterations", "300",
                   "--sh_degree", "1", "--checkpoint_iterations", "300"] + FAST)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Exposure recorded (EXIF) for 10 of 10 photos" in p.stderr
    ev = next(e for e in json_events(p.stdout) if e["event"] == "eval")
    assert ev["exposure"] == "recorded" and 0.2 < ev["exposure_law_k"] < 0.7, ev
    assert ev["psnr"] > ev["psnr_average"] + 1.0, ev
    saved = json.load(open(os.path.join(out, "exposure.json")))
    assert saved["law"]["views"] == 8 and saved["law"]["k"] == pytest.approx(ev["exposure_law_k"])
    assert saved["recorded_exposure"]["view_008"] == pytest.approx(100 / 40 / 4)
    assert len(saved["transforms"]) == 8 and "view_008" not in saved["transforms"]
    r = subprocess.run([sys.executable, RENDER_PY, "-m", out, "--no_images", "--threads", "2"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.load(open(os.path.join(out, "results.json")))["ours_300"]
    assert res["exposure"] == "recorded"
    assert res["PSNR"] == pytest.approx(ev["psnr"], abs=1e-3)
    assert res["PSNR_average_exposure"] == pytest.approx(ev["psnr_average"], abs=1e-3)
    assert [v["gain"] < 1 for v in res["per_view"].values()] == [True, False]
    r = subprocess.run([sys.executable, RENDER_PY, "-m", out, "--no_images", "--threads", "2", "--exposure",
                        "average"], capture_output=True, text=True, timeout=300)
    res = json.load(open(os.path.join(out, "results.json")))["ours_300"]
    assert r.returncode == 0 and res["exposure"] == "average" and "gain" not in res["per_view"]["00000.png"]
    assert res["PSNR"] == pytest.approx(ev["psnr_average"], abs=1e-3)
    # the benchmarks' tool for models of earlier trainers (no exposure.json): the law from the checkpoint
    r = subprocess.run([sys.executable, EXPOSURE_COMPARE, out, "--iteration", "300"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    found = json.loads(r.stdout.strip().splitlines()[-1])
    assert found["law"]["k"] == pytest.approx(ev["exposure_law_k"], abs=1e-6)
    assert found["psnr"] == pytest.approx(ev["psnr"], abs=1e-3)
    assert found["psnr_average"] == pytest.approx(ev["psnr_average"], abs=1e-3)


def test_sigterm_saves_checkpoint(tiny_dataset, tmp_path):
    out = str(tmp_path / "m")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, TRAIN_PY, "-s", tiny_dataset, "-m", out, "--iterations", "100000",
                          "--sh_degree", "0"] + FAST, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env)
    lines = []
    try:
        for line in p.stdout:
            lines.append(line)
            ev = json.loads(line)
            if ev["event"] == "progress" and ev["iteration"] >= 20:
                p.send_signal(signal.SIGTERM)
                break
        rest, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    lines += rest.splitlines()
    assert p.returncode == 143, err[-2000:]
    ev = json_events("\n".join(lines))[-1]
    assert ev["event"] == "interrupted"
    assert ev["iteration"] >= 20
    assert os.path.isfile(ev["checkpoint"])
    assert os.path.basename(ev["checkpoint"]) == f"chkpnt{ev['iteration']}.pth"
    assert os.path.isfile(os.path.join(out, "point_cloud", f"iteration_{ev['iteration']}", "point_cloud.ply"))
    # the checkpoint resumes
    it = ev["iteration"]
    q = run_train(["-s", tiny_dataset, "-m", out, "--iterations", str(it + 10), "--sh_degree", "0",
                   "--start_checkpoint", ev["checkpoint"]] + FAST)
    assert q.returncode == 0, q.stderr[-2000:]
    assert json_events(q.stdout)[-1]["iteration"] == it + 10


def test_mcmc_strategy_trains_to_its_budget(tiny_dataset, tmp_path):
    """--strategy mcmc: the count grows 5 % per refinement step to the budget and stays there."""
    p = run_train(["-s", tiny_dataset, "-m", str(tmp_path), "--iterations", "300", "--eval", "--test_iterations", "1",
                   "300", "--sh_degree", "1", "--strategy", "mcmc", "--max_gaussians", "1500", "--refine_every", "5",
                   "--progress", "json", "--threads", "2"])
    assert p.returncode == 0, p.stderr[-3000:]
    events = json_events(p.stdout)
    start = events[0]
    assert (start["strategy"], start["max_gaussians"]) == ("mcmc", 1500)
    counts = [e["num_gaussians"] for e in events if e["event"] == "progress"]
    assert counts[0] == 400 and max(counts) == 1500 == counts[-1]
    assert all(b >= a for a, b in zip(counts, counts[1:], strict=False))
    evals = {e["iteration"]: e["psnr"] for e in events if e["event"] == "eval"}
    assert evals[300] > evals[1] + 2.0, evals


def test_time_budget_run_plans_its_iterations(tiny_dataset, tmp_path):
    """--time_budget: the trainer picks the number of iterations (reported in start, progress and done) and
    evaluates the held-out views at the end.  Timing is checked by the fake-clock test in test_plan.py and by
    benchmarks/time_to_quality.py, not here."""
    p = run_train(["-s", tiny_dataset, "-m", str(tmp_path), "--time_budget", "0.4", "--eval", "--sh_degree", "1",
                   "--progress", "json", "--threads", "2"])
    assert p.returncode == 0, p.stderr[-3000:]
    events = json_events(p.stdout)
    start, done = events[0], events[-1]
    assert start["time_budget_sec"] == 24.0 and start["iterations"] > 0
    assert done["event"] == "done" and done["iteration"] == done["iterations"] and done["time_budget_sec"] == 24.0
    assert any(e["event"] == "eval" and e["iteration"] == done["iteration"] for e in events)
    assert "Plan: " in p.stderr and "time budget" in p.stderr


def test_plan_prints_the_plan_and_writes_nothing(tiny_dataset, tmp_path):
    out = tmp_path / "m"
    p = run_train(["-s", tiny_dataset, "-m", str(out), "--plan", "--iterations", "2000", "--threads", "1"])
    assert p.returncode == 0, p.stderr[-2000:]
    plan = json.loads(p.stdout.strip().splitlines()[-1])
    assert plan["event"] == "plan" and plan["iterations"] == 2000 and plan["strategy"] == "adc"
    assert plan["expected_train_sec"] > 0 and plan["levels"] == [[1, 1]]  # 64-pixel photos: no coarse level
    assert not out.exists()


def test_stop_with_parent_saves_a_checkpoint_when_the_launcher_is_killed(tiny_dataset, tmp_path):
    """Issue 21: the trainer under a killed stage stopped with it on Linux only (PR_SET_PDEATHSIG). With
    --stop_with_parent (the app passes it) it notices on any POSIX system: its parent id changes."""
    import time

    model = tmp_path / "model"
    launcher = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, {TRAIN_PY!r}, '-s', {str(tiny_dataset)!r}, '-m', {str(model)!r},"
        " '--iterations', '100000', '--progress', 'json', '--threads', '1', '--stop_with_parent'],"
        f" stdout=open({str(tmp_path / 'out.jsonl')!r}, 'w'), stderr=subprocess.DEVNULL)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", launcher], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONUNBUFFERED="1"))
    trainer = int(parent.stdout.readline())
    out = tmp_path / "out.jsonl"
    deadline = time.monotonic() + 120
    while '"progress"' not in (out.read_text() if out.exists() else ""):
        assert time.monotonic() < deadline, "the trainer did not start"
        time.sleep(0.2)
    parent.kill()  # like kill -9 of the stage: nothing forwards a signal
    parent.wait()
    deadline = time.monotonic() + 60
    while os.path.exists(f"/proc/{trainer}") and open(f"/proc/{trainer}/stat").read().split()[2] != "Z":
        assert time.monotonic() < deadline, "the trainer runs on after its launcher died"
        time.sleep(0.2)
    events = json_events(out.read_text())
    assert events[-1]["event"] == "interrupted"
    assert os.path.exists(events[-1]["checkpoint"])
