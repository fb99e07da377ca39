"""Tests for `splatstudio.io.formats`, the extension-based format registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _clouds import random_cloud

from splatstudio.io import formats
from splatstudio.io.errors import FormatError
from splatstudio.io.formats import FORMATS, convert, format_for, load_splats, register_format, save_splats
from splatstudio.model.splatcloud import SplatCloud


def test_known_formats_have_descriptions() -> None:
    assert {".ply", ".splat", ".compressed.ply", ".spz"} <= set(FORMATS)
    for ext, fmt in FORMATS.items():
        assert fmt.extension == ext and ext.startswith(".") and ext == ext.lower()
        assert fmt.description


@pytest.mark.parametrize("name", ["scene.ply", "scene.splat", "SCENE.PLY", "Scene.Splat", "scene.spz",
                                  "scene.compressed.ply"])
def test_save_and_load_dispatch_on_extension(tmp_path: Path, name: str) -> None:
    cloud = random_cloud(20, sh_degree=0)
    path = tmp_path / name
    save_splats(cloud, path)
    back = load_splats(path)
    assert len(back) == 20
    # quantised formats keep positions to their precision (exact for .ply and .splat); records may be reordered
    tolerance = {".spz": 2.0**-12, ".compressed.ply": 1e-2}.get(formats.format_for(path).extension, 0.0)
    distance = np.abs(back.positions[:, None, :] - cloud.positions[None, :, :]).max(axis=2).min(axis=1)
    assert (distance <= tolerance).all()
    expected_size = 20 * 32 if name.lower().endswith(".splat") else None
    if expected_size:
        assert path.stat().st_size == expected_size


def test_options_reach_the_writer(tmp_path: Path) -> None:
    save_splats(random_cloud(5, sh_degree=3), tmp_path / "a.ply", sh_degree=1)
    assert load_splats(tmp_path / "a.ply").sh_degree == 1


@pytest.mark.parametrize(("name", "shown"), [("scene.obj", "'.obj'"), ("scene", "no extension")])
def test_unknown_extension(tmp_path: Path, name: str, shown: str) -> None:
    with pytest.raises(FormatError) as info:
        load_splats(tmp_path / name)
    message = str(info.value)
    assert message.startswith(f"{name}: unknown splat file extension {shown}")
    assert ".ply" in message and ".splat" in message
    with pytest.raises(FormatError, match="unknown splat file extension"):
        save_splats(random_cloud(1), tmp_path / name)


def test_convert_ply_to_splat_and_back(tmp_path: Path) -> None:
    cloud = random_cloud(30, sh_degree=2)
    save_splats(cloud, tmp_path / "in.ply")
    result = convert(tmp_path / "in.ply", tmp_path / "out.splat")
    assert (result.read, result.written) == (30, 30)
    result = convert(tmp_path / "out.splat", tmp_path / "again.ply")
    assert result.written == 30
    again = load_splats(tmp_path / "again.ply")
    assert again.sh_degree == 0
    np.testing.assert_allclose(np.sort(again.positions, axis=0), np.sort(cloud.positions, axis=0))


def test_convert_checks_destination_before_reading(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="'.xyz'"):
        convert(tmp_path / "missing.ply", tmp_path / "out.xyz")


def test_convert_propagates_format_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.splat").write_bytes(b"\0" * 33)
    with pytest.raises(FormatError, match="bad.splat"):
        convert(tmp_path / "bad.splat", tmp_path / "out.ply")
    assert not (tmp_path / "out.ply").exists()


def test_register_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "FORMATS", dict(FORMATS))
    stored: dict[str, SplatCloud] = {}

    def write(path: Path, cloud: SplatCloud) -> None:
        stored[str(path)] = cloud

    register_format("MEM", "in-memory test format", lambda path: stored[str(path)], write)
    assert format_for("x.mem").description == "in-memory test format"
    save_splats(random_cloud(3), tmp_path / "x.mem")
    assert len(load_splats(tmp_path / "x.mem")) == 3
    assert ".mem" not in FORMATS


def test_compressed_ply_by_double_extension_and_by_header(tmp_path: Path) -> None:
    cloud = random_cloud(600, sh_degree=2, seed=7)
    packed = tmp_path / "scene.compressed.ply"
    save_splats(cloud, packed)
    assert format_for(packed).extension == ".compressed.ply"
    # the same bytes under a plain .ply name are recognised by their header
    plain = tmp_path / "renamed.ply"
    plain.write_bytes(packed.read_bytes())
    a, b = load_splats(packed), load_splats(plain)
    assert len(a) == len(b) == 600 and a.sh_degree == b.sh_degree == 2
    np.testing.assert_array_equal(a.positions, b.positions)
    # and a reference PLY converts to it at about a quarter of the size or less
    reference = tmp_path / "reference.ply"
    save_splats(cloud, reference)
    assert convert(reference, tmp_path / "again.compressed.ply").written == 600
    assert (tmp_path / "again.compressed.ply").stat().st_size < reference.stat().st_size / 3
