"""How a run ended, said the same way by both runners of a plan: the CLI's (:mod:`splatstudio.pipeline.runner`)
and the window's (:mod:`splatstudio.services.runs`)."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

from splatstudio.pipeline.events import Result


@dataclass
class RunOutcome:
    status: str  # done / failed / cancelled
    stage: str | None = None  # the stage that failed or was cancelled
    message: str = ""
    hint: str = ""
    results: dict[str, Result] = field(default_factory=dict)


def exit_description(code: int) -> str:
    """How a stage process ended, in words: "exit status 3", or "killed (signal 9, SIGKILL)" for the
    negative codes of a process a signal ended."""
    if code >= 0:
        return f"exit status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = "an unknown signal"
    return f"the stage process was killed (signal {-code}, {name})"


def stage_outcome(stage: str, status: str, result: Result | None, last_error: str, code: int,
                  results: dict[str, Result]) -> RunOutcome:
    """The outcome of a run that ended at ``stage``, which did not finish (``status``: failed or cancelled).
    Its message is the stage's own (its result event), else the last ``error:`` line it wrote, else how its
    process ended (``code``)."""
    message = (result.message if result else "") or last_error or exit_description(code)
    hint = result.hint if result else ""
    return RunOutcome(status, stage, message, hint, results)
