"""How the kernels' worker threads wait between parallel regions: `configure_waiting`, called by the entry
points (train.py, render.py, benchmark.py) before numba starts its OpenMP threads (libgomp reads the
variables once, when it loads).  Imports nothing.

A training iteration runs ~25 parallel regions (projection, sort, binning, compositing, loss, Adam...) with a
little Python between them.  With the workers asleep between regions (OMP_WAIT_POLICY=PASSIVE alone), each
region waits ~70 us for them to wake: ~1.5 ms of a 15 ms iteration at 8,700 Gaussians.  A spin count of 10,000
keeps a worker awake for ~25 us after a region, long enough to catch the next one, and then lets it sleep, so a
machine shared with other work gives up at most that much per region (figures in NOTES).  Values already in the
environment are kept.
"""
import os

SPIN_COUNT = "10000"


def configure_waiting():
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)
