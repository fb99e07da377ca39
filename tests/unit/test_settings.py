"""Settings: defaults, validation naming the setting, precedence of sources, fingerprints."""

from __future__ import annotations

import pytest

from splatstudio.model.settings import (
    SPECS,
    Settings,
    SettingsError,
    coerce,
    load_settings,
    parse_assignments,
    read_dotenv,
    read_user_file,
    write_user_file,
)


def test_defaults_of_the_original_service():
    s = Settings()
    assert s.iterations == 7000  # the Balanced preset's (the service's 10,000 predates the presets)
    assert s.max_image_size == 1600 and s.min_image_size == 256
    assert s.outlier_k_neighbors == 20 and s.outlier_std_threshold == 2.0
    assert s.max_concurrent_runs == 2
    assert s.allowed_extensions == ["jpg", "jpeg", "png", "tif", "tiff", "webp", "heic", "heif"]
    assert {spec.key for spec in SPECS} >= {
        "densify_until_iter", "densification_interval", "opacity_reset_interval", "camera_model",
        "max_features", "colmap_threads", "outlier_min_cluster_ratio", "gpu_check_interval", "log_level"}


@pytest.mark.parametrize("key, value, words", [
    ("iterations", 0, "below the minimum"),
    ("iterations", "many", "expected a whole number, got 'many'"),
    ("outlier_std_threshold", "lots", "expected a number"),
    ("iterations", 2.5, "whole number"),
    ("max_image_size", 10**9, "above the maximum"),
    ("camera_model", "FISHEYE9", "not one of"),
    ("original_resolution", "perhaps", "yes/no"),
    ("outlier_std_threshold", float("nan"), "finite"),
    ("allowed_extensions", [], "empty"),
    ("no_such_setting", 1, "unknown setting"),
])
def test_bad_values_name_the_setting(key, value, words):
    with pytest.raises(SettingsError) as info:
        coerce(key, value)
    assert key in str(info.value)
    assert words in str(info.value)


def test_cross_field_checks():
    with pytest.raises(SettingsError, match="min_image_size"):
        Settings({"min_image_size": 2000, "max_image_size": 1000})
    with pytest.raises(SettingsError, match="densify_until_iter"):
        Settings({"densify_from_iter": 600, "densify_until_iter": 500})
    with pytest.raises(SettingsError, match="train_resolution"):
        Settings({"train_resolution": 3})


def test_text_values_are_parsed_and_choices_case_insensitive():
    s = Settings().updated({"iterations": "7_000", "original_resolution": "yes", "camera_model": "pinhole",
                            "allowed_extensions": "JPG, .png"})
    assert s.iterations == 7000 and s.original_resolution is True
    assert s.camera_model == "PINHOLE"
    assert s.allowed_extensions == ["jpg", "png"]


def test_precedence_user_file_dotenv_environment_override(tmp_path):
    user = tmp_path / "settings.toml"
    user.write_text("iterations = 100\nmax_features = 1000\nsh_degree = 1\nlog_level = 'DEBUG'\n")
    dotenv = tmp_path / ".env"
    dotenv.write_text("# comment\nexport SPLATSTUDIO_MAX_FEATURES=2000\nSPLATSTUDIO_SH_DEGREE='2'\nOTHER=1\n")
    env = {"SPLATSTUDIO_SH_DEGREE": "3", "SPLATSTUDIO_LIBRARY": "/somewhere", "PATH": "/bin"}
    s = load_settings(user, dotenv, env, overrides={"log_level": "ERROR"})
    assert s.iterations == 100          # user file
    assert s.max_features == 2000       # .env beats the user file
    assert s.sh_degree == 3             # environment beats .env
    assert s.log_level == "ERROR"       # explicit override beats everything


def test_bad_environment_value_names_the_variable():
    with pytest.raises(SettingsError, match="SPLATSTUDIO_ITERATIONS"):
        load_settings(environ={"SPLATSTUDIO_ITERATIONS": "-5"})


def test_bad_dotenv_and_user_file_name_the_file(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("ANOTHER TOOL'S LINE, SKIPPED\nSPLATSTUDIO_THIS LINE HAS NO EQUALS\n")
    with pytest.raises(SettingsError, match=r"\.env:2"):
        read_dotenv(dotenv)
    user = tmp_path / "settings.toml"
    user.write_text("iterations = [\n")
    with pytest.raises(SettingsError, match="settings.toml"):
        read_user_file(user)


def test_user_file_round_trip_keeps_only_changes(tmp_path):
    path = tmp_path / "cfg" / "settings.toml"
    s = Settings().updated({"iterations": 1234, "allowed_extensions": ["jpg"], "original_resolution": True,
                            "outlier_std_threshold": 1.5, "camera_model": "OPENCV"})
    write_user_file(path, s)
    text = path.read_text()
    assert "iterations = 1234" in text and "max_features" not in text
    assert load_settings(path, environ={}).to_dict() == s.to_dict()


def test_fingerprint_tracks_only_relevant_settings():
    base = Settings()
    assert base.fingerprint("train") != base.updated({"iterations": 5}).fingerprint("train")
    assert base.fingerprint("features") == base.updated({"iterations": 5}).fingerprint("features")
    assert base.fingerprint("features") != base.updated({"max_features": 512}).fingerprint("features")
    assert base.fingerprint("filter") == base.updated({"gpu_check_interval": 9}).fingerprint("filter")


def test_parse_assignments():
    assert parse_assignments(["iterations=50", "sh-degree = 1"]) == {"iterations": 50, "sh_degree": 1}
    with pytest.raises(SettingsError, match="key=value"):
        parse_assignments(["iterations"])


def test_schedule_is_left_to_the_trainer_unless_set():
    """The trainer owns the schedule (gstrain/plan.py): the app's schedule settings default to auto (0), no
    preset sets one, and the trainer's argv carries a schedule flag only when the user set it."""
    from pathlib import Path

    from splatstudio.model.settings import PRESETS
    from splatstudio.pipeline.train import trainer_command

    keys = ("densify_from_iter", "densify_until_iter", "densification_interval", "opacity_reset_interval")
    assert all(Settings()[k] == 0 for k in keys)
    assert not any(k in p.values for p in PRESETS for k in keys)
    for item in PRESETS:
        argv = trainer_command(Settings().updated(item.values), Path("/nonexistent"), Path("/tmp/m"), None, True)
        assert not any(f"--{k}" in argv for k in keys), argv
        assert argv[argv.index("--iterations") + 1] == str(item.values["iterations"])
        assert "--time_budget" not in argv
        detail = item.values["scene_detail"]  # the presets set the scene detail (0 = auto: not passed)
        assert (argv[argv.index("--max_gaussians") + 1] == str(detail)) if detail else "--max_gaussians" not in argv
    argv = trainer_command(Settings().updated({"densify_until_iter": 900, "scene_detail": 200_000}),
                           Path("/nonexistent"), Path("/tmp/m"), None, True)
    assert argv[argv.index("--densify_until_iter") + 1] == "900" and "--densify_from_iter" not in argv
    assert argv[argv.index("--max_gaussians") + 1] == "200000"
    # a time budget: the trainer plans the iterations, evaluates every fifth of the budget and at the end
    argv = trainer_command(Settings().updated({"time_budget_minutes": 6}), Path("/nonexistent"), Path("/tmp/m"),
                           None, True)
    assert "--iterations" not in argv and argv[argv.index("--time_budget") + 1] == "6"
    assert argv[argv.index("--eval_every_sec") + 1] == "72" and "--test_iterations" not in argv
    # a reference checkout gets no time budget (it knows none): it trains the iteration count
    argv = trainer_command(Settings().updated({"time_budget_minutes": 6}), Path("/nonexistent"), Path("/tmp/m"),
                           None, False)
    assert "--time_budget" not in argv and "--iterations" in argv


def test_settings_of_an_earlier_version_are_migrated(tmp_path):
    """project.json of a version that stored max_gaussians and passed the reference's absolute schedule: the
    retired key goes (a value set on purpose becomes the scene detail), and the schedule values that were
    those old defaults become auto, so the trainer's scaled schedule applies as for a new project."""
    old = Settings().to_dict()
    del old["scene_detail"]
    old.update(max_gaussians=2_000_000, densify_from_iter=500, densify_until_iter=3500, densification_interval=100,
               opacity_reset_interval=3000)
    s = Settings(old)
    assert "max_gaussians" not in s.values and s.scene_detail == 0
    assert (s.densify_from_iter, s.densify_until_iter, s.densification_interval, s.opacity_reset_interval) == (0,) * 4
    old.update(max_gaussians=300_000, densify_until_iter=1234)
    s = Settings(old)
    assert s.scene_detail == 300_000 and s.densify_until_iter == 1234
    user = tmp_path / "settings.toml"
    user.write_text("max_gaussians = 500000\niterations = 900\n")
    assert read_user_file(user) == {"scene_detail": 500_000, "iterations": 900}


def test_presets_are_valid_and_found_by_name_or_key():
    from splatstudio.model.settings import PRESETS, preset

    for item in PRESETS:
        settings = Settings().updated(item.values)
        assert settings.densify_until_iter <= settings.iterations
    assert preset("fast") is preset("Fast preview")
    with pytest.raises(SettingsError, match="unknown preset"):
        preset("turbo")


def test_every_setting_has_a_plain_label():
    from splatstudio.model.settings import LABELS, SPECS

    assert set(LABELS) == {spec.key for spec in SPECS}
    assert all(spec.label and spec.label[0].isupper() and "_" not in spec.label for spec in SPECS)
    assert not all(spec.advanced for spec in SPECS) and any(spec.advanced for spec in SPECS)
