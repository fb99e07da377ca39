"""Guards for Qt-binding bugs the app depends on not having.

PySide6 6.12.0 corrupts reference counts of Python objects emitted through ``Signal(object)``: after
a few hundred emissions the interpreter aborts during garbage collection ("bool_dealloc" / segfault).
Our services send every parsed event that way, so pyproject excludes 6.12.0; this test catches the
bug if a future version brings it back.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc
from PySide6.QtCore import QCoreApplication, QObject, Signal
app = QCoreApplication([])
class Emitter(QObject):
    sig = Signal(object)
emitter = Emitter()
received = []
emitter.sig.connect(received.append)
for i in range(500):
    emitter.sig.emit(("progress", i / 10, {"loss": i * 0.5}))
gc.collect()
print(len(received))
"""


def test_signal_object_emission_keeps_refcounts_intact():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60,
                            env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, f"PySide6 crashed emitting Python objects: {result.stderr[-500:]}"
    assert result.stdout.strip() == "500"
