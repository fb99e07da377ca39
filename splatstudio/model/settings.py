"""Typed, validated settings: defaults < user file < ``.env`` < ``SPLATSTUDIO_*`` variables < project.

Every setting of the original reconstruction service lives here with its default. A project stores the
full set it was created with (``project.json``), so a run is reproducible whatever the environment says
later; ``splatstudio run NAME --set key=value`` changes a project's copy.

Pure: no Qt. The Preferences dialog and the CLI both read :data:`SPECS` to build their forms and help.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splatstudio.model.stage_table import stages_in_group

ENV_PREFIX = "SPLATSTUDIO_"
# settings that name a program to execute: never from a .env file, and a project's only when the user
# named or approved them (model/programs.py)
PROGRAM_KEYS = ("colmap_path", "trainer_path", "trainer_python")
CAMERA_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(ValueError):
    """A setting has a bad value; the message names the setting and where the value came from."""


@dataclass(frozen=True)
class Spec:
    """One setting: its type, default, limits, help text, and the stages whose results it changes."""

    key: str
    kind: type
    default: Any
    help: str
    group: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    stages: tuple[str, ...] = ()
    special: str | None = None
    """What the minimum value means, shown instead of it (e.g. "auto" for 0)."""
    steps: tuple[int, ...] | None = None
    """Values the window offers in a list (any other value in range is accepted too)."""

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.key.upper()

    @property
    def app_wide(self) -> bool:
        """An application setting (the Application group): it comes from Preferences and the environment for
        every project, and is never stored in one (see ``Project.settings``)."""
        return self.group == "Application"

    @property
    def label(self) -> str:
        """The setting's name in the window: plain words, with its unit."""
        return LABELS[self.key][0]

    @property
    def advanced(self) -> bool:
        """An expert's setting: Preferences shows it under Advanced, below the ones most people change."""
        return LABELS[self.key][1]


_SFM = stages_in_group("Structure from motion")  # the stage table's groups (model/stage_table.py)
_TRAIN = stages_in_group("Training")
_POST = stages_in_group("Post-processing")

SPECS: tuple[Spec, ...] = (
    # Import
    Spec("max_image_size", int, 1600, "Longest side of imported photos in pixels (larger ones are resized).",
         "Import", 64, 20000, stages=("import",)),
    Spec("min_image_size", int, 256, "Photos whose shorter side is below this many pixels are rejected.",
         "Import", 16, 10000, stages=("import",)),
    Spec("original_resolution", bool, False, "Keep photos at their original size (no resizing on import).",
         "Import", stages=("import",)),
    Spec("allowed_extensions", list, ["jpg", "jpeg", "png", "tif", "tiff", "webp", "heic", "heif"],
         "File extensions accepted on import (any case).", "Import", stages=("import",)),
    Spec("max_image_megapixels", float, 120.0,
         "Photos above this many megapixels are refused as possible decompression bombs.", "Import", 1, 1000,
         stages=("import",)),
    Spec("video_frames", int, 0, "Frames taken from each video: its playing time is cut into this many equal "
         "stretches and the sharpest frame of each is kept. auto = 2 a second, at least 20 and at most 150 (a "
         "video with fewer frames gives them all).", "Import", 0, 10_000, stages=("import",), special="auto"),
    # Structure from motion
    Spec("camera_model", str, "SIMPLE_RADIAL", "COLMAP camera model estimated for the photos.", "Structure from motion",
         choices=CAMERA_MODELS, stages=_SFM),
    Spec("sfm_max_image_size", int, 800, "Longest side used for finding features (photos are scaled down for "
         "this step only; camera geometry stays at full size). Larger finds more detail but is slower.",
         "Structure from motion", 256, 20000, stages=_SFM),
    Spec("max_features", int, 8192, "Maximum SIFT features per photo.", "Structure from motion", 256, 65536,
         stages=_SFM),
    Spec("colmap_threads", int, 0, "Threads for feature extraction, matching and mapping (0 = all cores). With 1, "
         "structure from motion is slower, but the same photos and settings give the same cameras every time "
         "(COLMAP's mapper on several threads does not).",
         "Structure from motion", 0, 1024),
    Spec("matcher", str, "auto", "Pair selection: exhaustive (every pair), retrieval (each photo with the photos "
         "that look most like it), sequential (video frames and ordered photos: the next few, plus loop "
         "closure) or auto (exhaustive up to 20 photos, then sequential for video frames and ordered photos, "
         "retrieval otherwise).", "Structure from motion",
         choices=("auto", "exhaustive", "retrieval", "sequential"), stages=_SFM[1:]),
    Spec("sfm_mapper", str, "auto", "Mapper tried first: global (all photos at once), incremental (photo by "
         "photo) or auto (the measured default). The others follow if too few photos are placed.",
         "Structure from motion", choices=("auto", "global", "incremental"), stages=_SFM[2:]),
    Spec("colmap_path", str, "", "Optional external `colmap` executable; empty uses the built-in pycolmap.",
         "Structure from motion", stages=_SFM),
    # Training
    Spec("iterations", int, 7000, "Training iterations (unless a time budget is set).", "Training", 1, 1_000_000,
         stages=_TRAIN),
    Spec("time_budget_minutes", float, 0.0, "Train for about this many minutes on this computer: the trainer plans "
         "the number of iterations from the speed it measures (0 = use the iteration count).", "Training", 0.0,
         10_000.0, stages=_TRAIN, special="off"),
    Spec("scene_detail", int, 0, "How many Gaussians the scene may use (the budget of the MCMC strategy, a cap for "
         "adc). More shows finer detail and costs memory and time per iteration; auto = 4000 per photo, "
         "50,000-600,000.", "Training", 0, 100_000_000, stages=_TRAIN, special="auto",
         steps=(0, 25_000, 50_000, 100_000, 200_000, 400_000, 800_000, 1_600_000, 3_200_000)),
    Spec("training_strategy", str, "adc", "How the Gaussians are placed: adc (the reference's adaptive density "
         "control: clone, split, prune; the scene detail caps the count) or mcmc (a fixed budget of Gaussians, moved "
         "to where they are needed).", "Training", choices=("adc", "mcmc"), stages=_TRAIN),
    Spec("coarse_to_fine", bool, True, "Start training on scaled-down photos and step up to full resolution "
         "(much faster early iterations); off trains at full resolution throughout.", "Training", stages=_TRAIN),
    Spec("densify_from_iter", int, 0, "adc: iteration where densification starts (auto: scaled to the run).",
         "Training", 0, 1_000_000, stages=_TRAIN, special="auto"),
    Spec("densify_until_iter", int, 0, "adc: iteration where densification stops (auto: half the run).", "Training",
         0, 1_000_000, stages=_TRAIN, special="auto"),
    Spec("densification_interval", int, 0, "adc: iterations between densification steps (auto: scaled to the run).",
         "Training", 0, 100_000, stages=_TRAIN, special="auto"),
    Spec("opacity_reset_interval", int, 0, "adc: iterations between opacity resets (auto: scaled to the run).",
         "Training", 0, 1_000_000, stages=_TRAIN, special="auto"),
    Spec("sh_degree", int, 3, "Spherical-harmonics degree of the Gaussians' colour (0-3).", "Training", 0, 3,
         stages=_TRAIN),
    Spec("train_resolution", int, -1, "Training image downscale: 1, 2, 4, 8, or -1 automatic (GPU: width <= 1600 like the "
         "reference; CPU: longest side <= 1000 px).",
         "Training", -1, 8, stages=_TRAIN),
    Spec("trainer_backend", str, "auto", "Rasteriser: auto (CUDA when available), cpu or cuda.", "Training",
         choices=("auto", "cpu", "cuda"), stages=_TRAIN),
    Spec("trainer_threads", int, 0, "CPU trainer threads (0 = all cores).", "Training", 0, 1024),
    Spec("sparse_regularization", str, "auto", "Guard against overfitting when there are few photos: Gaussian "
         "dropout and a budget of Gaussians per photo. auto = on below 50 training photos; off = the standard "
         "method.", "Training", choices=("auto", "on", "off"), stages=_TRAIN),
    Spec("exposure_compensation", bool, True, "Learn a colour correction per photo for differences in exposure "
         "and white balance, so they do not end up in the scene; the scene shows the photos' average exposure.",
         "Training", stages=_TRAIN),
    Spec("eval_holdout", bool, True, "Hold out every 8th photo to measure quality (PSNR/SSIM).", "Training",
         stages=_TRAIN),
    Spec("preview_every", int, 500, "Write a live-preview model every N iterations (0 = never).", "Training",
         0, 1_000_000),
    Spec("trainer_path", str, "", "Trainer `train.py`; empty uses the bundled one. A reference "
         "gaussian-splatting checkout works too.", "Training", stages=_TRAIN),
    Spec("trainer_python", str, "", "Python interpreter for the trainer; empty uses SplatStudio's own.",
         "Training"),
    # Post-processing
    Spec("outlier_k_neighbors", int, 20, "Neighbours in the statistical outlier test.", "Post-processing", 1, 1000,
         stages=_POST),
    Spec("outlier_std_threshold", float, 2.0, "Points farther than mean + this many standard deviations "
         "(of the mean neighbour distance) are removed.", "Post-processing", 0.1, 100.0, stages=_POST),
    Spec("outlier_min_cluster_ratio", float, 0.01, "Disconnected clusters holding less than this share of the "
         "Gaussians are removed (0 disables).", "Post-processing", 0.0, 0.5, stages=_POST),
    # Application
    Spec("max_concurrent_runs", int, 2, "Projects reconstructing at the same time; others wait in the queue.",
         "Application", 1, 64),
    Spec("live_preview", bool, True, "Show the model in the 3D view while it trains (each refresh is drawn "
         "in the background; turn it off to give training every CPU cycle).",
         "Application"),
    Spec("gpu_check_interval", float, 5.0, "Seconds between GPU/CPU samples in the system panel.", "Application",
         0.5, 3600.0),
    Spec("log_level", str, "INFO", "Detail of the logs.", "Application", choices=LOG_LEVELS),
    Spec("executor", str, "local", "Where stages run: local (this computer), auto (the Ray cluster this "
         "computer belongs to) or ray://HOST:PORT (a Ray cluster's client address; needs the cluster extra).",
         "Application"),
)

SPEC_BY_KEY: dict[str, Spec] = {spec.key: spec for spec in SPECS}
APP_KEYS: tuple[str, ...] = tuple(spec.key for spec in SPECS if spec.app_wide)
"""The application settings: Preferences' values for every project (a project stores none of them)."""

# Each setting's label in the window (plain words with the unit) and whether it is an expert's (Advanced).
# Every setting needs one (tests/unit/test_settings.py checks).
LABELS: dict[str, tuple[str, bool]] = {
    "max_image_size": ("Resize photos to at most (pixels, longest side)", False),
    "min_image_size": ("Reject photos smaller than (pixels, shorter side)", True),
    "original_resolution": ("Keep photos at their original size", False),
    "allowed_extensions": ("Photo file types", True),
    "max_image_megapixels": ("Refuse photos larger than (megapixels)", True),
    "video_frames": ("Frames taken from each video (auto: 2 a second, 20-150)", False),
    "camera_model": ("Camera lens model (COLMAP)", True),
    "sfm_max_image_size": ("Photo size for finding features (pixels, longest side)", True),
    "max_features": ("Features per photo (at most)", False),
    "colmap_threads": ("Threads for structure from motion (0 = all cores; 1 = repeatable)", True),
    "matcher": ("Which photo pairs to match", False),
    "sfm_mapper": ("Mapper tried first", True),
    "colmap_path": ("External COLMAP program (empty: built in)", True),
    "iterations": ("Training steps (iterations)", False),
    "time_budget_minutes": ("Training time budget (minutes; off: use the steps)", False),
    "scene_detail": ("Scene detail (Gaussians; auto: from the photos)", False),
    "training_strategy": ("How Gaussians are added (strategy)", True),
    "coarse_to_fine": ("Start on smaller photos (faster first steps)", True),
    "densify_from_iter": ("Densify from step (adc)", True),
    "densify_until_iter": ("Densify until step (adc)", True),
    "densification_interval": ("Densify every (steps, adc)", True),
    "opacity_reset_interval": ("Reset opacity every (steps, adc)", True),
    "sh_degree": ("View-dependent colour (0 = flat, 3 = most)", False),
    "train_resolution": ("Training photo scale (1, 1/2, 1/4, 1/8; -1 = automatic)", True),
    "trainer_backend": ("Train on (CPU, NVIDIA GPU or automatic)", False),
    "trainer_threads": ("Training threads (0 = all cores)", True),
    "sparse_regularization": ("Guard against too few photos", True),
    "exposure_compensation": ("Even out exposure differences between photos", False),
    "eval_holdout": ("Set photos aside to measure quality (every 8th)", False),
    "preview_every": ("Live preview every (steps; 0 = never)", True),
    "trainer_path": ("Trainer program (empty: built in)", True),
    "trainer_python": ("Python for the trainer (empty: SplatStudio's)", True),
    "outlier_k_neighbors": ("Outlier test: neighbours compared", True),
    "outlier_std_threshold": ("Outlier test: remove beyond (standard deviations)", True),
    "outlier_min_cluster_ratio": ("Remove stray clusters smaller than (share of all)", False),
    "max_concurrent_runs": ("Projects reconstructing at once", False),
    "live_preview": ("Show the model while it trains", False),
    "gpu_check_interval": ("System panel refresh (seconds)", True),
    "log_level": ("Log detail", True),
    "executor": ("Run stages on (local, auto or a Ray cluster's ray://HOST:PORT)", True),
}


@dataclass(frozen=True)
class Preset:
    """A named bundle of settings offered when a project is created (window and CLI alike)."""

    name: str
    key: str
    values: dict[str, Any]


PRESETS: tuple[Preset, ...] = (
    Preset("Fast preview", "fast", {"iterations": 2000, "time_budget_minutes": 0.0, "scene_detail": 50_000,
                                    "max_image_size": 1000, "sh_degree": 1}),
    Preset("Balanced", "balanced", {"iterations": 7000, "time_budget_minutes": 0.0, "scene_detail": 0,
                                    "max_image_size": 1600, "sh_degree": 3}),
    Preset("High quality", "quality", {"iterations": 30000, "time_budget_minutes": 0.0, "scene_detail": 0,
                                       "max_image_size": 1600, "sh_degree": 3}),
)
DEFAULT_PRESET = "Balanced"


def preset(name_or_key: str) -> Preset:
    for item in PRESETS:
        if name_or_key.lower() in (item.name.lower(), item.key):
            return item
    raise SettingsError(f"unknown preset {name_or_key!r}; presets: {', '.join(p.key for p in PRESETS)}")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse_text(spec: Spec, text: str) -> Any:
    """Turn the text of an environment variable, ``.env`` line or ``--set`` into the setting's type."""
    raw = text.strip()
    if spec.kind is bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ValueError(f"expected yes/no (true/false, 1/0), got {raw!r}")
    if spec.kind is int:
        try:
            return int(raw.replace("_", ""))
        except ValueError:
            raise ValueError(f"expected a whole number, got {raw!r}") from None
    if spec.kind is float:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
    if spec.kind is list:
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


def coerce(key: str, value: Any, source: str = "value") -> Any:
    """Validate ``value`` for setting ``key`` and return it in the setting's type.

    Raises :class:`SettingsError` naming the setting, the source and the problem.
    """
    source = source.encode("utf-8", "backslashreplace").decode()  # printable, whatever bytes argv held
    spec = SPEC_BY_KEY.get(key)
    if spec is None:
        raise SettingsError(f"unknown setting {key!r} ({source}); known settings: {', '.join(SPEC_BY_KEY)}")
    try:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # a non-UTF-8 byte of the command line (a surrogate escape)
                raise ValueError(f"{value.encode('utf-8', 'backslashreplace').decode()!r} is not UTF-8 text") from None
            if spec.kind is not str:
                value = _parse_text(spec, value)
        value = _check_type(spec, value)
        _check_range(spec, value)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting {key} ({source}): {exc}") from None
    return value


def _check_type(spec: Spec, value: Any) -> Any:
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise TypeError(f"expected yes/no, got {value!r}")
        return value
    if spec.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise TypeError(f"expected a whole number, got {value!r}")
        return value
    if spec.kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"expected a number, got {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"expected a finite number, got {value!r}")
        return float(value)
    if spec.kind is list:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
            raise TypeError(f"expected a list of names, got {value!r}")
        return [v.lower().lstrip(".") for v in value]
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {value!r}")
    return value


def _check_range(spec: Spec, value: Any) -> None:
    if spec.minimum is not None and value < spec.minimum:
        raise ValueError(f"{value} is below the minimum {spec.minimum:g}")
    if spec.maximum is not None and value > spec.maximum:
        raise ValueError(f"{value} is above the maximum {spec.maximum:g}")
    if spec.choices is not None and value not in spec.choices:
        upper = value.upper() if isinstance(value, str) else value
        if upper in spec.choices:
            return
        raise ValueError(f"{value!r} is not one of {', '.join(spec.choices)}")
    if spec.kind is list and not value:
        raise ValueError("the list is empty")


@dataclass(frozen=True)
class Settings:
    """An immutable, fully validated set of values for every :data:`SPECS` entry."""

    values: Mapping[str, Any] = field(default_factory=lambda: {s.key: _copy(s.default) for s in SPECS})

    def __post_init__(self) -> None:
        merged = migrate(self.values)
        missing = [s.key for s in SPECS if s.key not in merged]
        for key in missing:
            merged[key] = _copy(SPEC_BY_KEY[key].default)
        for key, value in list(merged.items()):
            merged[key] = _normalise(key, coerce(key, value))
        _check_consistency(merged)
        object.__setattr__(self, "values", merged)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["values"][key]
        except KeyError:
            raise AttributeError(key) from None

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def to_dict(self) -> dict[str, Any]:
        return {key: _copy(value) for key, value in self.values.items()}

    def updated(self, changes: Mapping[str, Any], source: str = "value") -> Settings:
        """A copy with ``changes`` applied (validated; text values are parsed as for ``--set``)."""
        merged = self.to_dict()
        for key, value in changes.items():
            merged[key] = coerce(key, value, source)
        return Settings(merged)

    def fingerprint(self, stage: str) -> str:
        """Hash of the settings that change the results of ``stage`` (used to decide what to re-run)."""
        relevant = {s.key: self.values[s.key] for s in SPECS if stage in s.stages}
        blob = json.dumps(relevant, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def differences(self, other: Settings) -> dict[str, tuple[Any, Any]]:
        return {k: (other.values[k], v) for k, v in self.values.items() if other.values[k] != v}


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _normalise(key: str, value: Any) -> Any:
    spec = SPEC_BY_KEY[key]
    if spec.choices is not None and isinstance(value, str) and value not in spec.choices:
        return value.upper()
    return value


# Settings that earlier versions stored in project.json and no longer exist, and the schedule values the
# app used to pass to the trainer whatever the run's length (the reference's absolute schedule): a project
# that still has ``max_gaussians`` was made by such a version, and its schedule values that equal those
# defaults become "auto" (0), so the trainer's scaled schedule applies to it as to a new project.
RETIRED = ("max_gaussians",)
_OLD_SCHEDULE_DEFAULTS = {"densify_from_iter": {500}, "densify_until_iter": {1000, 3500, 5000, 15000},
                          "densification_interval": {100}, "opacity_reset_interval": {3000}}
_OLD_MAX_GAUSSIANS_DEFAULT = 2_000_000


def migrate(values: Mapping[str, Any]) -> dict[str, Any]:
    """Stored settings of an earlier version, brought up to date (see RETIRED)."""
    values = dict(values)
    if "max_gaussians" in values:
        old = values.pop("max_gaussians")
        if "scene_detail" not in values and isinstance(old, int) and old not in (0, _OLD_MAX_GAUSSIANS_DEFAULT):
            values["scene_detail"] = old
        for key, defaults in _OLD_SCHEDULE_DEFAULTS.items():
            if values.get(key) in defaults:
                values[key] = 0
    return values


def _check_consistency(values: Mapping[str, Any]) -> None:
    if values["min_image_size"] > values["max_image_size"]:
        raise SettingsError(
            f"setting min_image_size ({values['min_image_size']}) is larger than max_image_size "
            f"({values['max_image_size']}): every photo would be rejected")
    if values["densify_until_iter"] and values["densify_until_iter"] < values["densify_from_iter"]:
        raise SettingsError(
            f"setting densify_until_iter ({values['densify_until_iter']}) is before densify_from_iter "
            f"({values['densify_from_iter']})")
    if values["train_resolution"] not in (-1, 1, 2, 4, 8):
        raise SettingsError(f"setting train_resolution: {values['train_resolution']} is not one of -1, 1, 2, 4, 8")


# ----------------------------------------------------------------------------------------------- sources

def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a ``.env`` file (``KEY=value`` lines, ``#`` comments, optional quotes and ``export``).

    Only ``SPLATSTUDIO_*`` lines are ours: another tool's lines are skipped whatever they hold (no ``=``,
    not UTF-8). A line of ours that names a program to run (:data:`PROGRAM_KEYS`) is refused: a ``.env``
    comes with a downloaded dataset as easily as from the user."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    result: dict[str, str] = {}
    for number, raw in enumerate(data.splitlines(), start=1):
        raw = raw.strip()
        if raw.startswith(b"export "):
            raw = raw[len(b"export "):].lstrip()
        if not raw.startswith(ENV_PREFIX.encode()):
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SettingsError(f"{path}:{number}: not UTF-8 text") from None
        if "=" not in line:
            raise SettingsError(f"{path}:{number}: expected KEY=value, got {line!r}")
        name, value = (part.strip() for part in line.split("=", 1))
        if name[len(ENV_PREFIX):].lower() in PROGRAM_KEYS:
            raise SettingsError(
                f"{path}:{number}: {name} names a program to run, and a .env file may not set one (it could "
                "have come with downloaded files); set it in Preferences, with --set or as an environment "
                "variable, and remove the line")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        result[name] = value
    return result


# SPLATSTUDIO_* variables that are not settings: the library and config folders, the trainer's profiling
# switch, the installer's bin folder.
OTHER_VARIABLES = {"LIBRARY", "CONFIG_DIR", "TRAINER_PROFILE", "BIN_DIR"}


def unknown_variables(env: Mapping[str, str], source: str = "environment variable") -> list[str]:
    """A note for each ``SPLATSTUDIO_*`` name in ``env`` that is no setting (a typo would otherwise be
    ignored without a word), with the closest setting's variable when one is near."""
    import difflib

    settings_vars = {spec.env_var for spec in SPECS}
    notes = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in settings_vars or name[len(ENV_PREFIX):] in OTHER_VARIABLES:
            continue
        key = name[len(ENV_PREFIX):].lower()
        close = difflib.get_close_matches(key, [spec.key for spec in SPECS], n=1, cutoff=0.6)
        notes.append(f"{source} {name} is not a SplatStudio setting and was ignored"
                     + (f" (did you mean {ENV_PREFIX}{close[0].upper()}?)" if close
                        else " (`splatstudio settings` lists them)"))
    return notes


def _from_environment(env: Mapping[str, str], source: str) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name, text in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "LIBRARY":
            continue
        key = name[len(ENV_PREFIX):].lower()
        if key not in SPEC_BY_KEY:
            continue
        changes[key] = coerce(key, text, f"{source} {name}")
    return changes


def read_user_file(path: Path) -> dict[str, Any]:
    """Read the user-level settings file (TOML, one ``key = value`` per setting)."""
    import tomllib

    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise SettingsError(f"{path}:{line}: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):  # tolerate [group] tables
            flat.update(value)
        else:
            flat[key] = value
    return {key: coerce(key, value, str(path)) for key, value in migrate(flat).items()}


def write_user_file(path: Path, settings: Settings) -> None:
    """Write every setting that differs from its default to the TOML user file, atomically."""
    from splatstudio.model.atomic import write_text_atomic

    lines = ["# SplatStudio preferences. Remove a line to go back to the default.", ""]
    for spec in SPECS:
        value = settings.values[spec.key]
        if value != spec.default:
            lines.append(f"{spec.key} = {_toml_value(value)}")
    write_text_atomic(path, "\n".join(lines) + "\n")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    return json.dumps(value)


def load_settings(
    user_file: Path | None = None,
    dotenv: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Effective settings: defaults < ``user_file`` < ``dotenv`` < ``environ`` < ``overrides``."""
    merged: dict[str, Any] = {}
    if user_file is not None and user_file.is_file():
        merged.update(read_user_file(user_file))
    if dotenv is not None and dotenv.is_file():
        merged.update(_from_environment(read_dotenv(dotenv), str(dotenv)))
    merged.update(_from_environment(os.environ if environ is None else environ, "environment variable"))
    for key, value in (overrides or {}).items():
        merged[key] = coerce(key, value, "override")
    return Settings(merged)


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings from the command line into validated values."""
    changes: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SettingsError(f"--set expects key=value, got {item!r}")
        name, text = (part.strip() for part in item.split("=", 1))
        key = name.replace("-", "_").lower()
        changes[key] = coerce(key, text, f"--set {item}")
    return changes
