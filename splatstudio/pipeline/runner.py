"""Plain subprocess runner for the headless CLI (the GUI uses a QProcess runner with the same argv and
the same parser). Runs a plan's stages one after another, each as its own process; with the ``executor``
setting naming a Ray cluster, each on a worker of the cluster (:mod:`splatstudio.pipeline.remote`)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable

from splatstudio.model.project import CANCELLED, DONE, FAILED, Project
from splatstudio.pipeline.context import EXIT_CANCELLED, EXIT_OK
from splatstudio.pipeline.events import Event, LogLine, Result, parse_line
from splatstudio.pipeline.outcome import RunOutcome, stage_outcome
from splatstudio.pipeline.plan import RunPlan, stage_argv

EventSink = Callable[[str, Event], None]


class StageRunner:
    """Runs the stages of a :class:`RunPlan`; :meth:`cancel` (thread- and signal-safe) stops the run."""

    def __init__(self, project: Project, on_event: EventSink, python: str | None = None):
        self.project = project
        self.on_event = on_event
        self.python = python
        self._process: subprocess.Popen[str] | None = None
        self._cancelled = threading.Event()

    def prepare(self) -> str:
        """Get ready to run (a cluster runner connects); a line saying where stages run, or "" for here."""
        return ""

    def cancel(self) -> None:
        self._cancelled.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)

    def run(self, plan: RunPlan, on_stage: Callable[[str], None] | None = None) -> RunOutcome:
        """Run the plan's stages in order; ``on_stage(stage)`` as each one starts."""
        run_id = self.project.new_run(list(plan.stages))
        outcome = RunOutcome(DONE)
        try:
            for stage in plan.stages:
                if self._cancelled.is_set():
                    outcome = RunOutcome(CANCELLED, stage, "cancelled by the user")
                    break
                if on_stage is not None:
                    on_stage(stage)
                result, code, last_error = self._run_stage(stage, run_id)
                if result is not None:
                    outcome.results[stage] = result
                if code == EXIT_OK:
                    continue
                status = CANCELLED if code == EXIT_CANCELLED or self._cancelled.is_set() else FAILED
                outcome = stage_outcome(stage, status, result, last_error, code, outcome.results)
                break
        finally:
            try:
                self.project.finish_run(run_id, outcome.status)
            except OSError:  # a full disk: each stage's record holds its outcome; the run shows interrupted
                pass
        return outcome

    def _run_stage(self, stage: str, run_id: str) -> tuple[Result | None, int, str]:
        argv = stage_argv(stage, self.project.folder, run_id, self.python)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        result: Result | None = None
        last_error = ""
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                                   env=env, start_new_session=True)
        self._process = process
        if self._cancelled.is_set():
            process.send_signal(signal.SIGTERM)

        def pump_stderr() -> None:
            nonlocal last_error
            assert process.stderr is not None
            for line in process.stderr:
                event = parse_line(line)
                if isinstance(event, LogLine) and event.text.startswith("error: "):
                    last_error = event.text[len("error: "):]
                self.on_event(stage, event)

        reader = threading.Thread(target=pump_stderr, daemon=True)
        reader.start()
        assert process.stdout is not None
        for line in process.stdout:
            event = parse_line(line)
            if isinstance(event, Result):
                result = event
            self.on_event(stage, event)
        code = process.wait()
        reader.join(timeout=10)
        self._process = None
        return result, code, last_error
