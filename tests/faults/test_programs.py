"""Findings file (../shared/findings/reliability-2026-12.md), defect 8: a `.env` file in the current folder,
or a project folder found on disk, made the CLI run any program. Programs now come only from the user: this
computer's settings (Preferences / the settings file, `SPLATSTUDIO_*` variables) or an explicit `--set`.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from splatstudio.cli import main as cli
from splatstudio.model import programs
from splatstudio.model.library import Library
from splatstudio.model.sample import generate_sample
from splatstudio.model.settings import Settings, SettingsError, load_settings, read_dotenv, read_user_file

PHOTOS = 4


def _evil(folder: Path, marker: Path) -> Path:
    """A program that leaves a marker when it runs (and fails, as a colmap that is not one would)."""
    script = folder / "evil.sh"
    script.write_text(f"#!/bin/sh\necho ran >> '{marker}'\nexit 3\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.fixture()
def download(tmp_path):
    """A downloaded dataset folder: photos, an evil script and (per test) a .env beside them."""
    folder = tmp_path / "dl_dataset"
    generate_sample(folder, PHOTOS, 320, 240, seed=1)
    return folder


@pytest.mark.parametrize("value", ["ABS", "./evil.sh"])
def test_a_dotenv_that_names_a_program_stops_the_command_before_anything_runs(download, monkeypatch, capsys, value):
    marker = download.parent / "PWNED_dotenv"
    script = _evil(download, marker)
    (download / ".env").write_text("# from the dataset's author\nSPLATSTUDIO_COLMAP_PATH="
                                   + (str(script) if value == "ABS" else value) + "\n")
    monkeypatch.chdir(download)
    code = cli(["reconstruct", ".", "--name", "X", "--set", "min_image_size=200"])
    err = capsys.readouterr().err
    assert code == 2
    assert ".env:2" in err and "SPLATSTUDIO_COLMAP_PATH" in err and "names a program" in err
    assert "Traceback" not in err
    assert not marker.exists()
    assert Library(os.environ["SPLATSTUDIO_LIBRARY"]).list_projects() == []  # nothing created either


def test_other_tools_dotenv_lines_are_skipped_and_ours_are_checked(tmp_path):
    env = tmp_path / ".env"
    env.write_bytes(b"NODE_ENV production\nGREETING=gr\xfc\xdf e\nexport SPLATSTUDIO_MAX_FEATURES=1234\n")
    assert read_dotenv(env) == {"SPLATSTUDIO_MAX_FEATURES": "1234"}
    env.write_bytes(b"A=1\nSPLATSTUDIO_LOG_LEVEL=D\xfcBUG\n")
    with pytest.raises(SettingsError, match=r"\.env:2: not UTF-8"):
        read_dotenv(env)
    env.write_text("SPLATSTUDIO_SH_DEGREE 2\n")
    with pytest.raises(SettingsError, match=r"\.env:1: expected KEY=value"):
        read_dotenv(env)
    for key in ("TRAINER_PATH", "TRAINER_PYTHON"):
        env.write_text(f"export SPLATSTUDIO_{key}=/usr/bin/true\n")
        with pytest.raises(SettingsError, match=rf"\.env:1: SPLATSTUDIO_{key} names a program"):
            load_settings(None, env, environ={})


def test_an_undecodable_settings_file_names_the_file_and_line(tmp_path):
    user = tmp_path / "settings.toml"
    user.write_bytes(b"sh_degree = 2\n# caf\xe9\n")
    with pytest.raises(SettingsError, match=r"settings\.toml:2: not UTF-8"):
        read_user_file(user)


def _foreign_project(download, capsys, program: Path) -> str:
    """A project whose project.json names `program` as colmap_path, as a folder copied from elsewhere would."""
    lib = os.environ["SPLATSTUDIO_LIBRARY"]
    assert cli(["new", "Found", str(download), "--set", "min_image_size=200"]) == 0
    project = Library(lib).get("Found")
    meta = json.loads((project.folder / "project.json").read_text())
    meta["settings"]["colmap_path"] = str(program)
    (project.folder / "project.json").write_text(json.dumps(meta))
    capsys.readouterr()
    return "Found"


@pytest.mark.slow
def test_a_project_found_on_disk_runs_its_program_only_once_the_user_names_it(download, tmp_path, capsys):
    marker = tmp_path / "PWNED_project"
    script = _evil(tmp_path, marker)
    name = _foreign_project(download, capsys, script)

    assert cli(["run", name, "--until", "features"]) == 1
    err = capsys.readouterr().err
    assert "not set or approved" in err and str(script) in err and f"--set colmap_path={script}" in err
    assert not marker.exists()

    # the user names it explicitly: it runs (and fails, being no colmap), and stays approved for later runs
    assert cli(["run", name, "--until", "features", "--set", f"colmap_path={script}"]) == 1
    assert marker.read_text().count("ran") == 1
    assert cli(["run", name, "--until", "features"]) == 1
    assert marker.read_text().count("ran") == 2
    assert str(script.resolve()) in programs.approved()


@pytest.mark.slow
def test_this_computers_programs_are_trusted_and_stay_so_after_a_change(download, tmp_path, capsys):
    marker = tmp_path / "ran_by_preferences"
    script = _evil(tmp_path, marker)
    # `splatstudio settings --set` writes the user's file, as Preferences does: its programs are trusted
    assert cli(["settings", "--set", f"colmap_path={script}"]) == 0
    name = _foreign_project(download, capsys, script)
    assert cli(["run", name, "--until", "features"]) == 1
    assert marker.read_text().count("ran") == 1
    # the user moves on to another colmap: the project made with the earlier one still runs it
    assert cli(["settings", "--set", "colmap_path="]) == 0
    assert cli(["run", name, "--until", "features"]) == 1
    assert marker.read_text().count("ran") == 2


def test_check_passes_this_computers_program_and_refuses_an_unknown_one(tmp_path, monkeypatch):
    approved_file = tmp_path / "approved.json"
    project = Settings().updated({"colmap_path": "/opt/x/colmap", "trainer_python": "python3"})
    trusted = Settings().updated({"colmap_path": "/opt/x/../x/colmap"})
    programs.check(project, "features", trusted, approved_file)      # the same program as this computer's
    programs.check(project, "filter", Settings(), approved_file)     # the filter stage runs no program
    with pytest.raises(programs.ProgramNotApproved, match="trainer_python"):
        programs.check(project, "train", trusted, approved_file)
    assert programs.approve({"trainer_python": "python3", "iterations": 5}, approved_file)
    programs.check(project, "train", trusted, approved_file)
    approved_file.write_text("{ damaged")
    assert programs.approved(approved_file) == set()  # a damaged file approves nothing and is rewritten
    assert programs.approve({"colmap_path": "/opt/x/colmap"}, approved_file) == ["/opt/x/colmap"]
