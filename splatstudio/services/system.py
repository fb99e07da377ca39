"""System panel data: CPU and RAM via psutil, NVIDIA GPUs via NVML (``pynvml`` from nvidia-ml-py).

Sampling runs on a QTimer every ``gpu_check_interval`` seconds; each sample is a plain dict so the
panel (and tests) need nothing Qt-specific. Without an NVIDIA GPU or driver, ``gpus`` is empty and
``gpu_message`` says why in plain words.
"""

from __future__ import annotations

import time
from typing import Any

import psutil
from PySide6.QtCore import QObject, QTimer, Signal

NO_GPU = "No NVIDIA GPU found — training uses the CPU"


def _nvml():
    """Initialised ``pynvml`` module, or raise with the reason there is no GPU information."""
    import pynvml

    pynvml.nvmlInit()
    return pynvml


class GpuProbe:
    """Reads utilisation and memory of every NVIDIA GPU; a machine without one gets a message."""

    def __init__(self) -> None:
        self.message = ""
        self._nv = None
        try:
            self._nv = _nvml()
            count = self._nv.nvmlDeviceGetCount()
            if count == 0:
                self.message = NO_GPU
        except ImportError:
            self.message = "GPU monitoring unavailable (nvidia-ml-py is not installed)"
        except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded...: a person reads "no GPU", not those
            self._nv = None
            self.message = NO_GPU

    def sample(self) -> list[dict[str, Any]]:
        if self._nv is None:
            return []
        nv = self._nv
        gpus = []
        for index in range(nv.nvmlDeviceGetCount()):
            handle = nv.nvmlDeviceGetHandleByIndex(index)
            name = nv.nvmlDeviceGetName(handle)
            util = nv.nvmlDeviceGetUtilizationRates(handle)
            memory = nv.nvmlDeviceGetMemoryInfo(handle)
            gpus.append({"index": index, "name": name.decode() if isinstance(name, bytes) else name,
                         "utilization": float(util.gpu), "memory_used": int(memory.used),
                         "memory_total": int(memory.total)})
        return gpus


def sample_system(gpu: GpuProbe) -> dict[str, Any]:
    memory = psutil.virtual_memory()
    return {
        "time": time.time(),
        "cpu_percent": psutil.cpu_percent(interval=None),
        "cpu_per_core": psutil.cpu_percent(interval=None, percpu=True),
        "cpu_count": psutil.cpu_count(logical=True),
        "memory_used": int(memory.total - memory.available),
        "memory_total": int(memory.total),
        "gpus": gpu.sample(),
        "gpu_message": gpu.message,
    }


class SystemSampler(QObject):
    """Emits :attr:`sig_sampled` with a :func:`sample_system` dict every ``interval`` seconds."""

    sig_sampled = Signal(object)
    """One sample: cpu_percent, cpu_per_core, memory_used/total, gpus (list), gpu_message."""

    def __init__(self, interval: float = 5.0, parent: QObject | None = None):
        super().__init__(parent)
        self.gpu = GpuProbe()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._on_timeout)
        self.set_interval(interval)
        psutil.cpu_percent(interval=None)  # prime the counters: the first real sample is meaningful

    def set_interval(self, seconds: float) -> None:
        self._timer.setInterval(max(100, int(seconds * 1000)))

    def start(self) -> None:
        self._timer.start()
        self._on_timeout()

    def stop(self) -> None:
        self._timer.stop()

    def _on_timeout(self) -> None:
        self.sig_sampled.emit(sample_system(self.gpu))
