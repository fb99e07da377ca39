"""Findings file (../shared/findings/reliability-2026-12.md), defect 14: `open` crashed on deeply nested
`cfg_args` / `transforms.json` / `cameras.json` (RecursionError, MemoryError tracebacks) and printed a 63 MB
line for a 60 MB `source_path`. Each is now a one-line message naming the file, through the real CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from dataset_builders import colmap_model, render_photos, write_nerfstudio, write_trainer_output

from splatstudio.cli import main as cli
from splatstudio.io import colmap
from splatstudio.model.library import Library

DEPTH = 200_000


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return render_photos(tmp_path_factory.mktemp("sample") / "photos", 4, 160, 120)


def _open(path, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli(["open", str(path), "--name", "Hostile"])
    out, err = capsys.readouterr()
    return code, out, err


def _nothing_created() -> bool:
    return Library(os.environ["SPLATSTUDIO_LIBRARY"]).list_projects() == []


@pytest.mark.parametrize("nesting", ["-" * DEPTH + "1", "+".join(["1"] * DEPTH), "[" * DEPTH + "]" * DEPTH])
def test_a_deeply_nested_cfg_args_is_a_message_not_a_crash(photos, tmp_path, capsys, nesting):
    output = write_trainer_output(tmp_path / "output", photos, None, iterations=(30,), gaussians=50, sh_degree=0)
    (output / "cfg_args").write_text(f"Namespace(sh_degree=0, source_path={nesting})")
    code, out, err = _open(output, capsys)
    assert "Traceback" not in err and "RecursionError" not in err and "MemoryError" not in err
    assert code in (0, 1), err
    if code == 1:
        assert "cfg_args" in err and len(err) < 2000


def test_a_huge_source_path_is_cut_short_in_every_message(photos, tmp_path, capsys):
    output = write_trainer_output(tmp_path / "output", photos, None, iterations=(30,), gaussians=50, sh_degree=0)
    (output / "cfg_args").write_text(f"Namespace(sh_degree=0, source_path='{'x' * 600_000}')")
    code, out, err = _open(output, capsys)
    assert code == 0, err
    assert len(out) + len(err) < 5000 and "Traceback" not in err
    (output / "cfg_args").write_text(f"Namespace(sh_degree=0, source_path='{'x' * 3_000_000}')")  # beyond any cfg_args
    code, out, err = _open(output, capsys)
    assert len(out) + len(err) < 5000 and "Traceback" not in err


def test_a_deeply_nested_transforms_or_cameras_json_names_the_file(photos, tmp_path, capsys):
    source = write_nerfstudio(tmp_path / "ns", photos)
    (source / "transforms.json").write_text("[" * DEPTH + "]" * DEPTH)
    code, out, err = _open(source, capsys)
    assert code == 1 and "transforms.json" in err and "nested too deeply" in err and "Traceback" not in err
    assert _nothing_created()

    output = write_trainer_output(tmp_path / "output", photos, None, iterations=(30,), gaussians=50, sh_degree=0)
    (output / "cameras.json").write_text(json.dumps([]).replace("[]", "[" * DEPTH + "]" * DEPTH))
    code, out, err = _open(output, capsys)
    assert code == 1 and "cameras.json" in err and "nested too deeply" in err and "Traceback" not in err
    assert _nothing_created()


@pytest.mark.parametrize("outside", ["../secret_outside.jpg", "ABSOLUTE"])
def test_a_colmap_model_cannot_import_files_from_outside_its_dataset(photos, tmp_path, capsys, outside):
    """Findings file, minor items: image names that are absolute or start with ../ hard-linked files from
    outside the dataset into the library."""
    secret = tmp_path / "secret_outside.jpg"
    secret.write_bytes((photos.folder / photos.cameras[0].name).read_bytes())
    dataset = tmp_path / "dataset"
    (dataset / "images").mkdir(parents=True)
    for cam in photos.cameras:
        (dataset / "images" / cam.name).write_bytes((photos.folder / cam.name).read_bytes())
    model = colmap_model(photos)
    first = min(model.images)
    model.images[first].name = str(secret) if outside == "ABSOLUTE" else outside
    colmap.write_model(model, dataset / "sparse" / "0", binary=True)
    code, out, err = _open(dataset, capsys)
    assert code == 1 and "points outside" in err and "images.bin" in err and "Traceback" not in err
    assert _nothing_created()
    library = os.environ["SPLATSTUDIO_LIBRARY"]
    assert not [p for p in Path(library).rglob("secret_outside.jpg")]
