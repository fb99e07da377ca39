"""Findings file (../shared/findings/reliability-2026-12.md), defects 7, 11 and 13: `delete` took a folder in
the current directory for a library project, `run --set` changed a busy project, `settings --set` wrote a
non-UTF-8 byte that broke the settings file."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from splatstudio.cli import main as cli
from splatstudio.model import paths
from splatstudio.model.library import Library
from splatstudio.model.sample import generate_sample


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return generate_sample(tmp_path_factory.mktemp("photos") / "set", 3, 320, 240, seed=2).directory


def _new(name: str, photos: Path, capsys) -> Library:
    assert cli(["new", name, str(photos), "--set", "min_image_size=200"]) == 0
    capsys.readouterr()
    return Library(os.environ["SPLATSTUDIO_LIBRARY"])


def test_delete_by_name_takes_the_library_project_not_a_folder_here(photos, tmp_path, monkeypatch, capsys):
    library = _new("Throw", photos, capsys)
    project = library.get("Throw")
    backup = tmp_path / "nxws" / "Throw"
    shutil.copytree(project.folder, backup)
    monkeypatch.chdir(backup.parent)
    assert cli(["delete", "Throw", "--yes"]) == 0
    assert not project.folder.exists()
    assert (backup / "project.json").is_file() and (backup / "images").is_dir()  # the backup is untouched
    # a folder outside the library, named as a path, is refused rather than deleted
    assert cli(["delete", "./Throw", "--yes"]) == 1
    assert "not a project of the library" in capsys.readouterr().err
    assert (backup / "project.json").is_file()


def test_delete_with_an_empty_name_inside_a_project_deletes_nothing(photos, monkeypatch, capsys):
    library = _new("Keep", photos, capsys)
    project = library.get("Keep")
    before = sorted(p.name for p in project.folder.rglob("*"))
    monkeypatch.chdir(project.folder)
    assert cli(["delete", "", "--yes"]) == 1
    assert "no project named ''" in capsys.readouterr().err
    assert sorted(p.name for p in project.folder.rglob("*")) == before


def test_a_foreign_project_json_is_not_a_project(photos, capsys):
    library = _new("Mine", photos, capsys)
    foreign = library.folder / "nx"
    foreign.mkdir()
    (foreign / "project.json").write_text(json.dumps({"name": "nx", "targets": {}}))  # an Nx workspace's
    for argv in (["show", "nx"], ["delete", "nx", "--yes"]):
        assert cli(argv) == 1
        err = capsys.readouterr().err
        assert "no project named 'nx'" in err and "Traceback" not in err and "KeyError" not in err
    assert (foreign / "project.json").is_file()
    assert cli(["projects"]) == 0 and "Mine" in capsys.readouterr().out


def test_a_busy_project_is_neither_changed_nor_started_again(photos, capsys):
    library = _new("Busy", photos, capsys)
    project = library.get("Busy")
    settings_before = (project.folder / "project.json").read_text()
    runs_before = sorted(p.name for p in project.path("runs").iterdir())
    fd = project.acquire_lock()  # as a running stage process holds it
    try:
        assert cli(["run", "Busy", "--set", "iterations=50"]) == 1
        err = capsys.readouterr().err
        assert "busy" in err and "settings were not changed" in err
        assert cli(["run", "Busy"]) == 1
        assert "nothing was started" in capsys.readouterr().err
    finally:
        os.close(fd)
    assert (project.folder / "project.json").read_text() == settings_before
    assert sorted(p.name for p in project.path("runs").iterdir()) == runs_before  # no failed run recorded


def test_a_non_utf8_setting_is_refused_and_the_file_stays_usable(capsys):
    assert cli(["settings", "--set", "iterations=1234"]) == 0
    before = paths.user_settings_file().read_bytes()
    capsys.readouterr()
    raw = os.fsdecode(b"colmap_path=/opt/\xff/colmap")  # what argv holds for that byte
    assert cli(["settings", "--set", raw]) == 2
    err = capsys.readouterr().err
    assert "colmap_path" in err and "not UTF-8" in err and "\\udcff" in err
    assert paths.user_settings_file().read_bytes() == before
    assert cli(["settings", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["iterations"] == 1234
