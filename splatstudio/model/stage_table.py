"""The stage table: every fact about the pipeline's stages, declared once (Meshroom's node descriptions).

One frozen :class:`StageSpec` per stage, in run order, in :data:`TABLE`. Everything else reads it: the
project folder (what a stage writes, clears and stamps: ``model/project.py``), the settings (which ones
change a stage's results: ``model/settings.py``), the approved programs (``model/programs.py``), the plan
(order, which stages read the photos, how long each takes: ``pipeline/plan.py``), the stage process (which
function runs it, what it loads first, whether a stopped attempt goes on: ``pipeline/entry.py``), the Ray
executor (what travels to a worker and back, who asks for a GPU: ``pipeline/transfer.py``,
``pipeline/remote.py``), the CLI's progress and ``show`` (titles, headline figures: ``cli_common.py``) and
the window's stage list, log tabs and report (``ui/``).

**Adding a stage** is one :class:`StageSpec` here and its run function (``StageContext -> figures``) in a
pipeline module: ``run`` names it as ``"module:function"`` (a name, not an import: the table is on the
model floor, below the pipeline; :func:`splatstudio.pipeline.entry.stage_function` resolves it, and
``tests/unit/test_stage_table.py`` checks every name resolves). :func:`register_stage` adds one at run time
(the test's example stage), as Meshroom's ``registerNodeType`` does.

:data:`STAGES`, :data:`STAGE_TITLES`, :data:`STAGE_OUTPUTS` and :data:`STAGE_RESULTS` are live views of the
table (a stage registered later appears in them), so ``from ... import STAGES`` stays right. Pure: no Qt,
nothing of the app.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import overload

IMPORT_TITLE = "Import photos"  # the title of the photo import, which is not a stage but shows in the same places


@dataclass(frozen=True)
class StageSpec:
    """One stage, declared."""

    name: str
    """Its name on the command line, in file names (``stages/<name>.json``, ``logs/<name>.log``) and events."""
    title: str
    """Its name for a person."""
    run: str
    """The function that does its work in the stage process (``StageContext -> figures``), named
    ``"package.module:function"``."""
    group: str = ""
    """The settings group (``Spec.group``) whose settings change its results, when a whole group does."""
    outputs: tuple[str, ...] = ()
    """What it writes (relative to the project): cleared before it runs again, brought back from a worker."""
    results: tuple[str, ...] = ()
    """What later stages and exports read of its outputs: stamped when it finishes, checked before use,
    shipped to a worker running a later stage."""
    reads: tuple[str, ...] = ()
    """What it reads beyond the project's metadata and the earlier stages' results (shipped to a worker)."""
    reads_photos: bool = False
    """It needs imported photos (a project opened from a trained model alone has none)."""
    resumes_from: tuple[str, ...] = ()
    """What a cancelled or interrupted attempt leaves for the next one to go on from (a training's
    checkpoints and curves); empty: a stopped attempt's outputs are removed and it starts afresh."""
    preload: tuple[str, ...] = ()
    """Modules the stage process imports before it installs its SIGTERM handler (pycolmap's glog installs
    its own when it loads)."""
    programs: tuple[str, ...] = ()
    """Settings naming a program this stage runs (checked against the approved list before it starts)."""
    figures: tuple[str, ...] = ()
    """The figures of its result the CLI prints, in order (``quality`` is said from ``test_psnr``)."""
    gpu: bool = False
    """On a Ray cluster with GPUs (and a backend other than cpu), its worker asks for one."""
    seconds: float = 1.0
    """Seconds it took in the measured run (``pipeline/plan.py`` ``stage_weights``)."""
    scales_with: str = ""
    """What its time grows with: ``photos``, ``photo_pairs`` (the square), ``iterations`` or nothing."""

    @property
    def resumes(self) -> bool:
        return bool(self.resumes_from)


_SFM_PROGRAMS = ("colmap_path",)
_SFM_GROUP = "Structure from motion"

TABLE: list[StageSpec] = [
    StageSpec("features", "Feature extraction", "splatstudio.pipeline.sfm:run_features", _SFM_GROUP,
              outputs=("sfm/database.db",), results=("sfm/database.db",), reads=("images",), reads_photos=True,
              preload=("pycolmap",), programs=_SFM_PROGRAMS, figures=("images", "features_mean"),
              seconds=31.0, scales_with="photos"),
    StageSpec("matching", "Feature matching", "splatstudio.pipeline.sfm:run_matching", _SFM_GROUP,
              outputs=("sfm/pairs.txt",),  # the pairs chosen to match (pipeline/pairing.py)
              results=("sfm/database.db",),
              reads=("images",),  # the pairing reads the photos' sequences
              reads_photos=True, preload=("pycolmap",), programs=_SFM_PROGRAMS,
              figures=("matcher", "pairs", "all_pairs", "verified_pairs"), seconds=49.0, scales_with="photo_pairs"),
    StageSpec("mapping", "Sparse reconstruction", "splatstudio.pipeline.sfm:run_mapping", _SFM_GROUP,
              outputs=("sfm/sparse", "sfm/report.json", "output/sparse_points.ply"), results=("sfm/sparse",),
              reads=("images",),  # the diagnosis of unplaced photos reads them
              reads_photos=True, preload=("pycolmap",), programs=_SFM_PROGRAMS,
              figures=("registered", "total", "points", "mean_reprojection_error"), seconds=17.0, scales_with="photos"),
    StageSpec("undistort", "Undistortion", "splatstudio.pipeline.sfm:run_undistort", _SFM_GROUP,
              outputs=("dataset",), results=("dataset",), reads=("images", "sfm/report.json"), reads_photos=True,
              preload=("pycolmap",), programs=_SFM_PROGRAMS, figures=("images", "sizes"),
              seconds=3.0, scales_with="photos"),
    StageSpec("train", "Gaussian Splatting training", "splatstudio.pipeline.train:run_train", "Training",
              outputs=("train",), results=("train/point_cloud",),
              reads_photos=True,  # through dataset/, undistort's result
              resumes_from=("train", "logs/train-curves.jsonl"),  # checkpoints, and the curves so far (TRAIN_CURVES)
              programs=("trainer_path", "trainer_python"),
              figures=("iterations", "num_gaussians", "held_out_views", "test_psnr", "quality", "sec_per_iter_median"),
              gpu=True, seconds=608.0, scales_with="iterations"),
    StageSpec("filter", "Outlier filtering", "splatstudio.pipeline.post:run_filter", "Post-processing",
              outputs=("output/point_cloud.ply", "output/filter.json", "output/thumbnail.png"),  # RESULT_PLY, THUMBNAIL
              results=("output/point_cloud.ply",), figures=("total", "removed", "remaining"), seconds=1.0),
    StageSpec("splat", ".splat conversion", "splatstudio.pipeline.post:run_splat",
              outputs=("output/scene.splat",), results=("output/scene.splat",), figures=("splats", "bytes"),
              seconds=0.3),
]
"""The stages in run order (module docstring). Change it with :func:`register_stage`, never in place."""

MEASURED_PHOTOS, MEASURED_ITERATIONS = 23, 2000
"""The measured run behind ``StageSpec.seconds`` (NOTES, "monstree end to end": 23 photos, 2,000 iterations,
a 2-core CPU)."""


def spec(name: str) -> StageSpec:
    """The stage called ``name``; ``KeyError`` naming the stages there are."""
    for item in TABLE:
        if item.name == name:
            return item
    raise KeyError(f"unknown stage {name!r}; stages are: {', '.join(s.name for s in TABLE)}")


def register_stage(stage: StageSpec, after: str | None = None) -> None:
    """Add ``stage`` to the table, after the stage ``after`` (default: last). ``ValueError`` when a stage of
    that name exists or its title is already another's."""
    if any(item.name == stage.name for item in TABLE) or stage.name == "import":
        raise ValueError(f"a stage called {stage.name!r} exists already")
    if any(item.title == stage.title for item in TABLE):
        raise ValueError(f"the title {stage.title!r} is another stage's")
    at = len(TABLE) if after is None else TABLE.index(spec(after)) + 1
    TABLE.insert(at, stage)


def unregister_stage(name: str) -> None:
    """Remove a stage added by :func:`register_stage`."""
    TABLE.remove(spec(name))


def stages_in_group(group: str) -> tuple[str, ...]:
    """The stages whose results a whole settings ``group`` changes, in order."""
    return tuple(item.name for item in TABLE if item.group == group)


def shared_results() -> set[str]:
    """Results more than one stage writes (``sfm/database.db``): only their presence can be checked."""
    seen: set[str] = set()
    shared = set()
    for item in TABLE:
        for rel in item.results:
            (shared if rel in seen else seen).add(rel)
    return shared


def result_stage(path: str) -> str:
    """The stage that writes the project file ``path`` (``RESULT_PLY``: the filter)."""
    for item in TABLE:
        if path in item.outputs:
            return item.name
    raise KeyError(f"no stage writes {path}")


class _Names(Sequence[str]):
    """The stage names in order, as the table has them now (a tuple's reading operations)."""

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...

    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        names = tuple(item.name for item in TABLE)
        return names[index]

    def __len__(self) -> int:
        return len(TABLE)

    def __iter__(self) -> Iterator[str]:
        return iter([item.name for item in TABLE])

    def __contains__(self, name: object) -> bool:
        return any(item.name == name for item in TABLE)

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, (tuple, list, _Names)) else other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


class _Column(Mapping[str, object]):
    """One column of the table by stage name (``STAGE_TITLES``...), as the table has it now."""

    def __init__(self, field: str, extra: dict[str, object] | None = None):
        self._field = field
        self._extra = extra or {}

    def __getitem__(self, name: str) -> object:
        if name in self._extra:
            return self._extra[name]
        for item in TABLE:
            if item.name == name:
                return getattr(item, self._field)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter([*self._extra, *(item.name for item in TABLE)])

    def __len__(self) -> int:
        return len(self._extra) + len(TABLE)

    def __repr__(self) -> str:
        return repr(dict(self))


STAGES: Sequence[str] = _Names()
"""The stage names in run order."""
STAGE_TITLES: Mapping[str, str] = _Column("title", {"import": IMPORT_TITLE})  # type: ignore[assignment]
"""Each stage's title (and the photo import's)."""
STAGE_OUTPUTS: Mapping[str, tuple[str, ...]] = _Column("outputs")  # type: ignore[assignment]
"""What each stage writes; re-running a stage clears them first."""
STAGE_RESULTS: Mapping[str, tuple[str, ...]] = _Column("results")  # type: ignore[assignment]
"""What later stages and exports read of each stage's outputs (stamped when it finishes)."""
