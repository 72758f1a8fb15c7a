"""Vectorized word n-gram hashing over Arrow string columns (numpy, no per-row Python loop).

Texts are compared on :func:`curate.util.text.matching_text` words. Every word gets an integer id, a
window of ``n`` consecutive word ids inside one row gets a 64-bit polynomial hash, and windows never
cross row boundaries. Used by decontamination (exact n-gram overlap with benchmarks) and by the
quality stage's repetition rule (share of repeated n-grams).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.util.hashing import splitmix64
from curate.util.text import matching_text, split_whitespace

# Odd 64-bit multiplier for the rolling hash; word ids are mixed with splitmix64 first.
_PRIME = np.uint64(0x9E3779B97F4A7C15)


@dataclass
class Words:
    """Words of every row, flattened: ``words[offsets[i]:offsets[i + 1]]`` belong to row ``i``."""

    words: pa.Array  # string
    offsets: np.ndarray  # int64, len = rows + 1

    @property
    def num_rows(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def split_words(values: pa.Array | pa.ChunkedArray, normalize: bool = True) -> Words:
    """Split each row into matching-text words (NFKC, lower-cased, punctuation folded)."""
    text = matching_text(values) if normalize else pc.fill_null(values, "")
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    lists = split_whitespace(text)
    offsets = np.asarray(lists.offsets, dtype=np.int64)
    return Words(lists.values, offsets - offsets[0])


@dataclass
class Windows:
    """Every ``n``-word window: its hash, its row and where it starts in the flat word array."""

    hashes: np.ndarray  # uint64
    rows: np.ndarray  # int64
    starts: np.ndarray  # int64


def window_starts(offsets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, start) of every window of ``n`` words that fits inside its row."""
    lengths = np.diff(offsets)
    per_row = np.maximum(lengths - n + 1, 0)
    total = int(per_row.sum())
    rows = np.repeat(np.arange(len(lengths), dtype=np.int64), per_row)
    base = np.cumsum(per_row) - per_row  # index of each row's first window
    starts = np.arange(total, dtype=np.int64) - np.repeat(base - offsets[:-1], per_row)
    return rows, starts


def hash_windows(ids: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """64-bit polynomial hash of ``ids[start:start + n]`` for every start."""
    mixed = splitmix64(ids)
    hashes = np.zeros(len(starts), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            hashes = hashes * _PRIME + mixed[starts + k]
    return hashes


def ngram_windows(words: Words, n: int, ids: np.ndarray | None = None) -> Windows:
    """Hash every ``n``-word window of every row (ids default to a per-call dictionary encoding)."""
    if ids is None:
        ids = (
            pc.dictionary_encode(words.words)
            .indices.to_numpy(zero_copy_only=False)
            .astype(np.int64)
        )
    rows, starts = window_starts(words.offsets, n)
    return Windows(hash_windows(ids, starts, n), rows, starts)


def repeated_ngram_ratio(words: Words, n: int) -> np.ndarray:
    """Per row: share of its ``n``-gram windows that repeat an earlier window (0 when none)."""
    windows = ngram_windows(words, n)
    totals = np.bincount(windows.rows, minlength=words.num_rows)
    if len(windows.hashes) == 0:
        return np.zeros(words.num_rows)
    # Distinct (row, hash) pairs: sort by row then hash and count changes.
    order = np.lexsort((windows.hashes, windows.rows))
    rows = windows.rows[order]
    hashes = windows.hashes[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (hashes[1:] != hashes[:-1])
    distinct = np.bincount(rows[first], minlength=words.num_rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(totals > 0, 1.0 - distinct / np.maximum(totals, 1), 0.0)
    return ratio
