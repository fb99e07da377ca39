"""How the kernels' worker threads wait between parallel regions: `configure_waiting`, called by the entry
points (train.py, render.py, benchmark.py) before numba starts its OpenMP threads (libgomp reads the
variables once, when it loads).  Imports nothing outside the standard library.

A training iteration runs ~25 parallel regions (projection, sort, binning, compositing, loss, Adam...) with a
little Python between them.  With the workers asleep between regions (OMP_WAIT_POLICY=PASSIVE alone), each
region waits ~70 us for them to wake: ~1.5 ms of a 15 ms iteration at 8,700 Gaussians.  A spin count of 10,000
keeps a worker awake for ~25 us after a region, long enough to catch the next one, and then lets it sleep.
On a free machine that costs no CPU time per iteration (the spin replaces the wake-ups); on a machine busy
with other work a spinning worker takes CPU from it (measured: ~20 % more CPU per iteration beside two
CPU-bound processes).  So the workers spin only when the machine is free as the process starts: at most
three quarters of a core busy over a quarter of a second (/proc/stat; elsewhere they never spin).  Figures in
NOTES.  Values already in the environment are kept.
"""
import os
import time

SPIN_COUNT = "10000"
BUSY_CORES_ALLOWED = 0.75  # a CPU-bound job beside us keeps a core busy; starting processes do not, for long
SAMPLE_SECONDS = 0.25


def _cpu_times():
    """(idle, total) jiffies of all CPUs together (/proc/stat's first line; idle includes iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    return fields[3] + fields[4], sum(fields)


def busy_cores(seconds=SAMPLE_SECONDS, times=_cpu_times, sleep=time.sleep, cpus=None):
    """Cores busy over the next `seconds` (all processes, this one included), or None where that cannot be read."""
    try:
        idle0, total0 = times()
        sleep(seconds)
        idle1, total1 = times()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (1.0 - (idle1 - idle0) / (total1 - total0)) * (cpus or os.cpu_count() or 1)


def configure_waiting(busy=busy_cores):
    """Threads asleep between parallel regions (PASSIVE), after a short spin when the machine is free."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "GOMP_SPINCOUNT" in os.environ:
        return
    load = busy()
    if load is not None and load <= BUSY_CORES_ALLOWED:
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
