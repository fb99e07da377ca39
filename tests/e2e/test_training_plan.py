"""One owner for the training schedule: the argv the app builds for a project reaches the real trainer, whose
plan (`train.py --plan`) is its own schedule scaled to the run, except for what the user set."""

from __future__ import annotations

import json
import subprocess

import pytest
from dataset_builders import render_photos, write_colmap_folder

from splatstudio.model.settings import Settings, preset
from splatstudio.pipeline.train import trainer_command

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plan")
    write_colmap_folder(folder / "colmap", render_photos(folder / "photos", 10, 160, 120))
    return folder / "colmap"


def _plan(settings: Settings, source, tmp_path) -> dict:
    argv = trainer_command(settings.updated({"trainer_backend": "cpu", "trainer_threads": 1}), source,
                           tmp_path / "model", None, ours=True)
    done = subprocess.run([*argv, "--plan"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("key, n, until, interval, reset", [
    ("fast", 2000, 1000, 100, 3000),
    ("balanced", 7000, 3500, 100, 3000),
    ("quality", 30000, 15000, 100, 3000),
])
def test_a_preset_trains_on_the_trainers_own_schedule(dataset, tmp_path, key, n, until, interval, reset):
    plan = _plan(Settings().updated(preset(key).values), dataset, tmp_path)
    schedule = plan["schedule"]
    assert plan["iterations"] == n and plan["strategy"] == "adc"
    assert (schedule["densify_from_iter"], schedule["densify_until_iter"], schedule["densification_interval"],
            schedule["opacity_reset_interval"]) == (500, until, interval, reset)
    assert schedule["sh_increase_interval"] == max(10, round(1000 * min(1.0, n / 30000)))


def test_a_value_the_user_set_wins(dataset, tmp_path):
    settings = Settings().updated({"iterations": 2000, "densify_until_iter": 1500, "opacity_reset_interval": 700})
    schedule = _plan(settings, dataset, tmp_path)["schedule"]
    assert (schedule["densify_from_iter"], schedule["densify_until_iter"], schedule["opacity_reset_interval"]) == \
        (500, 1500, 700)
