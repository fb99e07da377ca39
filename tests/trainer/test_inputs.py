"""Input validation (clear one-line errors, exit code 1), COLMAP text models, PLY layout, CUDA backend."""
import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from gs_testlib import make_dataset, run_train
from gstrain import colmap
from gstrain.dataset import load_scene
from gstrain.model import GaussianModel
from gstrain.ply import gaussian_attribute_names, read_gaussian_ply
from PIL import Image


def _expect_error(src, tmp_path, *needles):
    p = run_train(["-s", src, "-m", str(tmp_path / "out"), "--iterations", "5", "--progress", "json"], timeout=120)
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


@pytest.fixture
def scene_copy(tiny_dataset, tmp_path):
    dst = str(tmp_path / "scene")
    shutil.copytree(tiny_dataset, dst)
    return dst


def test_missing_sparse(scene_copy, tmp_path):
    shutil.rmtree(os.path.join(scene_copy, "sparse"))
    _expect_error(scene_copy, tmp_path, "missing COLMAP sparse model")


def test_missing_source(tmp_path):
    _expect_error(str(tmp_path / "nope"), tmp_path, "does not exist")


def test_unsupported_camera_model(tmp_path, dataset_factory):
    src = dataset_factory(n_views=3, camera_model="SIMPLE_RADIAL", n_gauss=20, n_points=50)
    _expect_error(src, tmp_path, "SIMPLE_RADIAL", "undistort")


def test_missing_image(scene_copy, tmp_path):
    os.remove(os.path.join(scene_copy, "images", "view_003.png"))
    _expect_error(scene_copy, tmp_path, "missing image file", "view_003.png")


def test_image_size_mismatch(scene_copy, tmp_path):
    p = os.path.join(scene_copy, "images", "view_004.png")
    Image.open(p).resize((60, 64)).save(p)
    _expect_error(scene_copy, tmp_path, "view_004.png", "60x64", "64x64")


def test_exif_orientation_not_applied(scene_copy):
    """A JPEG with an EXIF rotation tag is read as stored (cameras describe the stored pixels)."""
    p = os.path.join(scene_copy, "images", "view_001.png")
    img = Image.open(p).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    img.save(p, format="PNG", exif=exif.tobytes())
    sc = load_scene(scene_copy, 1, False)
    cam = [c for c in sc.train if c.image_name == "view_001"][0]
    assert tuple(cam.image.shape) == (3, 64, 64)
    assert np.allclose(cam.image.permute(1, 2, 0).numpy() * 255, np.asarray(img, np.float32), atol=0.5)


def test_text_model_and_simple_pinhole(dataset_factory):
    src = dataset_factory(n_views=4, text=True, camera_model="SIMPLE_PINHOLE", n_gauss=30, n_points=60)
    assert os.path.isfile(os.path.join(src, "sparse", "0", "cameras.txt"))
    sc = load_scene(src, 2, False)
    assert len(sc.train) == 4 and sc.xyz.shape == (60, 3)
    c = sc.train[0]
    assert (c.width, c.height) == (32, 32) and c.image.shape == (3, 32, 32)
    assert abs(c.fx - 0.95 * 64 / 2) < 1e-9 and c.fx == c.fy


def test_binary_roundtrip_and_split(tiny_dataset):
    cams, imgs, xyz, rgb = colmap.read_model(os.path.join(tiny_dataset, "sparse", "0"))
    assert cams[1].model == "PINHOLE" and len(imgs) == 10 and xyz.shape == (400, 3)
    sc = load_scene(tiny_dataset, -1, True)
    assert [c.image_name for c in sc.test] == ["view_000", "view_008"]
    assert len(sc.train) == 8
    # qvec <-> rotmat round trip
    for im in imgs.values():
        R = colmap.qvec2rotmat(im.qvec)
        assert np.allclose(colmap.qvec2rotmat(colmap.rotmat2qvec(R)), R, atol=1e-9)


def test_ply_layout_roundtrip(tmp_path):
    import plyfile
    for deg in (0, 3):
        m = GaussianModel(deg)
        rng = np.random.default_rng(deg)
        m.create_from_points(rng.normal(size=(50, 3)), rng.integers(0, 255, (50, 3)), 1.0)
        with torch.no_grad():
            for v in m.params.values():
                v.copy_(torch.randn(v.shape, generator=torch.Generator().manual_seed(1)))
        path = str(tmp_path / f"pc{deg}.ply")
        m.save_ply(path)
        nrest = 3 * ((deg + 1) ** 2 - 1)
        ply = plyfile.PlyData.read(path)
        el = ply["vertex"]
        assert [p.name for p in el.properties] == gaussian_attribute_names(nrest)
        assert all(el[p.name].dtype == np.float32 for p in el.properties)
        assert ply.byte_order == "<" and not ply.text
        P = {k: v.detach().numpy() for k, v in m.params.items()}
        assert np.allclose(np.stack([el["x"], el["y"], el["z"]], 1), P["means"])
        assert np.all(el["nx"] == 0)
        assert np.allclose(np.stack([el[f"f_dc_{i}"] for i in range(3)], 1), P["f_dc"][:, 0, :])
        if deg:
            rest = np.stack([el[f"f_rest_{i}"] for i in range(nrest)], 1)
            # channel-major: all R coefficients, then G, then B
            assert np.allclose(rest[:, :15], P["f_rest"][:, :, 0])
            assert np.allclose(rest[:, 15:30], P["f_rest"][:, :, 1])
            assert np.allclose(rest[:, 30:], P["f_rest"][:, :, 2])
        assert np.allclose(el["opacity"], P["opacity_logits"][:, 0])
        assert np.allclose(np.stack([el[f"scale_{i}"] for i in range(3)], 1), P["log_scales"])
        assert np.allclose(np.stack([el[f"rot_{i}"] for i in range(4)], 1), P["quats"])
        back = read_gaussian_ply(path)
        for k in P:
            assert np.allclose(back[k], P[k]), k


def test_densification_and_cap():
    m = GaussianModel(0)
    rng = np.random.default_rng(0)
    m.create_from_points(rng.normal(size=(200, 3)), rng.integers(0, 255, (200, 3)), 1.0)
    m.setup_optimizer()
    with torch.no_grad():
        m.params["log_scales"][:100] = np.log(0.001)  # small -> clone
        m.params["log_scales"][100:] = np.log(0.5)  # large -> split
    m.grad_accum[:] = 1.0
    m.denom[:] = 1.0
    m.densify_and_prune(0.0002, 0.005, 1.0, None)
    assert m.num == 100 * 2 + 100 * 2
    assert m.optimizer.m["means"].shape[0] == m.num
    # split children get scale / 1.6
    assert torch.allclose(torch.exp(m.params["log_scales"][-1]), torch.tensor(0.5 / 1.6), rtol=1e-5)
    m.grad_accum = torch.ones(m.num, 1)
    m.denom = torch.ones(m.num, 1)
    m.densify_and_prune(0.0002, 0.005, 1.0, None, max_gaussians=450)
    assert m.num <= 450
    m.reset_opacity()
    assert float(torch.sigmoid(m.params["opacity_logits"].detach()).max()) <= 0.01 + 1e-6


def _model_with_big_gaussians(n, n_big_world, n_big_screen, seed):
    """n small Gaussians (world scale 0.005, extent 1), the first n_big_world too big in the world
    (scale 0.5 > 0.1 * extent), the next n_big_screen too big on screen (radius 100 px)."""
    m = GaussianModel(0)
    rng = np.random.default_rng(seed)
    m.create_from_points(rng.normal(size=(n, 3)), rng.integers(0, 255, (n, 3)), 1.0)
    m.setup_optimizer()
    with torch.no_grad():
        m.params["log_scales"][:] = np.log(0.005)
        m.params["log_scales"][:n_big_world] = np.log(0.5)
    m.max_radii2D[n_big_world:n_big_world + n_big_screen] = 100.0
    return m


def _count_scale_above(m, value):
    return int((torch.exp(m.params["log_scales"].detach()).max(dim=1).values > value).sum())


def test_capped_densification_splits_big_gaussians_instead_of_deleting_them():
    """At the cap, pruning a Gaussian that is too big opens a hole the capped model cannot refill:
    it is split when a slot is free (freed by a transparent one in the same step), else kept."""
    m = _model_with_big_gaussians(100, 10, 0, seed=1)
    with torch.no_grad():
        m.params["opacity_logits"][90:] = -8.0  # transparent: pruned, their 10 slots reused
    m.grad_accum[:] = 1.0  # every small one is a clone candidate
    m.denom[:] = 1.0
    m.densify_and_prune(0.0002, 0.005, 1.0, max_screen_size=20, max_gaussians=100)
    assert m.num == 100
    scales = torch.exp(m.params["log_scales"].detach()).max(dim=1).values
    # the 10 big ones became 20 children of scale 0.5 / 1.6, nothing else was added
    assert int(torch.isclose(scales, torch.tensor(0.5 / 1.6), rtol=1e-5).sum()) == 20
    assert _count_scale_above(m, 0.4) == 0
    assert m.optimizer.m["means"].shape[0] == m.num
    # no free slot: big ones stay as they are rather than disappear
    m2 = _model_with_big_gaussians(50, 5, 5, seed=2)
    m2.densify_and_prune(0.0002, 0.005, 1.0, max_screen_size=20, max_gaussians=50)
    assert m2.num == 50
    assert _count_scale_above(m2, 0.4) == 5
    # uncapped keeps the reference behaviour: both kinds of big ones are pruned
    m3 = _model_with_big_gaussians(50, 5, 5, seed=3)
    m3.densify_and_prune(0.0002, 0.005, 1.0, max_screen_size=20)
    assert m3.num == 40
    assert _count_scale_above(m3, 0.4) == 0


def test_gaussian_dropout_renders_the_kept_subset_with_compensated_opacity():
    """Dropout as an opacity factor gives the image of the kept subset alone (opacity / (1 - rate)), and
    gradients on the kept Gaussians only."""
    from gs_testlib import look_at
    from gstrain.rasterize import RenderCamera, render
    from gstrain.trainer import GaussianDropout
    m = GaussianModel(1)
    rng = np.random.default_rng(2)
    m.create_from_points(rng.normal(size=(4000, 3)) * 0.5, rng.integers(0, 255, (4000, 3)), 1.0)
    m.active_sh_degree = 1
    d = GaussianDropout(m.num, 0.25, generator=torch.Generator().manual_seed(0))
    kept = torch.nonzero(d.kept).squeeze(1)
    assert 0.72 * 4000 < kept.numel() < 0.78 * 4000
    assert torch.all(d.scale[kept] == 1 / 0.75) and torch.all(d.scale[~d.kept] == 0)
    R, t = look_at(np.array([0.0, -3.0, 0.5]), target=np.zeros(3))
    V = np.eye(4)
    V[:3, :3], V[:3, 3] = R, t
    cam = RenderCamera(torch.tensor(V, dtype=torch.float32), 60.0, 60.0, 40.0, 30.0, 80, 60)
    bg = torch.zeros(3)
    out = render(m, cam, bg, opacity_scale=d.scale)
    w = torch.randn(out["image"].shape, generator=torch.Generator().manual_seed(1))
    (out["image"] * w).sum().backward()
    grads = {k: m.params[k].grad.clone() for k in ("means", "opacity_logits", "f_dc")}
    o = torch.sigmoid(m.params["opacity_logits"].detach()[kept]) / 0.75
    sub = SimpleNamespace(means=m.means.detach()[kept].clone().requires_grad_(True),
                          log_scales=m.log_scales.detach()[kept], quats=m.quats.detach()[kept],
                          opacity_logits=torch.log(o / (1 - o)), sh=m.sh.detach()[kept].clone().requires_grad_(True))
    ref = render(sub, cam, bg, sh_degree=1)
    assert out["image"].abs().sum() > 10
    assert torch.allclose(out["image"], ref["image"], atol=2e-5)
    (ref["image"] * w).sum().backward()
    assert torch.allclose(grads["means"][kept], sub.means.grad, rtol=1e-3, atol=1e-5)
    assert torch.allclose(grads["f_dc"][kept], sub.sh.grad[:, :1], rtol=1e-3, atol=1e-6)
    assert torch.all(grads["means"][~d.kept] == 0) and torch.all(grads["opacity_logits"][~d.kept] == 0)


@pytest.mark.parametrize("argv, views, sparse, dropout, cap", [
    ([], 20, True, 0.3, 80_000),  # a sparse capture: dropout and 4000 Gaussians per training view
    (["--max_gaussians", "200000"], 20, True, 0.3, 200_000),  # an explicit cap (the scene detail) is kept ...
    (["--max_gaussians", "50000"], 20, True, 0.3, 50_000),  # ... lower or higher
    (["--dropout", "0"], 20, True, 0.0, 80_000),
    (["--gaussians_per_view", "0"], 20, True, 0.3, 80_000),  # the automatic bound, 4000 per view
    (["--sparse", "off"], 20, False, 0.0, 80_000),  # the reference's method, with the automatic bound
    ([], 60, False, 0.0, 240_000),  # enough photos: the standard method
    ([], 400, False, 0.0, 600_000),  # the automatic bound's ceiling
    (["--sparse", "on"], 60, True, 0.3, 240_000),
    (["--sparse", "on", "--max_gaussians", "500000"], 60, True, 0.3, 500_000),
])
def test_sparse_capture_regularisation(argv, views, sparse, dropout, cap):
    """adc: the sparse per-view budget and the automatic bound cap densification (mcmc's budget: test_plan.py)."""
    from gstrain.trainer import build_parser, resolve_sparse
    args = build_parser().parse_args(["-s", "src", "-m", "out", "--strategy", "adc"] + argv)
    assert resolve_sparse(args, views) == sparse
    assert (args.dropout, args.max_gaussians) == (dropout, cap)


@pytest.mark.parametrize("argv, message", [
    (["--dropout", "1"], "error: --dropout must be in [0, 1), got 1.0"),
    (["--gaussians_per_view", "-5"], "error: --gaussians_per_view must be 0 (no budget) or more, got -5"),
])
def test_bad_regularisation_values_are_clear_errors(tiny_dataset, tmp_path, argv, message):
    out = tmp_path / "model"
    p = run_train(["-s", tiny_dataset, "-m", str(out), "--iterations", "10"] + argv)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1] == message
    assert not out.exists()  # refused before anything was written


def test_cuda_backend_or_skip():
    from gstrain.raster_cuda import gsplat_available
    ok, why = gsplat_available()
    if not ok:
        pytest.skip(f"the CUDA backend needs an NVIDIA GPU and gsplat (pip install gsplat): {why}")
    from gs_testlib import random_gaussians
    from gstrain.rasterize import RenderCamera, render
    g = random_gaussians(50, 0, 0, torch.float32)
    for k in ("means", "log_scales", "quats", "opacity_logits", "sh"):
        setattr(g, k, getattr(g, k).cuda())
    V = torch.eye(4)
    V[2, 3] = 3.0
    cam = RenderCamera(V, 40.0, 40.0, 32.0, 24.0, 64, 48)
    ref = render(g, RenderCamera(V, 40.0, 40.0, 32.0, 24.0, 64, 48), torch.zeros(3), backend="cpu")["image"]
    out = render(g, cam, torch.zeros(3, device="cuda"), backend="cuda")["image"].cpu()
    assert (out - ref).abs().mean() < 0.02


def test_make_dataset_deterministic(tmp_path):
    a = make_dataset(str(tmp_path / "a"), n_views=2, n_gauss=10, n_points=20)
    b = make_dataset(str(tmp_path / "b"), n_views=2, n_gauss=10, n_points=20)
    ia = np.asarray(Image.open(os.path.join(a, "images", "view_001.png")))
    ib = np.asarray(Image.open(os.path.join(b, "images", "view_001.png")))
    assert np.array_equal(ia, ib)


def test_cuda_backend_without_a_gpu_is_a_one_line_error(tiny_dataset, tmp_path):
    """Asking for --backend cuda where it cannot run names what is missing; `auto` on such a machine
    trains on the CPU (every other test here)."""
    from gstrain.raster_cuda import gsplat_available
    ok, why = gsplat_available()
    if ok:
        pytest.skip("this machine has a CUDA GPU and gsplat: --backend cuda runs here (test_cuda_backend_or_skip)")
    p = run_train(["-s", tiny_dataset, "-m", str(tmp_path / "m"), "--iterations", "5", "--backend", "cuda"])
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1] == f"error: --backend cuda needs a CUDA GPU and the gsplat package ({why})"
