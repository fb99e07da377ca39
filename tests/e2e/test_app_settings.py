"""Issue 22, item 1: application settings (live preview, log detail, concurrency, sampling) belong to the
application, not to each project: a project follows Preferences and the environment as they are now, stores
none of them, and `--set` of one applies to that command only, with a word on how to keep it."""

from __future__ import annotations

import json
import os

from dataset_builders import render_photos, write_trainer_output

from splatstudio.cli import main as cli
from splatstudio.model import paths
from splatstudio.model.library import Library
from splatstudio.model.project import Project
from splatstudio.model.settings import APP_KEYS, SPEC_BY_KEY, Settings, write_user_file


def test_the_application_settings_are_the_users_for_every_project(tmp_path, capsys, monkeypatch):
    assert set(APP_KEYS) == {"max_concurrent_runs", "live_preview", "gpu_check_interval", "log_level", "executor"}
    photos = render_photos(tmp_path / "images", count=3, width=120, height=90)
    output = write_trainer_output(tmp_path / "output", photos, None, iterations=(30,), gaussians=200, sh_degree=0)
    assert cli(["open", str(output), "--name", "Old", "--run"]) == 0
    project = Library(os.environ["SPLATSTUDIO_LIBRARY"]).get("Old")
    stored = json.loads((project.folder / "project.json").read_text())["settings"]
    assert not set(APP_KEYS) & set(stored)  # none stored
    stored.update(live_preview=False, log_level="ERROR")  # as earlier versions froze them
    meta = json.loads((project.folder / "project.json").read_text())
    meta["settings"] = stored
    (project.folder / "project.json").write_text(json.dumps(meta))
    assert Project(project.folder).settings.live_preview is True  # the default: nobody turned it off

    write_user_file(paths.user_settings_file(), Settings().updated({"live_preview": False}))
    assert Project(project.folder).settings.live_preview is False  # Preferences, now
    monkeypatch.setenv(SPEC_BY_KEY["log_level"].env_var, "WARNING")
    assert Project(project.folder).settings.log_level == "WARNING"  # and the environment
    monkeypatch.delenv(SPEC_BY_KEY["log_level"].env_var)

    capsys.readouterr()
    assert cli(["run", "Old", "--from", "splat", "--set", "log_level=DEBUG", "--set", "iterations=321"]) == 0
    err = capsys.readouterr().err
    assert "log_level is an application setting" in err and "splatstudio settings --set log_level=DEBUG" in err
    stored = json.loads((project.folder / "project.json").read_text())["settings"]
    assert stored["iterations"] == 321 and "log_level" not in stored
    assert "DEBUG" not in paths.user_settings_file().read_text()  # applied to that command only
