"""A real Ray cluster on this machine for the cluster tests and benchmarks/ray_overhead.py: a head and one
extra worker node (or more: ``workers``), each a ``ray start --block`` process with its own Ray temporary
folder (under a short ``/tmp/ssray-*``, removed at the end) and its own ``TMPDIR`` (where SplatStudio's
stage workers make their project copies), so nothing is shared by accident. :meth:`LocalRayCluster.kill_node`
takes a node away as a machine that dies would (its whole process tree, SIGKILL).

Ray gives each node the machine's own interface address even when told 127.0.0.1 (``ray start`` resolves a
loopback address to a reachable one; only its Windows/macOS single-node mode keeps loopback, and it refuses
worker nodes); the nodes are still on this machine only, and the client connects on 127.0.0.1.

Stopping ends the two ``ray start --block`` processes (each stops the Ray processes it started) and then, by
process id, any process of their trees still there.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).with_name("ray"))
OBJECT_STORE_BYTES = 150 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalRayCluster:
    """``with LocalRayCluster(root) as cluster:`` ... ``cluster.address`` (``ray://127.0.0.1:PORT``)."""

    def __init__(self, root: Path, head_cpus: int = 1, worker_cpus: int = 1, worker_env: dict[str, str] | None = None,
                 workers: int = 1, head_env: dict[str, str] | None = None):
        self.root = Path(root)
        self.head_cpus = head_cpus
        self.worker_cpus = worker_cpus
        self.worker_env = worker_env or {}
        self.head_env = head_env or {}
        self.workers = workers
        self.gcs_port = free_port()
        self.client_port = free_port()
        self.processes: list[subprocess.Popen] = []
        self.nodes: dict[str, subprocess.Popen] = {}
        # Ray's own folders hold its sockets, whose paths may not exceed 107 bytes: a short folder of their own
        self.ray_root = Path(tempfile.mkdtemp(prefix="ssray-"))

    @property
    def address(self) -> str:
        return f"ray://127.0.0.1:{self.client_port}"

    @property
    def worker_names(self) -> list[str]:
        """"worker", then "worker2", "worker3"..."""
        return ["worker" if i == 0 else f"worker{i + 1}" for i in range(self.workers)]

    def node_tmp(self, name: str) -> Path:
        """The ``TMPDIR`` of node ``name`` ("head", "worker", "worker2"...)."""
        return self.root / f"{name}-tmp"

    def _start(self, name: str, args: list[str], extra_env: dict[str, str]) -> None:
        tmp = self.node_tmp(name)
        tmp.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, TMPDIR=str(tmp), RAY_USAGE_STATS_ENABLED="0", **extra_env)
        env.pop("RAY_ADDRESS", None)
        log = open(self.root / f"{name}.log", "wb")
        process = subprocess.Popen([RAY, "start", "--block", "--disable-usage-stats",
                                    "--temp-dir", str(self.ray_root / name),
                                    "--object-store-memory", str(OBJECT_STORE_BYTES), *args],
                                   stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        self.processes.append(process)
        self.nodes[name] = process

    def start(self, timeout: float = 120.0) -> LocalRayCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        # as the README says to start a head: without gRPC's fork handlers, whose skipped run crashed one Ray
        # Client server start in ten or so (a connection then waited 30 s)
        self._start("head", ["--head", "--port", str(self.gcs_port), "--ray-client-server-port", str(self.client_port),
                             "--num-cpus", str(self.head_cpus), "--include-dashboard", "false"],
                    {"GRPC_ENABLE_FORK_SUPPORT": "false", **self.head_env})
        self._wait(1, timeout)
        for name in self.worker_names:
            self._start(name, ["--address", f"127.0.0.1:{self.gcs_port}", "--num-cpus", str(self.worker_cpus)],
                        self.worker_env)
        self._wait(1 + self.workers, timeout)
        return self

    def kill_node(self, name: str) -> None:
        """Node ``name`` dies at once, as a machine that loses power: SIGKILL to its ``ray start`` and every
        process under it (Ray's own, the stage workers, the stages they run)."""
        process = self.nodes[name]
        if process.poll() is not None:  # gone already (its process id may be another process's now)
            return
        try:
            victims = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
        except psutil.Error:
            victims = []
        for victim in victims:
            try:
                victim.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(victims, timeout=10)
        process.wait(timeout=10)

    def _wait(self, nodes: int, timeout: float) -> None:
        """Until ``ray status`` lists ``nodes`` active nodes (a ``ray start`` that died is an error)."""
        deadline = time.monotonic() + timeout
        while True:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"ray start ended with {process.returncode}: "
                                       + (self.root / "head.log").read_text(errors="replace")[-2000:])
            status = subprocess.run([RAY, "status", "--address", f"127.0.0.1:{self.gcs_port}"], capture_output=True,
                                    text=True, env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"))
            active = status.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0] if status.returncode == 0 else ""
            if active.count("node_") >= nodes:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Ray cluster did not start {nodes} node(s) in {timeout:g} s: {status.stdout}"
                                   f"{status.stderr}")
            time.sleep(1.0)

    def stop(self) -> None:
        """Stop the worker node, then the head; kill by id whatever of their trees is left after 30 s."""
        for process in reversed(self.processes):
            try:
                tree = psutil.Process(process.pid).children(recursive=True)
            except psutil.Error:
                tree = []
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            _gone, alive = psutil.wait_procs(tree, timeout=10)
            for child in alive:
                try:
                    child.kill()
                except psutil.Error:
                    pass
        self.processes.clear()
        shutil.rmtree(self.ray_root, ignore_errors=True)

    def __enter__(self) -> LocalRayCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
