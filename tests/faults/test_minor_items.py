"""Findings file (../shared/findings/reliability-2026-12.md), item 17's minor defects, each through the real
CLI: HEIC photos, a NaN TIFF, PIL's EXIF warning, escape codes and overlong project names, `view` of a
folder, unknown SPLATSTUDIO_* variables, a NaN camera, a lone "Traceback" line for a damaged model, and
"error: Broken pipe" under `| head`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dataset_builders import render_photos, write_trainer_output
from PIL import Image

from splatstudio.cli import main as cli
from splatstudio.model.library import Library


def _cli(*args: str, env: dict[str, str] | None = None, code: str = "") -> subprocess.CompletedProcess:
    """The CLI in its own process; ``code`` runs first (to hide an installed package, as if absent)."""
    command = [sys.executable, "-c", f"import sys; {code or 0}; from splatstudio.cli import main; sys.exit(main())",
               *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


@pytest.fixture()
def heic(tmp_path) -> Path:
    pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif (the optional HEIC reader) is not installed")
    pillow_heif.register_heif_opener()
    folder = tmp_path / "iphone"
    folder.mkdir()
    picture = Image.new("RGB", (320, 240), (200, 40, 90))
    exif = picture.getexif()
    exif[0x0112] = 6  # taken with the phone turned: stored sideways, shown upright
    picture.save(folder / "IMG_0001.HEIC", quality=90, exif=exif.tobytes())
    return folder


def test_heic_photos_are_imported_upright(heic):
    done = _cli("new", "Phone", str(heic), "--set", "min_image_size=200")
    assert done.returncode == 0, done.stderr
    project = Library(os.environ["SPLATSTUDIO_LIBRARY"]).get("Phone")
    [name] = project.image_names()
    with Image.open(project.images_dir / name) as stored:
        assert stored.format == "JPEG" and stored.size == (240, 320)


def test_heic_without_its_reader_says_what_to_install(heic):
    done = _cli("new", "Phone", str(heic), code="sys.modules['pillow_heif'] = None")
    assert done.returncode == 1
    assert "IMG_0001.HEIC: a HEIC/HEIF photo" in done.stdout and "pip install pillow-heif" in done.stdout
    assert "was not kept" in done.stderr


def test_a_tiff_of_nan_is_refused_and_damaged_exif_is_quiet(tmp_path, capsys):
    folder = tmp_path / "odd"
    folder.mkdir()
    Image.fromarray(np.full((240, 320), np.nan, np.float32), "F").save(folder / "nan.tif")
    good = Image.new("RGB", (320, 240), (10, 120, 30))
    good.save(folder / "exif.jpg", exif=b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x05\xff\xff")  # damaged IFD
    done = _cli("new", "Odd", str(folder), "--set", "min_image_size=200")
    assert done.returncode == 0, done.stderr
    assert "nan.tif: no picture in it: every pixel is NaN or infinite" in done.stdout
    assert "1 photo(s) imported" in done.stdout
    assert "Warning" not in done.stderr and "warn" not in done.stderr.lower()


def test_project_names_with_escape_codes_or_too_long_are_refused(capsys):
    assert cli(["new", "Evil\x1b[31mRED\x1b[0m"]) == 1
    assert "cannot contain control characters" in capsys.readouterr().err
    assert cli(["new", "a" * 300]) == 1
    assert "up to 120 characters" in capsys.readouterr().err
    assert not list(Path(os.environ["SPLATSTUDIO_LIBRARY"]).glob("*/project.json"))


def test_a_name_with_escape_codes_from_a_copied_folder_is_printed_harmlessly(capsys):
    assert cli(["new", "Plain"]) == 0
    library = Library(os.environ["SPLATSTUDIO_LIBRARY"])
    meta_path = library.get("Plain").path("project.json")
    meta = json.loads(meta_path.read_text())
    meta["name"] = "Evil\x1b[2J"
    meta_path.write_text(json.dumps(meta))
    capsys.readouterr()
    assert cli(["projects"]) == 0 and cli(["show", "plain"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "Evil\\x1b[2J" in out


def test_view_of_a_folder_says_it_is_a_folder(tmp_path):
    (tmp_path / "scene.ply").mkdir()
    done = _cli("view", str(tmp_path / "scene.ply"), "--screenshot", str(tmp_path / "x.png"))
    assert done.returncode != 0 and "scene.ply: is a folder" in done.stderr


def test_unknown_splatstudio_variables_are_named(tmp_path):
    done = _cli("new", "Env", env={"SPLATSTUDIO_COLMAP_CAMERA_MODEL": "PINHOLE", "SPLATSTUDIO_ITERATION": "5"})
    assert done.returncode == 0
    assert "SPLATSTUDIO_COLMAP_CAMERA_MODEL is not a SplatStudio setting" in done.stderr
    assert "did you mean SPLATSTUDIO_CAMERA_MODEL?" in done.stderr
    assert "did you mean SPLATSTUDIO_ITERATIONS?" in done.stderr


def test_a_nan_camera_is_refused(tmp_path):
    photos = render_photos(tmp_path / "images", count=2)
    output = write_trainer_output(tmp_path / "model", photos, None, iterations=(30,), gaussians=100, sh_degree=0)
    cameras = json.loads((output / "cameras.json").read_text())
    cameras[1]["position"][0] = float("nan")
    (output / "cameras.json").write_text(json.dumps(cameras).replace("NaN", "NaN"))
    done = _cli("view", str(output / "point_cloud/iteration_30/point_cloud.ply"), "--screenshot",
                str(tmp_path / "x.png"), "--size", "64x48", "--camera", f"{output / 'cameras.json'}:1")
    assert done.returncode != 0 and "is not a number (NaN or infinite)" in done.stderr
    assert not (tmp_path / "x.png").exists()


def test_a_damaged_model_fails_its_stage_in_plain_words(tmp_path):
    photos = render_photos(tmp_path / "images", count=2)
    output = write_trainer_output(tmp_path / "model", photos, None, iterations=(30,), gaussians=100, sh_degree=0)
    ply = output / "point_cloud/iteration_30/point_cloud.ply"
    data = bytearray(ply.read_bytes())
    start = data.index(b"end_header\n") + len(b"end_header\n")
    data[start:start + 4] = np.float32(np.nan).tobytes()
    ply.write_bytes(bytes(data))
    done = _cli("open", str(output), "--name", "Damaged", "--run")
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert "Outlier filtering failed: point_cloud.ply: property 'x' holds a non-finite value" in done.stderr


def test_output_into_a_closed_pipe_ends_quietly():
    for name in ("A", "B", "C"):
        assert _cli("new", name).returncode == 0
    command = f"{sys.executable} -m splatstudio settings | head -1; {sys.executable} -m splatstudio projects | head -1"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert done.stderr == ""
