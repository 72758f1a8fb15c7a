"""Per-document shingle-hash sets of a stream, kept chunk by chunk until verification needs them."""

from __future__ import annotations

import numpy as np

from curate.lib.minhash.lsh import SetIndex, concat_ranges


class HashStore:
    """Per-document hash sets of a stream, chunk by chunk (some documents may lack them)."""

    def __init__(self) -> None:
        self.hashes: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []
        self.known: list[np.ndarray] = []

    def add(self, hashes: np.ndarray, counts: np.ndarray, known: np.ndarray | None = None) -> None:
        self.hashes.append(hashes)
        self.counts.append(np.asarray(counts, np.int64))
        self.known.append(np.ones(len(counts), bool) if known is None else np.asarray(known, bool))

    def add_missing(self, n: int) -> None:
        self.hashes.append(np.zeros(0, np.uint32))
        self.counts.append(np.zeros(n, np.int64))
        self.known.append(np.zeros(n, bool))

    def index(self, docs: np.ndarray) -> SetIndex | None:
        """Sorted sets of ``docs`` (sorted global numbers) that have them; None if none do."""
        if not any(k.any() for k in self.known):
            return None
        sizes = np.array([len(c) for c in self.counts], np.int64)
        chunk_starts = np.concatenate([[0], np.cumsum(sizes)])
        docs = docs[np.concatenate(self.known)[docs]] if len(docs) else docs
        chunk = np.searchsorted(chunk_starts, docs, side="right") - 1
        parts: list[np.ndarray] = []
        counts: list[np.ndarray] = []
        for c in np.unique(chunk):
            local = docs[chunk == c] - chunk_starts[c]
            starts = np.concatenate([[0], np.cumsum(self.counts[c])])[local]
            sizes_c = self.counts[c][local]
            parts.append(self.hashes[c][concat_ranges(starts, sizes_c)])
            counts.append(sizes_c)
        hashes = np.concatenate(parts) if parts else np.zeros(0, np.uint32)
        count = np.concatenate(counts) if counts else np.zeros(0, np.int64)
        return SetIndex(docs, hashes, count)


def known(sets: SetIndex, docs: np.ndarray) -> np.ndarray:
    """Which documents have a set in ``sets``."""
    if len(sets.docs) == 0:
        return np.zeros(len(docs), bool)
    at = np.minimum(np.searchsorted(sets.docs, docs), len(sets.docs) - 1)
    return np.asarray(sets.docs[at] == docs)
