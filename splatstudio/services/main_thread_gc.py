"""Python's cycle collector, run on the Qt main thread only (`MainThreadCollector`).

Python collects reference cycles in whichever thread happens to allocate past the collector's threshold:
here often a worker (the viewer's depth sort, the compositor's warm-up, a thread-pool job). A Qt object
owned by Python and caught in a cycle (a panel holding its viewer, a canvas holding its timers) is then
destroyed from that thread; shiboken defers the C++ deletion to the main thread's next Python step, in the
middle of whatever that step is doing: a segfault in ``QObject::~QObject`` (CI's GL tests, exit 139). So
while the window runs the automatic collector is off, and a timer on the main thread collects between
events, by the same per-generation thresholds Python uses.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 500
"""How often the main thread looks at the collector's counts (a cycle waits at most this long)."""


class MainThreadCollector(QObject):
    """Turns Python's automatic cycle collection off (`start`) and collects on a main-thread timer instead;
    `stop` turns it back on. Create it on the main thread."""

    def __init__(self, interval_ms: int = INTERVAL_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thresholds = gc.get_threshold()
        self._was_enabled = gc.isenabled()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.check)

    def start(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        if self._was_enabled:
            gc.enable()

    def check(self) -> int:
        """Collect the generations whose counts passed their thresholds (as Python's own collector would);
        the number of unreachable objects found."""
        count0, count1, count2 = gc.get_count()
        limit0, limit1, limit2 = self._thresholds
        if count0 <= limit0:
            return 0
        if count1 <= limit1:
            return gc.collect(0)
        return gc.collect(2 if count2 > limit2 else 1)
