"""One event vocabulary (issue 22, item 4): the trainer's JSON lines (`gstrain/progress.py`) and the app's
reading of them (`splatstudio/pipeline/events.py` TRAINER_EVENTS, relayed by `pipeline/train.py`) agree. The
trainer never imports the app, so this runs the real trainer (and render.py) and parses what it prints."""
import io
import json
import subprocess
import sys
import threading

import pytest
from gs_testlib import RENDER_PY, json_events, run_train
from gstrain import progress

from splatstudio.pipeline import train as train_stage
from splatstudio.pipeline.events import TRAINER_EVENTS, Eval, Preview, Progress, parse_line

ARGS = ["--iterations", "40", "--eval", "--test_iterations", "20", "40", "--save_iterations", "40",
        "--preview_every", "20", "--checkpoint_iterations", "20", "--progress", "json", "--threads", "2"]


@pytest.fixture(scope="module")
def printed(tiny_dataset, tmp_path_factory):
    """What train.py prints while training, what render.py prints, and train.py's --plan and --estimate (the
    window's estimate reads the last)."""
    out = str(tmp_path_factory.mktemp("schema_model"))
    p = run_train(["-s", tiny_dataset, "-m", out] + ARGS)
    assert p.returncode == 0, p.stderr[-3000:]
    r = subprocess.run([sys.executable, RENDER_PY, "-m", out, "--progress", "json", "--no_images"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    plan = run_train(["-s", tiny_dataset, "-m", str(tmp_path_factory.mktemp("plan") / "m"), "--plan",
                      "--iterations", "2000", "--threads", "1"])
    assert plan.returncode == 0, plan.stderr[-3000:]
    estimate = run_train(["--estimate", "--views", "8", "--width", "64", "--height", "64", "--iterations", "2000"])
    assert estimate.returncode == 0, estimate.stderr[-3000:]
    return p.stdout, r.stdout, plan.stdout, estimate.stdout


def test_the_kinds_the_trainer_declares_are_the_ones_the_app_reads():
    assert set(progress.KINDS) == set(TRAINER_EVENTS)


def test_every_line_the_trainer_prints_is_a_known_kind_with_its_fields(printed):
    seen = set()
    for stdout in printed:
        for event in json_events(stdout):
            kind = event["event"]
            assert kind in TRAINER_EVENTS, f"the trainer printed {kind!r}, unknown to splatstudio/pipeline/events.py"
            missing = [name for name in TRAINER_EVENTS[kind] if name not in event]
            assert not missing, f"{kind}: fields {missing} missing from {event}"
            seen.add(kind)
    assert set(TRAINER_EVENTS) - seen == {"interrupted"}  # (a signal's: test_train_cli stops a training)


class _Context:
    """What the relay needs of a StageContext: its stdout lines are kept to be parsed as the runners do."""

    def __init__(self):
        self.out = io.StringIO()
        self.cancel_event = threading.Event()
        self.logged = []

    def progress(self, fraction, message, force=False, **figures):
        self.out.write(json.dumps({"stage": "train", "fraction": fraction, "message": message, **figures}) + "\n")

    def emit(self, event):
        self.out.write(json.dumps({"stage": "train", **event}) + "\n")

    def log(self, message):
        self.logged.append(message)


def test_the_relay_turns_real_trainer_output_into_the_stage_events_with_the_trainers_totals(printed, tmp_path):
    ctx = _Context()
    state = {"sec_per_iter": [], "last": {}, "eval": {},
             "curves": train_stage.CurveHistory(tmp_path / "curves.jsonl", False, ctx.log)}
    for line in printed[0].splitlines():
        train_stage._relay(ctx, line, state)
    events = [parse_line(line) for line in ctx.out.getvalue().splitlines()]
    steps = [e for e in events if isinstance(e, Progress)]
    assert steps and all(e.fraction == pytest.approx(e.figures["iteration"] / 40) for e in steps)
    assert steps[-1].fraction == 1.0 and steps[-1].message == "iteration 40/40"
    assert [e.iteration for e in events if isinstance(e, Eval)] == [20, 40]
    assert [e.iteration for e in events if isinstance(e, Preview)] == [20]
    assert state["iterations"] == 40 and state["views"] == {"train_views": 8, "held_out_views": 2}
    assert any(text.startswith("trainer done: ") for text in ctx.logged)


def test_a_reference_trainers_tqdm_total_is_its_own(tmp_path):
    ctx = _Context()
    state = {"sec_per_iter": [], "last": {}, "eval": {},
             "curves": train_stage.CurveHistory(tmp_path / "curves.jsonl", False, ctx.log)}
    train_stage._relay(ctx, "Training progress:  10%|#  | 3000/30000 [00:10<01:30, Loss=0.0123]", state)
    (event,) = [parse_line(line) for line in ctx.out.getvalue().splitlines()]
    assert event.fraction == pytest.approx(0.1) and event.message == "iteration 3000/30000"
    assert event.figures == {"iteration": 3000, "loss": 0.0123}
