"""The training stage: runs the trainer CLI (ours in ``gaussian-splatting/``, or a reference checkout)
as a subprocess and relays its progress.

Our trainer prints JSON events (``--progress json``); a reference ``train.py`` prints a tqdm bar, which is
parsed for the iteration and loss. SIGTERM is passed on to the trainer, which saves a checkpoint; the next
run resumes from it with ``--start_checkpoint`` when the training settings did not change.
"""

from __future__ import annotations

import json
import re
import signal
import statistics
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from splatstudio.launch import script_command
from splatstudio.model.project import TRAIN_CURVES
from splatstudio.model.settings import Settings
from splatstudio.pipeline.context import Cancelled, StageContext, StageFailed

CURVE_FIGURES = ("loss", "psnr", "num_gaussians", "sec_per_iter")
"""The figures a training curve plots against the iteration (besides the held-out ``eval_psnr``)."""


class CurveHistory:
    """The points of the training curves, one JSON object per line in ``logs/train-curves.jsonl``, so that
    a finished or stopped project shows its curves again. A fresh training starts the file anew; a resumed
    one appends, and its points replace those at and after the iteration it resumed from (:func:`add_point`
    applies the same rule to the panel's series). Losing the file (a full disk) never stops the training."""

    def __init__(self, path: Path, resume: bool, log):
        self.path = path
        self.log = log
        self.handle: Any = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = open(path, "a" if resume else "w", encoding="utf-8")
        except OSError as exc:
            self._lost(exc)

    def _lost(self, exc: OSError) -> None:
        self.log(f"the training curves are not saved ({exc.strerror or exc}); the training goes on")
        self.close()

    def add(self, iteration: int, **figures: Any) -> None:
        if self.handle is None:
            return
        point = {"iteration": int(iteration)}
        point.update({k: float(v) for k, v in figures.items() if isinstance(v, (int, float)) and v == v})
        try:
            self.handle.write(json.dumps(point) + "\n")
            self.handle.flush()
        except OSError as exc:
            self._lost(exc)

    def close(self) -> None:
        handle, self.handle = self.handle, None
        if handle is not None:
            try:
                handle.close()
            except OSError:
                pass


Series = dict[str, tuple[list[float], list[float]]]


def add_point(series: Series, point: dict[str, Any]) -> bool:
    """Add one point (``iteration`` and figures; ``eval_psnr`` for a held-out evaluation) to ``series``,
    keyed by figure. A point at or before a series' last iteration means the training went back there (a
    resume from a checkpoint, or a fresh start): that series' later points are dropped first. True when
    something was added."""
    iteration = point.get("iteration")
    if not isinstance(iteration, (int, float)):
        return False
    added = False
    for key, value in point.items():
        if key == "iteration" or not isinstance(value, (int, float)) or value != value:
            continue
        xs, ys = series.setdefault(key, ([], []))
        while xs and xs[-1] >= iteration:
            xs.pop()
            ys.pop()
        xs.append(float(iteration))
        ys.append(float(value))
        added = True
    if added and "eval_psnr" not in point:  # evaluations after the point the training went back to are stale
        xs, ys = series.get("eval_psnr", ([], []))
        while xs and xs[-1] > iteration:
            xs.pop()
            ys.pop()
    return added


def load_curves(path: Path) -> Series:
    """Worker: the series saved by :class:`CurveHistory` (empty when there is no file; an unreadable or torn
    line is skipped)."""
    series: Series = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    point = json.loads(line)
                except ValueError:
                    continue
                if isinstance(point, dict):
                    add_point(series, point)
    except OSError:
        pass
    return series


_TQDM = re.compile(r"(\d+)/(\d+) \[[^\]]*\]")
_TQDM_LOSS = re.compile(r"Loss=([0-9.eE+-]+)")


def _stop_with_parent() -> None:
    """Linux: the trainer gets SIGTERM (and saves a checkpoint) if the stage process dies, even by kill -9."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def bundled_trainer() -> Path:
    """``gaussian-splatting/train.py`` beside the package (source checkout or bundle)."""
    here = Path(__file__).resolve().parent.parent
    for root in (here.parent, here, Path(getattr(sys, "_MEIPASS", here))):
        candidate = root / "gaussian-splatting" / "train.py"
        if candidate.is_file():
            return candidate
    raise StageFailed("the bundled trainer gaussian-splatting/train.py is missing from this installation",
                      "reinstall SplatStudio, or set trainer_path to a gaussian-splatting checkout's train.py")


CPU_AUTO_MAX_SIDE = 1000  # "auto" training resolution on a CPU: photos' longest side at most this


def has_nvidia_gpu() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetCount() > 0
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return False


def trains_on_cpu(settings: Settings) -> bool:
    return settings.trainer_backend == "cpu" or (settings.trainer_backend == "auto" and not has_nvidia_gpu())


def auto_resolution(settings: Settings, longest_side: int) -> int:
    """The ``--resolution`` for photos whose longest side is ``longest_side``: an explicit setting is kept;
    "auto" (-1) follows the reference on a GPU (width <= 1600) and, on a CPU, halves the photos until their
    longest side is at most 1000 px — the difference between minutes and hours per thousand iterations."""
    if settings.train_resolution != -1:
        return settings.train_resolution
    if not trains_on_cpu(settings) or longest_side <= 0:
        return -1
    factor = 1
    while longest_side / factor > CPU_AUTO_MAX_SIDE and factor < 8:
        factor *= 2
    return factor


def training_resolution(settings: Settings, source: Path) -> int:
    """The ``--resolution`` to pass for the dataset in ``source`` (see :func:`auto_resolution`)."""
    if settings.train_resolution != -1:
        return settings.train_resolution
    images = sorted((source / "images").iterdir()) if (source / "images").is_dir() else []
    if not images:
        return -1
    with Image.open(images[0]) as image:
        longest = max(image.size)
    return auto_resolution(settings, longest)


# Settings passed to our trainer only when set (0 = "auto": the trainer's plan decides, scaled to the run)
_SCHEDULE_FLAGS = (("densify_from_iter", "--densify_from_iter"), ("densify_until_iter", "--densify_until_iter"),
                   ("densification_interval", "--densification_interval"),
                   ("opacity_reset_interval", "--opacity_reset_interval"))


def _length_flags(settings: Settings, ours: bool) -> list[str]:
    """How long to train: a time budget (our trainer plans the iterations) or the iteration count."""
    if ours and settings.time_budget_minutes:
        return ["--time_budget", f"{settings.time_budget_minutes:g}"]
    return ["--iterations", str(settings.iterations)]


def _method_flags(settings: Settings) -> list[str]:
    """Our trainer's options that change what it learns (the schedule only where the user set it)."""
    argv = ["--sh_degree", str(settings.sh_degree)]
    for key, flag in _SCHEDULE_FLAGS:
        if settings[key]:
            argv += [flag, str(settings[key])]
    argv += ["--sparse", settings.sparse_regularization, "--exposure", "on" if settings.exposure_compensation else "off",
             "--strategy", settings.training_strategy]
    if not settings.coarse_to_fine:
        argv += ["--coarse_to_fine", "1"]
    if settings.trainer_threads:
        argv += ["--threads", str(settings.trainer_threads)]
    if settings.scene_detail:
        argv += ["--max_gaussians", str(settings.scene_detail)]
    return argv


def trainer_command(settings: Settings, source: Path, model_dir: Path, checkpoint: Path | None,
                    ours: bool) -> list[str]:
    """The trainer's argv. The trainer owns the training schedule (``gstrain/plan.py``): a schedule value is
    passed only when the user set one; a reference checkout gets the reference's flags only."""
    trainer = Path(settings.trainer_path).expanduser() if settings.trainer_path else bundled_trainer()
    n = settings.iterations
    budget = settings.time_budget_minutes if ours else 0.0
    argv = [*script_command(trainer, settings.trainer_python),  # python train.py (a bundle runs it itself)
            "-s", str(source), "-m", str(model_dir), *_length_flags(settings, ours)]
    if not budget:  # with a time budget the trainer plans the iterations (and always saves the last one)
        argv += ["--save_iterations", str(n)]
    argv += ["--resolution", str(training_resolution(settings, source))]
    if settings.eval_holdout:
        argv += ["--eval"]  # with a time budget: at the end, and every fifth of the budget (below)
        if not budget:
            argv += ["--test_iterations", *map(str, sorted({max(1, n // 5), n}))]
    if checkpoint is not None:
        argv += ["--start_checkpoint", str(checkpoint)]
    if ours:
        argv += ["--backend", settings.trainer_backend, "--progress", "json", "--stop_with_parent",
                 *_method_flags(settings)]
        if budget and settings.eval_holdout:
            argv += ["--eval_every_sec", f"{budget * 60 / 5:g}"]
        if settings.preview_every:
            argv += ["--preview_every", str(settings.preview_every)]
    else:
        argv += ["--sh_degree", str(settings.sh_degree)]
        for key, flag in _SCHEDULE_FLAGS:
            if settings[key]:
                argv += [flag, str(settings[key])]
    return argv


def measure_command(settings: Settings, model_dir: Path) -> list[str]:
    """The bundled trainer's ``render.py`` on a trained model: each held-out photo (every photo when none
    was held out) rendered by the trainer's own rasteriser and compared with the photo as training
    compared them (PSNR, SSIM; at the exposure the photo's EXIF records, where the trainer could fit how
    the training photos follow theirs), with the renders and photos as PNGs (:func:`read_measurements`)."""
    render = bundled_trainer().with_name("render.py")
    return [*script_command(render, settings.trainer_python), "-m", str(model_dir), "--progress", "json"]


@dataclass(frozen=True)
class ViewMeasure:
    """One photo's view as ``render.py`` measured it."""

    name: str  # the photo's name without its extension (``cameras.json``'s ``img_name``)
    psnr: float
    ssim: float
    held_out: bool  # not trained on (the test split), or a training photo when none was held out
    render: Path
    photo: Path
    gain: float | None = None  # the brightness the render was compared at: the photo's recorded exposure


def read_measurements(model_dir: Path) -> list[ViewMeasure]:
    """Worker: what :func:`measure_command` wrote (``results.json`` and the PNGs beside), the worst view
    first; ``[]`` when it has not run or its file is unreadable."""
    try:
        results = json.loads((model_dir / "results.json").read_text(encoding="utf-8"))
        key, found = next(iter(results.items()))
        iteration = key.split("_", 1)[1]
        split = found["split"]
        views = []
        for png, view in found["per_view"].items():
            folder = model_dir / split / f"ours_{iteration}"
            gain = view.get("gain")
            views.append(ViewMeasure(str(view["image_name"]), float(view["PSNR"]), float(view["SSIM"]),
                                     split == "test", folder / "renders" / png, folder / "gt" / png,
                                     None if gain is None else float(gain)))
    except (OSError, ValueError, KeyError, TypeError, IndexError, StopIteration, AttributeError):
        return []
    return sorted(views, key=lambda view: view.psnr)


def uses_bundled_trainer(settings: Settings) -> bool:
    return not settings.trainer_path or Path(settings.trainer_path).resolve() == bundled_trainer().resolve()


def estimate_training(settings: Settings, sizes: list[tuple[int, int]], detail_steps: tuple[int, ...] = (),
                      timeout: float = 60.0) -> dict[str, Any] | None:
    """What training photos of these original ``sizes`` would cost on this computer, before any dataset
    exists: the trainer's ``--estimate`` (its plan, expected seconds, seconds per iteration and memory at
    the budget and at each of ``detail_steps``). None for a reference trainer or no photos.

    The photos are taken through import (``max_image_size``) and the training resolution the way a run
    would; every 8th is held out when ``eval_holdout`` is on. Raises :class:`StageFailed` when the
    trainer cannot answer."""
    if not sizes or not uses_bundled_trainer(settings):
        return None
    resized = []
    for w, h in sizes:
        longest = max(w, h)
        scale = 1.0 if settings.original_resolution or longest <= settings.max_image_size else \
            settings.max_image_size / longest
        resized.append((max(1, round(w * scale)), max(1, round(h * scale))))
    factor = auto_resolution(settings, max(max(w, h) for w, h in resized))
    factor = 1 if factor == -1 else factor
    widths = sorted(max(1, round(w / factor)) for w, _ in resized)
    heights = sorted(max(1, round(h / factor)) for _, h in resized)
    views = len(sizes) - (len(range(0, len(sizes), 8)) if settings.eval_holdout and len(sizes) > 1 else 0)
    trainer = Path(settings.trainer_path).expanduser() if settings.trainer_path else bundled_trainer()
    argv = [*script_command(trainer, settings.trainer_python), "--estimate", "--views", str(max(1, views)),
            "--width", str(widths[len(widths) // 2]), "--height", str(heights[len(heights) // 2]),
            *_length_flags(settings, True), *_method_flags(settings)]
    if detail_steps:
        argv += ["--detail_steps", *map(str, detail_steps)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StageFailed(f"the trainer could not estimate the training time: {exc}") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise StageFailed(f"the trainer could not estimate the training time: {tail}")
    return json.loads(lines[-1])


def latest_checkpoint(model_dir: Path) -> tuple[int, Path] | None:
    """(iteration, path) of the newest ``chkpntN.pth`` a stopped training left in ``model_dir``."""
    found = []
    for path in model_dir.glob("chkpnt*.pth"):
        digits = path.stem[len("chkpnt"):]
        if digits.isdigit():
            found.append((int(digits), path))
    return max(found) if found else None


def run_train(ctx: StageContext) -> dict[str, Any]:
    settings = ctx.settings
    project = ctx.project
    source, model_dir = project.path("dataset"), project.path("train")
    ours = uses_bundled_trainer(settings)
    latest = latest_checkpoint(model_dir) if model_dir.is_dir() else None
    checkpoint = latest[1] if latest is not None else None
    if checkpoint is not None:
        ctx.log(f"resuming from {checkpoint.name}")
    model_dir.mkdir(parents=True, exist_ok=True)
    argv = trainer_command(settings, source, model_dir, checkpoint, ours)
    ctx.log("trainer: " + " ".join(argv))
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=None, text=True, bufsize=1,
                                   cwd=project.folder,
                                   preexec_fn=_stop_with_parent if sys.platform.startswith("linux") else None)
    except OSError as exc:
        raise StageFailed(f"cannot start the trainer {argv[1]} with {argv[0]}: {exc.strerror or exc}",
                          "check trainer_path and trainer_python in Preferences") from None
    state: dict[str, Any] = {"sec_per_iter": [], "last": {}, "eval": {},
                             "curves": CurveHistory(project.path(*TRAIN_CURVES.split("/")), checkpoint is not None,
                                                    ctx.log)}

    def watch_cancel() -> None:
        ctx.cancel_event.wait()
        if process.poll() is None:
            ctx.log("stopping the trainer (it saves a checkpoint to resume from)")
            process.send_signal(signal.SIGTERM)

    threading.Thread(target=watch_cancel, daemon=True, name="train-cancel").start()
    assert process.stdout is not None
    try:
        for line in process.stdout:
            _relay(ctx, line, state)
    finally:
        state["curves"].close()
    code = process.wait()
    if ctx.cancel_event.is_set():
        raise Cancelled()
    if code != 0:
        raise StageFailed(f"the trainer stopped with exit status {code}", "see the training log for details")
    last = state["last"]
    figures: dict[str, Any] = {
        "iterations": last.get("iteration", state.get("iterations")),
        "num_gaussians": last.get("num_gaussians"),
        "train_psnr": last.get("psnr"),
        "loss": last.get("loss"),
    }
    figures.update({k: v for k, v in state.get("views", {}).items() if isinstance(v, int)})
    if state["sec_per_iter"]:
        figures["sec_per_iter_median"] = round(statistics.median(state["sec_per_iter"]), 4)
    if state["eval"]:
        figures["eval"] = state["eval"]
        final = state["eval"][max(state["eval"], key=int)]
        figures["test_psnr"], figures["test_ssim"] = final.get("psnr"), final.get("ssim")
    return figures


def _relay(ctx: StageContext, line: str, state: dict[str, Any]) -> None:
    """Turn one trainer stdout line (``events.TRAINER_EVENTS``) into stage events, and keep the figures for the
    result. The total of iterations is the trainer's (its ``start`` and ``progress`` events: a time budget
    re-plans it, a resumed run keeps it), never a copy from the settings."""
    text = line.strip()
    if not text:
        return
    try:
        event = json.loads(text) if text.startswith("{") else None
    except json.JSONDecodeError:
        event = None
    if not isinstance(event, dict):
        _relay_text(ctx, text, state)
        return
    kind = event.get("event")
    iteration = int(event.get("iteration", 0) or 0)
    if kind in ("start", "progress", "done") and event.get("iterations"):
        state["iterations"] = int(event["iterations"])
    if kind == "start":  # which photos taught the model and which only measured it
        state["views"] = {"train_views": event.get("num_train"), "held_out_views": event.get("num_test")}
    if kind == "progress":
        state["last"] = event
        if event.get("sec_per_iter"):
            state["sec_per_iter"].append(float(event["sec_per_iter"]))
        state["curves"].add(iteration, **{key: event.get(key) for key in CURVE_FIGURES})
        figures = {k: v for k, v in event.items() if k != "event"}
        _progress(ctx, iteration, state.get("iterations"), figures)
    elif kind == "eval":
        state["eval"][str(iteration)] = {"psnr": event.get("psnr"), "ssim": event.get("ssim")}
        state["curves"].add(iteration, eval_psnr=event.get("psnr"))
        ctx.emit(event)
        ctx.log(f"held-out views at iteration {iteration}: PSNR {event.get('psnr')} SSIM {event.get('ssim')}")
    elif kind == "preview":
        ctx.emit(event)
    else:  # start, saved, checkpoint, interrupted, done: readable lines in the log, not JSON
        details = ", ".join(f"{k.replace('_', ' ')} {_short(v)}" for k, v in event.items() if k != "event")
        ctx.log(f"trainer {kind}: {details}")


def _progress(ctx: StageContext, iteration: int, total: int | None, figures: dict[str, Any]) -> None:
    if total:
        ctx.progress(iteration / total, f"iteration {iteration}/{total}", **figures)
    else:  # no total said yet: where it is, without a fraction that would be a guess
        ctx.progress(0.0, f"iteration {iteration}", **figures)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _relay_text(ctx: StageContext, text: str, state: dict[str, Any]) -> None:
    """A reference trainer's output: tqdm bars (``3000/30000 [..., Loss=0.0123]``: the bar's total is the
    trainer's) and plain lines."""
    for segment in text.split("\r"):
        match = _TQDM.search(segment)
        if match:
            iteration, state["iterations"] = int(match.group(1)), int(match.group(2))
            loss = _TQDM_LOSS.search(segment)
            figures: dict[str, Any] = {"iteration": iteration}
            if loss:
                figures["loss"] = float(loss.group(1))
            state["last"] = figures
            state["curves"].add(iteration, loss=figures.get("loss"))
            _progress(ctx, iteration, state["iterations"], figures)
        elif segment.strip():
            ctx.log(segment.strip())
