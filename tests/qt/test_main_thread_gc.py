"""`MainThreadCollector`: reference cycles made and dropped on a worker thread are collected on the main thread."""

from __future__ import annotations

import gc
import threading

from splatstudio.services.main_thread_gc import MainThreadCollector


class _Cycle:
    """Half of a reference cycle that notes the thread it was destroyed on."""

    def __init__(self, seen: list[str]) -> None:
        self.seen = seen
        self.other = _Peer(self)

    def __del__(self) -> None:
        self.seen.append(threading.current_thread().name)


class _Peer:
    def __init__(self, owner: _Cycle) -> None:
        self.owner = owner


CYCLES = 2 * gc.get_threshold()[0]
"""Enough dropped cycles to pass generation 0's threshold: Python's own collector would run on the worker."""


def _worker(seen: list[str]) -> None:
    for _ in range(CYCLES):
        _Cycle(seen)


def test_cycles_dropped_by_a_worker_die_on_the_main_thread(qtbot):
    seen: list[str] = []
    gc.enable()  # as outside the window (the Qt tests' own collector turned it off)
    collector = MainThreadCollector(interval_ms=20)
    collector.start()
    try:
        assert not gc.isenabled()
        worker = threading.Thread(target=_worker, args=(seen,), name="worker")
        worker.start()
        worker.join()
        assert seen == []  # nothing collected on the worker
        qtbot.waitUntil(lambda: len(seen) == CYCLES, timeout=5_000)  # the main thread's timer collected them
        assert set(seen) == {threading.main_thread().name}
    finally:
        collector.stop()
    assert gc.isenabled()  # given back as it was


def test_check_collects_only_past_a_threshold(qapp):
    collector = MainThreadCollector()
    collector.start()
    try:
        gc.collect()
        seen: list[str] = []
        _Cycle(seen)
        assert collector.check() == 0 and seen == []  # generation 0 holds a handful of objects: below its threshold
        for _ in range(gc.get_threshold()[0] + 1):
            _Cycle(seen)
        assert collector.check() > 0 and seen
    finally:
        collector.stop()
