"""Measuring for the benchmarks: peak resident memory of process trees, sampled while a benchmark
runs (psutil), and the best wall time of a repeated call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

MIB = 1 << 20

# label -> (root pids, whether their descendants count too)
Groups = dict[str, tuple[list[int], bool]]


def tree_rss(pids: list[int], with_children: bool = True) -> int:
    """Resident bytes of these processes (and their descendants), each counted once."""
    seen: dict[int, int] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for process in [root, *(root.children(recursive=True) if with_children else [])]:
                if process.pid not in seen:
                    seen[process.pid] = process.memory_info().rss
        except psutil.Error:
            continue
    return sum(seen.values())


class PeakSampler(threading.Thread):
    """Samples the resident memory of labelled process groups every 0.2 s; keeps each peak."""

    def __init__(self, groups: Callable[[], Groups]) -> None:
        super().__init__(daemon=True)
        self.groups = groups
        self.peaks: dict[str, int] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.2):
            for label, (pids, with_children) in self.groups().items():
                self.peaks[label] = max(self.peaks.get(label, 0), tree_rss(pids, with_children))

    def stop(self) -> dict[str, int]:
        self.stopped.set()
        self.join()
        return self.peaks


def best_of(repeat: int, work: Callable[[], Any]) -> tuple[float, Any]:
    """The fastest of ``repeat`` calls of ``work`` (seconds), and what the last call returned."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return best, result
