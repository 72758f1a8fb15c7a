"""Peak resident memory of process trees, sampled while a benchmark runs (psutil)."""

from __future__ import annotations

import threading
from collections.abc import Callable

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
