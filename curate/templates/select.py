"""Vectorized helpers: which records a family applies to, seeded hashing, ranks within groups."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.templates.spec import AppliesTo
from curate.util.hashing import splitmix64

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def seeded_keys(count: int, seed: np.uint64) -> np.ndarray:
    """``count`` distinct pseudo-random uint64 keys for positions 0..count-1 of one stream."""
    return splitmix64(np.arange(count, dtype=np.uint64) ^ seed)


def seeded_permutation(count: int, seed: np.uint64) -> np.ndarray:
    """A seeded shuffle of ``range(count)``."""
    return np.argsort(seeded_keys(count, seed), kind="stable")


def runs(sorted_codes: np.ndarray) -> list[tuple[int, int]]:
    """``(begin, end)`` of each run of equal values in a sorted array."""
    if len(sorted_codes) == 0:
        return []
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]).tolist()
    return list(zip(starts, [*starts[1:], len(sorted_codes)], strict=True))


def group_ranks(codes: np.ndarray) -> np.ndarray:
    """For each row, how many earlier rows share its code (0 for the first of each group)."""
    n = len(codes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    lengths = np.diff(np.r_[starts, n])
    ranks_sorted = np.arange(n) - np.repeat(starts, lengths)
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = ranks_sorted
    return ranks


def _bool(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def _glob_regex(pattern: str) -> str:
    return "^" + ".*".join(re.escape(part).replace(r"\?", ".") for part in pattern.split("*")) + "$"


def text_in(column: pa.ChunkedArray | pa.Array, values: list[str | None]) -> np.ndarray:
    """Rows whose text is one of ``values`` (globs allowed; None matches null or empty)."""
    n = len(column)
    mask = np.zeros(n, dtype=bool)
    literals = [v for v in values if v is not None and "*" not in v and "?" not in v]
    if literals:
        mask |= _bool(pc.is_in(column, value_set=pa.array(literals, pa.string())))
    for value in values:
        if value is None:
            mask |= _bool(pc.is_null(column)) | _bool(pc.equal(pc.fill_null(column, ""), ""))
        elif "*" in value or "?" in value:
            mask |= _bool(pc.match_substring_regex(column, _glob_regex(value)))
    return mask


def has_text(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return _bool(pc.match_substring_regex(column, r"\S"))


def applies_mask(table: pa.Table, has_options: np.ndarray, spec: AppliesTo) -> np.ndarray:
    """Rows of ``table`` that ``spec`` selects (every given key must hold)."""
    n = table.num_rows
    mask = np.ones(n, dtype=bool)
    for key in ("task", "category", "task_source", "source", "lang"):
        values = getattr(spec, key)
        if values is not None:
            mask &= text_in(table.column(key), values)
    if spec.has_input is not None:
        mask &= has_text(table.column("input")) == spec.has_input
    if spec.has_rationale is not None:
        mask &= has_text(table.column("rationale")) == spec.has_rationale
    if spec.has_options is not None:
        mask &= has_options == spec.has_options
    output = table.column("output")
    if spec.output_in is not None:
        folded = pc.utf8_lower(pc.utf8_trim_whitespace(output))
        mask &= _bool(
            pc.is_in(
                folded, value_set=pa.array([v.strip().lower() for v in spec.output_in], pa.string())
            )
        )
    if spec.min_output_chars is not None or spec.max_output_chars is not None:
        length = np.asarray(pc.utf8_length(output).to_numpy(zero_copy_only=False))
        if spec.min_output_chars is not None:
            mask &= length >= spec.min_output_chars
        if spec.max_output_chars is not None:
            mask &= length <= spec.max_output_chars
    if spec.not_ is not None:
        mask &= ~applies_mask(table, has_options, spec.not_)
    return mask
