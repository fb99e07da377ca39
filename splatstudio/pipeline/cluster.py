"""Where stages run (issue 24): the ``executor`` setting, and this process's connection to a Ray cluster.

``local`` (this computer, the default: nothing of Ray is imported), ``auto`` (the Ray cluster this computer
belongs to) or ``ray://HOST:PORT`` (a cluster's Ray Client address). Ray is imported only when a stage goes
to a cluster (the ``cluster`` extra). What a cluster offers (:class:`ClusterInfo`, :func:`stage_slots`) is
asked by Preferences (:func:`probe`), the run queue (:func:`probe_info`) and the runners (:func:`connect`).
The stages themselves travel in :mod:`splatstudio.pipeline.remote`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from splatstudio import __version__
from splatstudio.model.settings import SettingsError

LOCAL, AUTO = "local", "auto"
CLIENT_SCHEME = "ray://"
INSTALL_HINT = f"pip install 'splatstudio[cluster]=={__version__}'"


class ClusterError(Exception):
    """The cluster cannot be used (not installed, unreachable, another SplatStudio version on a worker...):
    the message names the problem and what to do."""


class WorkerLost(ClusterError):
    """The worker running a stage, or the connection to the cluster, went away while it ran."""


# ------------------------------------------------------------------------------------------ the setting

def parse_executor(value: str | None) -> str | None:
    """The Ray address an ``executor`` value names, or None for ``local``. :class:`SettingsError` (a usage
    error) for anything else than ``local``, ``auto`` and ``ray://HOST:PORT``."""
    text = (value or LOCAL).strip()
    if text.lower() == LOCAL:
        return None
    if text.lower() == AUTO:
        return AUTO
    if text.startswith(CLIENT_SCHEME):
        host, _, port = text[len(CLIENT_SCHEME):].rpartition(":")
        if host and port.isdigit() and 0 < int(port) < 65536:
            return text
    raise SettingsError(f"setting executor: {text!r} is not local, auto or ray://HOST:PORT "
                        "(a Ray cluster's client address, port 10001 by default)")


def ray_module() -> Any:
    """``import ray``, or :class:`ClusterError` saying how to install it. Ray's automatic ``ray.init()`` is off:
    a call made after the connection to the cluster broke must fail, not start a Ray instance on this computer
    (which also writes a token to ``~/.ray/auth_token`` that breaks every later ``ray start`` here)."""
    os.environ["RAY_ENABLE_AUTO_CONNECT"] = "0"  # read when Ray is imported
    try:
        import ray
        import ray._private.auto_init_hook as auto_init
    except ImportError:
        raise ClusterError(f"running stages on a Ray cluster needs Ray, which is not installed here: {INSTALL_HINT}"
                           ) from None
    auto_init.enable_auto_connect = False  # Ray was imported before (by a test, a benchmark)
    return ray


@dataclass(frozen=True)
class ClusterInfo:
    """What a cluster offers, for the CLI's first line, Preferences and the run queues."""

    address: str
    nodes: int
    cpus: float
    gpus: float
    memory_bytes: float
    slots: int = 0
    """How many stages the cluster runs at once (:func:`stage_slots`): how many runs it holds."""

    def describe(self) -> str:
        gpus = f", {self.gpus:g} GPU{'s' if self.gpus != 1 else ''}" if self.gpus else ", no GPU"
        return (f"{self.nodes} node{'s' if self.nodes != 1 else ''}, {self.cpus:g} CPUs{gpus}, "
                f"{self.memory_bytes / 2**30:.1f} GiB memory; room for {self.slots} "
                f"run{'s' if self.slots != 1 else ''} at once")

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "nodes": self.nodes, "cpus": self.cpus, "gpus": self.gpus,
                "memory_bytes": self.memory_bytes, "slots": self.slots}


def stage_slots(nodes: Iterable[dict[str, Any]]) -> int:
    """How many stages ``nodes`` (``ray.nodes()``) run at once: a stage's worker takes one CPU of a node (a
    whole one: Ray does not split it across nodes) and, when the cluster has GPUs, its training takes one
    GPU, so a cluster with GPUs holds no more runs than it has whole GPUs (a run never waits at training
    for a GPU another run's SfM does not need). Dead nodes offer nothing."""
    cpus = gpus = 0
    for node in nodes:
        if not node.get("Alive"):
            continue
        resources = node.get("Resources") or {}
        cpus += int(float(resources.get("CPU", 0)) + 1e-9)
        gpus += int(float(resources.get("GPU", 0)) + 1e-9)
    return min(cpus, gpus) if gpus else cpus


def _is_closed_grpc_channel(args: Any) -> bool:
    """Whether a thread died of gRPC's "Channel closed!" inside gRPC's own code: its connectivity poller (Ray
    Client's channel) raises it when the cluster goes away under it."""
    if args.exc_type is not ValueError or "Channel closed" not in str(args.exc_value):
        return False
    tb = args.exc_traceback
    while tb is not None:
        if f"{os.sep}grpc{os.sep}" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def quiet_closed_channels() -> None:
    """Keep gRPC's poller thread from printing a traceback when the cluster goes away: the stage that lost the
    cluster says so in words (and the project stays resumable); every other thread's exception is reported as
    before. Installed once per process."""
    previous = threading.excepthook
    if getattr(previous, "splatstudio_quiet_grpc", False):
        return

    def hook(args: Any) -> None:
        if not _is_closed_grpc_channel(args):
            previous(args)

    hook.splatstudio_quiet_grpc = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def connect(address: str) -> ClusterInfo:
    """Connect this process to the cluster (once; again after :func:`disconnect`). :class:`ClusterError`
    naming the address when it cannot be reached."""
    ray = ray_module()
    quiet_closed_channels()
    if not ray.is_initialized():
        import logging

        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for attempt in (1, 2):
                try:
                    with warnings.catch_warnings():  # the reason is in the error (Ray warns of a client's timeout)
                        warnings.simplefilter("ignore")
                        ray.init(address=address, namespace="splatstudio", log_to_driver=False,
                                 logging_level=logging.ERROR)
                    break
                except ConnectionAbortedError:  # the head could not start this client's server in time: again
                    if attempt == 2:
                        raise
                    time.sleep(2.0)
        except Exception as exc:  # ConnectionError, a gRPC error, a version mismatch of Ray itself...
            where = "no Ray cluster runs on this computer" if address == AUTO else f"cannot reach {address}"
            raise ClusterError(f"{where} ({_first_line(exc)}); check the executor setting and that the cluster "
                               "runs (`ray start --head` on its head machine), or set executor=local") from None
        finally:  # ray.init installs its own SIGTERM handler in a driver: Ctrl+C and SIGTERM stay a cancel
            if threading.current_thread() is threading.main_thread():
                for sig, handler in handlers.items():
                    signal.signal(sig, handler)
    return cluster_info(address)


def cluster_info(address: str) -> ClusterInfo:
    ray = ray_module()
    try:
        total = ray.cluster_resources()
        nodes = ray.nodes()
    except Exception as exc:
        raise ClusterError(f"the cluster at {address} does not answer ({_first_line(exc)})") from None
    return ClusterInfo(address, sum(1 for node in nodes if node.get("Alive")), float(total.get("CPU", 0)),
                       float(total.get("GPU", 0)), float(total.get("memory", 0)), stage_slots(nodes))


def disconnect() -> None:
    if "ray" in sys.modules:
        ray = sys.modules["ray"]
        if ray.is_initialized():
            ray.shutdown()


_PROBE = """import json, sys
from splatstudio.pipeline import cluster
try:
    print(json.dumps(cluster.connect(sys.argv[1]).to_dict()))
except cluster.ClusterError as exc:
    print(json.dumps({"error": str(exc)}))
finally:
    cluster.disconnect()
"""


def probe_info(address: str, timeout: float = 60.0) -> ClusterInfo:
    """What the cluster at ``address`` (:func:`parse_executor`'s value) offers, asked from a child process (a
    Ray connection belongs to one process and may take seconds: this may run in any thread).
    :class:`ClusterError` saying why it cannot be used."""
    import json

    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, address], capture_output=True, text=True,
                              timeout=timeout, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    except subprocess.TimeoutExpired as exc:
        said = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        last = [line.strip() for line in said.splitlines() if line.strip()][-1:]
        raise ClusterError(f"{address}: no answer within {timeout:g} s" + (f" ({last[0][:300]})" if last else "")
                           ) from None
    lines = done.stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1]) if lines else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ClusterError(f"{address}: cannot be checked ({why})")
    if "error" in data:
        raise ClusterError(str(data["error"]))
    return ClusterInfo(str(data["address"]), int(data["nodes"]), float(data["cpus"]), float(data["gpus"]),
                       float(data["memory_bytes"]), int(data["slots"]))


def probe(executor: str | None, timeout: float = 60.0) -> str:
    """One line on the cluster an ``executor`` value names, for Preferences: what it offers, or why it
    cannot be used (:func:`probe_info`; "stages run on this computer" for ``local``, at once)."""
    try:
        address = parse_executor(executor)
    except SettingsError as exc:
        return str(exc)
    if address is None:
        return "stages run on this computer"
    try:
        return f"{address}: {probe_info(address, timeout).describe()}"
    except ClusterError as exc:
        text = str(exc)
        return text if text.startswith(f"{address}: ") else f"{address}: {text}"


def _first_line(exc: BaseException) -> str:
    """An error in one line: its first, or its last when the first only announces the rest (a traceback)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    line = lines[-1] if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return line[:300]
