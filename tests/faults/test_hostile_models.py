"""Findings file (../shared/findings/reliability-2026-12.md), defect 9: hostile or unusual model files exhausted
memory or crashed export. A 378 KB gzip `.spz` declaring 6M splats took 2 GB (a `numpy._ArrayMemoryError`
traceback under a memory limit); `.spz` export of a coordinate of 8,388,608 or more was a `ValueError`
traceback; a log scale of ~89 made `.splat` conversion (and the pipeline's `splat` stage) leak a
`RuntimeWarning` and write infinite scales that the app's own reader refuses. Through the real CLI."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import zstandard
from dataset_builders import render_photos, write_trainer_output

from splatstudio.cli import main as cli
from splatstudio.io.formats import load_splats, save_splats
from splatstudio.io.ply import read_splat_ply, write_splat_ply
from splatstudio.io.splat import read_splat
from splatstudio.model.library import Library
from splatstudio.model.splatcloud import SplatCloud, sh_rest_count

try:
    import resource
except ImportError:  # Windows
    resource = None

MAGIC = 0x5053474E
SPZ_BYTES_PER_SPLAT = 9 + 1 + 3 + 3 + 4 + 3 * 15  # SH degree 3, smallest-three rotations (versions 3 and 4)
ADDRESS_SPACE = 1 << 30


def _cloud(n: int, sh_degree: int = 0, seed: int = 0) -> SplatCloud:
    rng = np.random.default_rng(seed)
    return SplatCloud(positions=rng.normal(0, 1, (n, 3)), scales=rng.normal(-4, 1, (n, 3)),
                      rotations=rng.normal(0, 1, (n, 4)), opacities=rng.normal(2, 1, n),
                      sh_dc=rng.normal(0, 1, (n, 3)), sh_rest=rng.normal(0, 0.1, (n, sh_rest_count(sh_degree), 3)))


def _compressed(compressor, head: bytes, size: int, noise: int = 0) -> bytes:
    """`head`, then `noise` random bytes and zeros up to `size` bytes, through a zlib-style `compressor`
    block by block, so that no test holds the decompressed data."""
    parts = [compressor.compress(head), compressor.compress(np.random.default_rng(0).bytes(noise))]
    zeros = bytes(1 << 22)
    parts += [compressor.compress(zeros[: size - start]) for start in range(noise, size, len(zeros))]
    return b"".join([*parts, compressor.flush()])


def _gzip_spz(n: int, noise: int = 0) -> bytes:
    """A version-3 `.spz` of `n` SH-degree-3 splats that is what its header says (`noise` random bytes, then
    zeros)."""
    header = struct.pack("<IIIBBBB", MAGIC, 3, n, 3, 12, 0, 0)
    return _compressed(zlib.compressobj(9, zlib.DEFLATED, 31), header, n * SPZ_BYTES_PER_SPLAT, noise)


def _zstd_spz(n: int, noise: int) -> bytes:
    """A version-4 `.spz` of `n` SH-degree-3 splats, its positions starting with `noise` random bytes: enough
    for the reference's own bound (file size x 1024 / 9 splats) to let the header's count through."""
    sizes = [9 * n, n, 3 * n, 3 * n, 4 * n, 45 * n]
    chunks = [_compressed(zstandard.ZstdCompressor(level=3).compressobj(), b"", size, noise if i == 0 else 0)
              for i, size in enumerate(sizes)]
    header = struct.pack("<IIIBBBBI12s", MAGIC, 4, n, 3, 12, 0, len(chunks), 32, bytes(12))
    toc = b"".join(struct.pack("<QQ", len(c), s) for c, s in zip(chunks, sizes, strict=True))
    return header + toc + b"".join(chunks)


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def _convert_in_1gb(source: Path, target: Path) -> subprocess.CompletedProcess:
    """`splatstudio convert` in a process of its own, limited to 1 GiB of address space (`ulimit -v`)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}  # thread buffers: not per core
    return subprocess.run([sys.executable, "-m", "splatstudio", "convert", str(source), str(target)],
                          preexec_fn=_limit_address_space, env=env, capture_output=True, text=True, timeout=120)


needs_address_limit = pytest.mark.skipif(resource is None or sys.platform == "darwin",
                                         reason="needs an address-space limit (RLIMIT_AS): macOS does not enforce "
                                                "it, Windows has none")


@needs_address_limit
@pytest.mark.parametrize("container", ["gzip", "zstd"])
def test_an_spz_bomb_is_refused_before_it_takes_memory(tmp_path, container):
    n = 6_000_000  # 1.4 GB decoded: the finding's 378 KB file
    source = tmp_path / f"bomb-{container}.spz"
    source.write_bytes(_gzip_spz(n) if container == "gzip" else _zstd_spz(n, noise=64 << 10))
    assert source.stat().st_size < 400_000
    done = _convert_in_1gb(source, tmp_path / "out.ply")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout and "MemoryError" not in done.stderr
    assert f"error: {source.name}: header claims 6000000 splats" in done.stderr
    assert "decompression bomb" in done.stderr
    assert not (tmp_path / "out.ply").exists()


@needs_address_limit
def test_a_truthful_model_too_large_for_the_memory_left_is_a_message(tmp_path):
    n = 4_000_000  # 0.9 GB decoded; the file is as large as the bomb check asks (one byte per splat)
    source = tmp_path / "big.spz"
    source.write_bytes(_gzip_spz(n, noise=n))
    done = _convert_in_1gb(source, tmp_path / "out.ply")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "error: big.spz: too large to load in the available memory" in done.stderr
    assert not (tmp_path / "out.ply").exists()


def _raise_memory_error(*_args, **_kwargs):
    raise MemoryError("Unable to allocate 68.7 MiB")


@pytest.mark.parametrize("extension", [".ply", ".splat", ".spz", ".compressed.ply"])
def test_every_reader_names_the_file_when_memory_runs_out(tmp_path, capsys, monkeypatch, extension):
    source = tmp_path / f"scene{extension}"
    save_splats(_cloud(300), source)
    monkeypatch.setattr(SplatCloud, "__post_init__", _raise_memory_error)  # every reader builds one
    capsys.readouterr()
    assert cli(["convert", str(source), str(tmp_path / "out.ply")]) == 1
    assert f"error: {source.name}: too large to load in the available memory" in capsys.readouterr().err


def test_truthful_spz_files_still_load(tmp_path, capsys):
    source = tmp_path / "scene.ply"
    cloud = _cloud(50_000, sh_degree=3)
    write_splat_ply(source, cloud)
    assert cli(["convert", str(source), str(tmp_path / "scene.spz")]) == 0
    assert cli(["convert", str(tmp_path / "scene.spz"), str(tmp_path / "back.ply")]) == 0
    np.testing.assert_allclose(read_splat_ply(tmp_path / "back.ply").positions, cloud.positions, atol=2.0**-12)
    # repeated values compress far better than any real scene; a modest count of them is still a model
    (tmp_path / "same.spz").write_bytes(_gzip_spz(200_000))
    assert len(load_splats(tmp_path / "same.spz")) == 200_000


def _far_cloud() -> SplatCloud:
    cloud = _cloud(5000)
    cloud.positions[[7, 11], 0] = [8_388_608.0, -2.0e9]
    return cloud


def _converted(source: Path, target: Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = cli(["convert", str(source), str(target)])
    return code, capsys.readouterr().err


def _assert_spz_refused(code: int, err: str, target: Path) -> None:
    assert code == 1 and "Traceback" not in err
    assert (f"error: {target.name}: 2 of 5000 splats have a coordinate that does not fit the 24-bit SPZ position: "
            "SPZ holds coordinates of magnitude below 8388607.5") in err
    assert sorted(p.name for p in target.parent.iterdir() if p.name != "in") == []


def test_convert_to_spz_names_coordinates_it_cannot_hold(tmp_path, capsys):
    source = tmp_path / "in" / "far.ply"
    source.parent.mkdir()
    write_splat_ply(source, _far_cloud())
    out = tmp_path / "out"
    out.mkdir()
    code, err = _converted(source, out / "far.spz", capsys)
    _assert_spz_refused(code, err, out / "far.spz")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return render_photos(tmp_path_factory.mktemp("sample") / "photos", 4, 160, 120)


def _opened(photos, folder: Path, cloud: SplatCloud, name: str, *extra: str) -> Path:
    """A trainer's model folder holding `cloud`, opened into the library as `name`; its project folder."""
    output = write_trainer_output(folder, photos, None, iterations=(30,), gaussians=10, sh_degree=0)
    write_splat_ply(output / "point_cloud" / "iteration_30" / "point_cloud.ply", cloud)
    assert cli(["open", str(output), "--name", name, *extra]) == 0
    return Library(os.environ["SPLATSTUDIO_LIBRARY"]).get(name).folder


def test_export_to_spz_names_coordinates_it_cannot_hold(photos, tmp_path, capsys):
    _opened(photos, tmp_path / "model", _far_cloud(), "Far")
    out = tmp_path / "out"
    out.mkdir()
    capsys.readouterr()
    code = cli(["export", "Far", "--output", str(out / "far.spz")])
    _assert_spz_refused(code, capsys.readouterr().err, out / "far.spz")


def _huge_scales() -> SplatCloud:
    cloud = _cloud(5000)
    cloud.scales[3] = [100.0, -4.0, -4.0]  # exp(100) overflows float32 (above about 88.72)
    cloud.scales[9, 2] = 89.0
    return cloud


def _assert_largest_float32_scales(path: Path) -> None:
    back = read_splat(path)  # refused infinite scales before
    largest = np.log(np.finfo(np.float32).max)
    assert np.isclose(back.scales.max(axis=1), largest, rtol=1e-6).sum() == 2
    assert (back.scales < 88.0).sum() == back.scales.size - 2


def test_convert_to_splat_holds_scales_beyond_float32_as_the_largest_float32(tmp_path, capsys):
    source = tmp_path / "in" / "huge.ply"
    source.parent.mkdir()
    write_splat_ply(source, _huge_scales())
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # exp's overflow warning reached the user
        code, err = _converted(source, tmp_path / "huge.splat", capsys)
    assert code == 0, err
    _assert_largest_float32_scales(tmp_path / "huge.splat")


def test_the_splat_stage_notes_scales_beyond_float32(photos, tmp_path, capsys):
    folder = _opened(photos, tmp_path / "model", _huge_scales(), "Huge", "--run")
    _assert_largest_float32_scales(folder / "output" / "scene.splat")
    log = (folder / "logs" / "splat.log").read_text()
    assert "RuntimeWarning" not in log
    assert "note: 2 splats have a scale too large for .splat's float32" in log
