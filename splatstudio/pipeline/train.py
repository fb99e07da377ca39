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
from pathlib import Path
from typing import Any

from PIL import Image

from splatstudio.frozen import script_command
from splatstudio.model.settings import Settings
from splatstudio.pipeline.entry import Cancelled, StageContext, StageFailed

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


def training_resolution(settings: Settings, source: Path) -> int:
    """The ``--resolution`` to pass. An explicit setting is kept; "auto" (-1) follows the reference on a GPU
    (width <= 1600) and, on a CPU, halves the photos until their longest side is at most 1000 px — the
    difference between minutes and hours per thousand iterations."""
    if settings.train_resolution != -1:
        return settings.train_resolution
    on_cpu = settings.trainer_backend == "cpu" or (settings.trainer_backend == "auto" and not has_nvidia_gpu())
    if not on_cpu:
        return -1
    images = sorted((source / "images").iterdir()) if (source / "images").is_dir() else []
    if not images:
        return -1
    with Image.open(images[0]) as image:
        longest = max(image.size)
    factor = 1
    while longest / factor > CPU_AUTO_MAX_SIDE and factor < 8:
        factor *= 2
    return factor


def trainer_command(settings: Settings, source: Path, model_dir: Path, checkpoint: Path | None,
                    ours: bool) -> list[str]:
    """The trainer's argv (reference flags first; ours only for our own trainer)."""
    trainer = Path(settings.trainer_path).expanduser() if settings.trainer_path else bundled_trainer()
    n = settings.iterations
    argv = [*script_command(trainer, settings.trainer_python),  # python train.py (a bundle runs it itself)
            "-s", str(source), "-m", str(model_dir), "--iterations", str(n),
            "--save_iterations", str(n), "--densify_from_iter", str(settings.densify_from_iter),
            "--densify_until_iter", str(settings.densify_until_iter),
            "--densification_interval", str(settings.densification_interval),
            "--opacity_reset_interval", str(settings.opacity_reset_interval),
            "--sh_degree", str(settings.sh_degree), "--resolution", str(training_resolution(settings, source))]
    if settings.eval_holdout:
        tests = sorted({max(1, n // 5), n})
        argv += ["--eval", "--test_iterations", *map(str, tests)]
    if checkpoint is not None:
        argv += ["--start_checkpoint", str(checkpoint)]
    if ours:
        argv += ["--backend", settings.trainer_backend, "--progress", "json",
                 "--sparse", settings.sparse_regularization,
                 "--exposure", "on" if settings.exposure_compensation else "off"]
        if settings.trainer_threads:
            argv += ["--threads", str(settings.trainer_threads)]
        if settings.max_gaussians:
            argv += ["--max_gaussians", str(settings.max_gaussians)]
        if settings.preview_every:
            argv += ["--preview_every", str(settings.preview_every)]
    return argv


def latest_checkpoint(model_dir: Path) -> Path | None:
    found = []
    for path in model_dir.glob("chkpnt*.pth"):
        digits = path.stem[len("chkpnt"):]
        if digits.isdigit():
            found.append((int(digits), path))
    return max(found)[1] if found else None


def run_train(ctx: StageContext) -> dict[str, Any]:
    settings = ctx.settings
    project = ctx.project
    source, model_dir = project.path("dataset"), project.path("train")
    ours = not settings.trainer_path or Path(settings.trainer_path).resolve() == bundled_trainer().resolve()
    checkpoint = latest_checkpoint(model_dir) if model_dir.is_dir() else None
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
    state: dict[str, Any] = {"sec_per_iter": [], "last": {}, "eval": {}}

    def watch_cancel() -> None:
        ctx.cancel_event.wait()
        if process.poll() is None:
            ctx.log("stopping the trainer (it saves a checkpoint to resume from)")
            process.send_signal(signal.SIGTERM)

    threading.Thread(target=watch_cancel, daemon=True, name="train-cancel").start()
    assert process.stdout is not None
    for line in process.stdout:
        _relay(ctx, line, settings.iterations, state)
    code = process.wait()
    if ctx.cancel_event.is_set():
        raise Cancelled()
    if code != 0:
        raise StageFailed(f"the trainer stopped with exit status {code}"
                          + (f": {state['error']}" if state.get("error") else ""),
                          "see the training log for details")
    last = state["last"]
    figures: dict[str, Any] = {
        "iterations": last.get("iteration", settings.iterations),
        "num_gaussians": last.get("num_gaussians"),
        "train_psnr": last.get("psnr"),
        "loss": last.get("loss"),
    }
    if state["sec_per_iter"]:
        figures["sec_per_iter_median"] = round(statistics.median(state["sec_per_iter"]), 4)
    if state["eval"]:
        figures["eval"] = state["eval"]
        final = state["eval"][max(state["eval"], key=int)]
        figures["test_psnr"], figures["test_ssim"] = final.get("psnr"), final.get("ssim")
    return figures


def _relay(ctx: StageContext, line: str, iterations: int, state: dict[str, Any]) -> None:
    """Turn one trainer stdout line into stage progress (and keep the figures for the result)."""
    text = line.strip()
    if not text:
        return
    try:
        event = json.loads(text) if text.startswith("{") else None
    except json.JSONDecodeError:
        event = None
    if not isinstance(event, dict):
        _relay_text(ctx, text, iterations, state)
        return
    kind = event.get("event")
    iteration = int(event.get("iteration", 0) or 0)
    if kind == "progress":
        state["last"] = event
        if event.get("sec_per_iter"):
            state["sec_per_iter"].append(float(event["sec_per_iter"]))
        figures = {k: v for k, v in event.items() if k != "event"}
        ctx.progress(iteration / iterations, f"iteration {iteration}/{iterations}", **figures)
    elif kind == "eval":
        state["eval"][str(iteration)] = {"psnr": event.get("psnr"), "ssim": event.get("ssim")}
        ctx.emit(event)
        ctx.log(f"held-out views at iteration {iteration}: PSNR {event.get('psnr')} SSIM {event.get('ssim')}")
    elif kind == "preview":
        ctx.emit(event)
    elif kind == "error":
        state["error"] = event.get("message")
        ctx.log(f"error from the trainer: {event.get('message')}")
    else:  # start, saved, checkpoint, interrupted, done: readable lines in the log, not JSON
        details = ", ".join(f"{k.replace('_', ' ')} {_short(v)}" for k, v in event.items() if k != "event")
        ctx.log(f"trainer {kind}: {details}")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _relay_text(ctx: StageContext, text: str, iterations: int, state: dict[str, Any]) -> None:
    """A reference trainer's output: tqdm bars (``3000/30000 [..., Loss=0.0123]``) and plain lines."""
    for segment in text.split("\r"):
        match = _TQDM.search(segment)
        if match:
            iteration = int(match.group(1))
            loss = _TQDM_LOSS.search(segment)
            figures = {"iteration": iteration}
            if loss:
                figures["loss"] = float(loss.group(1))
            state["last"] = figures
            ctx.progress(iteration / iterations, f"iteration {iteration}/{iterations}", **figures)
        elif segment.strip():
            ctx.log(segment.strip())
