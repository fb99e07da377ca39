"""Findings file (../shared/findings/reliability-2026-12.md), defect 5: import memory grew ~36 MB per 12 MP
photo (every photo was decoded ahead of the one thread storing them). Runs the benchmark
(`benchmarks/import_memory.py`, the real `splatstudio new` in fresh processes) on 10 and 40 photos of
4000x3000 and asks for a flat peak: memory, not time, so a loaded machine does not change the answer."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "import_memory.py"


def test_import_peak_memory_does_not_grow_with_the_photo_count(tmp_path):
    done = subprocess.run([sys.executable, str(BENCHMARK), "--counts", "10", "40", "--work", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    ratio = float(re.search(r"new: peak RSS at 40 photos / at 10 photos = ([\d.]+)", done.stdout).group(1))
    assert ratio <= 1.2, done.stdout  # the old code: ~3x (36 MB more per photo)
