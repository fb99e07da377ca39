"""What to run: the stage order, argv builders, and the resume plan. Pure (no Qt, no processes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from splatstudio.launch import stage_command
from splatstudio.model.project import DONE, STAGE_TITLES, STAGES, Project
from splatstudio.model.stage_table import MEASURED_ITERATIONS, MEASURED_PHOTOS, spec


class PlanError(ValueError):
    """The requested run cannot be planned (unknown stage, nothing imported...)."""


@dataclass(frozen=True)
class RunPlan:
    stages: tuple[str, ...]
    reason: str  # why the run starts where it does, for the log and the CLI

    @property
    def empty(self) -> bool:
        return not self.stages


def stage_argv(stage: str, project_folder: Path, run_id: str | None = None,
               python: str | None = None, executor: str | None = None) -> list[str]:
    """The command line of one stage process: the same for the GUI's QProcess and the CLI (in a bundle, its
    executable runs the stage: see :mod:`splatstudio.launch`). An ``executor`` other than local makes it
    the process that runs the stage on that Ray cluster and follows it (``remote.run_stage_remotely``)."""
    argv = [*stage_command(python), stage, "--project", str(project_folder)]
    if run_id:
        argv += ["--run-id", run_id]
    if executor and executor.strip().lower() != "local":
        argv += ["--executor", executor.strip()]
    return argv


def plan_run(project: Project, from_stage: str | None = None, until: str | None = None) -> RunPlan:
    """Decide which stages to run.

    With ``from_stage`` the run starts there (retry), or earlier if a stage before it lost its result.
    Otherwise it resumes at the first stage that is not done, whose settings changed since it ran (its
    fingerprint differs), or whose result was deleted or changed since; and runs to the end (or ``until``).
    """
    for name in (from_stage, until):
        if name is not None and name not in STAGES:
            raise PlanError(f"unknown stage {name!r}; stages are: {', '.join(STAGES)}")
    last = STAGES.index(until) + 1 if until else len(STAGES)
    settings = project.settings
    records = project.stage_records()
    start = len(STAGES)
    reason = "every stage is done and up to date"
    if from_stage is not None:
        start, reason = STAGES.index(from_stage), f"starting at {STAGE_TITLES[from_stage]} as asked"
    for index, stage in enumerate(STAGES[:start]):
        record = records.get(stage)
        if from_stage is None and (record is None or record.status != DONE):
            state = "not run yet" if record is None else record.status
            start, reason = index, f"{STAGE_TITLES[stage]} is {state}"
            break
        if from_stage is None and record.fingerprint and record.fingerprint != settings.fingerprint(stage):
            start, reason = index, f"settings of {STAGE_TITLES[stage]} changed since it ran"
            break
        problem = project.result_problem(stage, record)
        if problem:
            start, reason = index, f"the result of {STAGE_TITLES[stage]} cannot be used: {problem}"
            break
    stages = STAGES[start:last] if start < last else ()
    if not project.image_names() and any(spec(stage).reads_photos for stage in stages):
        # (a project opened from a trained model alone has no photos yet runs its filter and splat stages)
        raise PlanError(f"project {project.name!r} has no photos yet: import some first")
    return RunPlan(tuple(stages), reason)


def stage_weights(stages: tuple[str, ...], photos: int, iterations: int) -> dict[str, float]:
    """How long each stage runs compared with the others, for an overall progress that moves with the time
    spent (an equal share per stage showed 58 % as a 21-minute training began). From the measured run (the
    stage table's ``seconds``), scaled by what each stage's time grows with (``scales_with``): the photo
    count, its square for matching (every pair is compared), or the iterations; the ratios matter, not the
    seconds."""
    scale = {"photos": max(photos, 1) / MEASURED_PHOTOS, "iterations": max(iterations, 1) / MEASURED_ITERATIONS}
    scale["photo_pairs"] = scale["photos"] ** 2
    return {stage: spec(stage).seconds * scale.get(spec(stage).scales_with, 1.0) for stage in stages}
