"""gstrain.waiting: the worker threads spin briefly between parallel regions only when the machine is free."""
import os
import subprocess
import sys

import pytest
from conftest import GS_DIR
from gstrain import waiting


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)


def test_busy_cores_from_two_samples_of_the_cpu_times():
    samples = iter([(1000, 4000), (1150, 4200)])  # (idle, total): 150 of 200 jiffies idle
    slept = []
    got = waiting.busy_cores(0.1, times=lambda: next(samples), sleep=slept.append, cpus=4)
    assert got == pytest.approx(1.0) and slept == [0.1]  # a quarter of 4 cores busy
    assert waiting.busy_cores(times=lambda: (5, 10), sleep=lambda s: None, cpus=2) is None  # no time passed

    def unreadable():
        raise OSError("no /proc")

    assert waiting.busy_cores(times=unreadable, sleep=lambda s: None) is None


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="Linux only: /proc/stat")
def test_busy_cores_reads_this_machine():
    got = waiting.busy_cores(0.05)
    assert got is not None and 0.0 <= got <= os.cpu_count() + 1e-9


def test_spin_only_on_a_free_machine(clean_env):
    waiting.configure_waiting(busy=lambda: 0.2)
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and os.environ["GOMP_SPINCOUNT"] == waiting.SPIN_COUNT


@pytest.mark.parametrize("busy", [1.5, None])
def test_no_spin_on_a_busy_machine_or_where_unknown(clean_env, busy):
    waiting.configure_waiting(busy=lambda: busy)
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and "GOMP_SPINCOUNT" not in os.environ


def test_the_users_values_are_kept(clean_env, monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setenv("GOMP_SPINCOUNT", "0")
    waiting.configure_waiting(busy=lambda: 0.0)
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE" and os.environ["GOMP_SPINCOUNT"] == "0"


def test_train_py_sets_the_policy_before_numba_starts_its_threads():
    """The variables must be in the environment when libgomp loads: train.py sets them before any import of
    numba or torch (checked in a fresh process: neither module is loaded when configure_waiting returns)."""
    code = ("import sys, runpy; sys.argv = ['train.py', '--help']\n"
            "import gstrain.waiting as w\n"
            "orig = w.configure_waiting\n"
            "def spy(*a, **k):\n"
            "    orig(*a, **k); print('loaded:', 'numba' in sys.modules or 'torch' in sys.modules)\n"
            "w.configure_waiting = spy\n"
            f"sys.path.insert(0, {GS_DIR!r})\n"
            f"runpy.run_path({os.path.join(GS_DIR, 'train.py')!r}, run_name='__main__')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=GS_DIR, env=env,
                       timeout=120)
    assert "loaded: False" in p.stdout, p.stdout[-2000:] + p.stderr[-2000:]
