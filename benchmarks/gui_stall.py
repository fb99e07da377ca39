"""Event-loop stalls of a window with a log, a progress bar and the 3D view while a run streams.

What a running project's page does, without the stages: a log line and a progress step every 50 ms,
a live training preview (a prepared scene reloaded in place) every 2 s, and `--busy` processes at
nice +5 spinning beside it (the stage processes run at nice +5). A 10 ms timer measures the gaps
between its ticks. Each `--modes` entry runs in its own process (a fresh OpenGL context):

  embedded  the viewer as the app embeds it (`splatstudio.ui.embed.native_child`)
  direct    the QOpenGLWidget straight in the layout (the whole window composited with OpenGL)
  none      no 3D view

    xvfb-run -a -s "-screen 0 1920x1080x24" python benchmarks/gui_stall.py --busy 2 --seconds 20

Prints one line per mode: ticks, worst gap, 99th / 95th percentile, gaps over 50 ms, and the GUI
thread's own CPU time inside the worst gap.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def measure(mode: str, seconds: float, busy: int, splats: int) -> dict:
    from PySide6 import QtCore, QtWidgets
    from viewer_bench import random_scene

    qapp = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv)
    window = QtWidgets.QMainWindow()
    central = QtWidgets.QWidget()
    row = QtWidgets.QHBoxLayout(central)
    column = QtWidgets.QVBoxLayout()
    log = QtWidgets.QPlainTextEdit()
    bar = QtWidgets.QProgressBar()
    bar.setRange(0, 1000)
    column.addWidget(log)
    column.addWidget(bar)
    row.addLayout(column)
    canvas = None
    scenes: list = []
    if mode != "none":
        from splatstudio.render import composite
        from splatstudio.render.scene import prepare_scene
        from splatstudio.render.viewer import SplatCanvas
        from splatstudio.ui.embed import native_child

        scenes = [prepare_scene(random_scene(splats, seed=i)) for i in range(3)]
        canvas = SplatCanvas(size=(640, 480))
        row.addWidget(native_child(canvas.native) if mode == "embedded" else canvas.native, 2)
        canvas.load(scenes[0])
        composite.warm_up()
    window.setCentralWidget(central)
    window.resize(1400, 850)
    window.show()
    end = time.monotonic() + 3.0
    while time.monotonic() < end:  # first frames and the compositor's kernels, before measuring
        qapp.processEvents()
        time.sleep(0.01)

    gaps: list[float] = []
    worst = {"gap": 0.0, "cpu": 0.0}
    last = {"t": time.perf_counter(), "cpu": time.thread_time()}

    def tick() -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        gap = now - last["t"]
        gaps.append(gap)
        if gap > worst["gap"]:
            worst.update(gap=gap, cpu=cpu - last["cpu"])
        last.update(t=now, cpu=cpu)

    count = [0]

    def output() -> None:
        count[0] += 1
        log.appendPlainText(f"[train] iteration {count[0] * 10} loss 0.0{count[0] % 97} psnr 23.{count[0] % 10}")
        bar.setValue(count[0] % 1000)

    def preview() -> None:
        if canvas is not None:
            canvas.load(scenes[count[0] % len(scenes)], reset_camera=False)

    spinners = [subprocess.Popen(["nice", "-n", "5", sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    timers = []
    for interval, slot in ((10, tick), (50, output), (2000, preview)):
        timer = QtCore.QTimer()
        timer.setInterval(interval)
        timer.timeout.connect(slot)
        timer.start()
        timers.append(timer)
    last.update(t=time.perf_counter(), cpu=time.thread_time())
    QtCore.QTimer.singleShot(int(seconds * 1000), qapp.quit)
    try:
        qapp.exec()
    finally:
        for spinner in spinners:
            spinner.kill()
    if canvas is not None:
        canvas.close()
    ordered = sorted(gaps)
    return {
        "mode": mode,
        "ticks": len(gaps),
        "worst_ms": worst["gap"] * 1000,
        "worst_gui_cpu_ms": worst["cpu"] * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99)] * 1000,
        "p95_ms": ordered[int(len(ordered) * 0.95)] * 1000,
        "over_50ms": sum(g > 0.05 for g in gaps),
        "load": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default="embedded,direct,none")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--busy", type=int, default=2, help="spinning processes at nice +5 beside the window")
    parser.add_argument("--splats", type=int, default=100_000)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.seconds, args.busy, args.splats)))
        return
    print(f"{os.cpu_count()} cores, {args.busy} busy processes at nice +5, {args.splats:,} splats, {args.seconds:g} s")
    for mode in args.modes.split(","):
        out = subprocess.run([sys.executable, __file__, "--one", mode, "--seconds", str(args.seconds), "--busy",
                              str(args.busy), "--splats", str(args.splats)], capture_output=True, text=True)  # fmt: skip
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        if out.returncode or not lines:
            print(f"{mode}: failed\n{out.stderr[-2000:]}")
            continue
        r = json.loads(lines[-1])
        print(f"{mode:9s} ticks {r['ticks']:5d}  worst {r['worst_ms']:6.1f} ms (GUI thread CPU {r['worst_gui_cpu_ms']:.1f} ms)"
              f"  p99 {r['p99_ms']:5.1f} ms  p95 {r['p95_ms']:5.1f} ms  gaps > 50 ms: {r['over_50ms']}  load {r['load']:.1f}")


if __name__ == "__main__":
    main()
