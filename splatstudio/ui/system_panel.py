"""System panel: CPU per core, memory, and each NVIDIA GPU's utilisation and memory (or, without one,
a plain sentence saying so)."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QFormLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

from splatstudio.services.system import SystemSampler

GB = 1024 ** 3


def _bar(value: float, text: str) -> QProgressBar:
    bar = QProgressBar()
    bar.setRange(0, 100)
    bar.setValue(int(round(value)))
    bar.setFormat(text)
    bar.setMaximumHeight(16)
    return bar


class SystemPanel(QWidget):
    """Shows each :class:`SystemSampler` sample; rebuilds its rows only when the set of rows changes."""

    def __init__(self, sampler: SystemSampler, parent: QWidget | None = None):
        super().__init__(parent)
        self.sampler = sampler
        self.form = QFormLayout()
        self.gpu_message = QLabel(wordWrap=True)
        self.gpu_message.setObjectName("gpuMessage")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(self.form)
        layout.addWidget(self.gpu_message)
        layout.addStretch(1)
        self._bars: dict[str, QProgressBar] = {}
        sampler.sig_sampled.connect(self._on_sample_received)

    def _on_sample_received(self, sample: dict[str, Any]) -> None:
        rows: list[tuple[str, float, str]] = [("CPU", sample["cpu_percent"], f"{sample['cpu_percent']:.0f}%")]
        for index, value in enumerate(sample["cpu_per_core"]):
            rows.append((f"core {index}", value, f"{value:.0f}%"))
        used, total = sample["memory_used"], sample["memory_total"]
        rows.append(("RAM", 100 * used / max(total, 1), f"{used / GB:.1f} / {total / GB:.1f} GB"))
        for gpu in sample["gpus"]:
            name = f"GPU {gpu['index']}"
            rows.append((name, gpu["utilization"], f"{gpu['name']}: {gpu['utilization']:.0f}%"))
            memory = 100 * gpu["memory_used"] / max(gpu["memory_total"], 1)
            rows.append((f"{name} memory", memory,
                         f"{gpu['memory_used'] / GB:.1f} / {gpu['memory_total'] / GB:.1f} GB"))
        self._show(rows)
        message = sample.get("gpu_message") or ""
        self.gpu_message.setText(message)
        self.gpu_message.setVisible(bool(message))

    def _show(self, rows: list[tuple[str, float, str]]) -> None:
        if [name for name, _, _ in rows] != list(self._bars):
            while self.form.rowCount():
                self.form.removeRow(0)
            self._bars = {}
            for name, value, text in rows:
                self._bars[name] = _bar(value, text)
                self.form.addRow(name, self._bars[name])
            return
        for name, value, text in rows:
            bar = self._bars[name]
            bar.setValue(int(round(value)))
            bar.setFormat(text)
