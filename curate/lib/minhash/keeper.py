"""Keepers: which record of a component of near duplicates stays, and which ones it removes.

The ``keep`` rules rank the members of a component; the best is a keeper and removes every member
that is a duplicate *of it*; the best remaining member becomes the next keeper, and so on. With
``transitive`` the first keeper removes the whole component. Reference rows (documents below
``n_ref``: an earlier, published run) rank first and are never removed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.lib.minhash.verify import Match

KeepRule = Literal["source", "quality", "longer_output", "shorter_output", "first", "smallest_id"]


class KeeperKeys:
    """What the keeper rules compare, per document in stream order, and each one's source code.

    Source codes number the sources in the order they appear (reference rows: -1); ranks follow
    ``source_priority`` (unlisted sources tie after the listed ones).
    """

    def __init__(self, source_priority: list[str], quality_column: str) -> None:
        self.source_priority = source_priority
        self.quality_column = quality_column
        self.source_rank: list[np.ndarray] = []
        self.source_code: list[np.ndarray] = []
        self.quality: list[np.ndarray] = []
        self.output_len: list[np.ndarray] = []
        self.sources: dict[str, int] = {}

    def add_batch(self, batch: pa.Table) -> None:
        n = batch.num_rows
        sources = (
            _as_array(batch.column("source"))
            if "source" in batch.column_names
            else pa.array([""] * n, pa.string())
        )
        code, rank = self._source_codes(sources)
        self.source_code.append(code)
        self.source_rank.append(rank)
        self.quality.append(self._quality_scores(batch))
        if "output" in batch.column_names:
            lengths = pc.fill_null(pc.utf8_length(_as_array(batch.column("output"))), 0)
            self.output_len.append(lengths.to_numpy(zero_copy_only=False).astype(np.int64))
        else:
            self.output_len.append(np.zeros(n, np.int64))

    def add_reference(self, n: int) -> None:
        """``n`` rows of an earlier run: no source, no quality, no output."""
        self.source_code.append(np.full(n, -1, np.int32))
        self.source_rank.append(np.full(n, -1, np.int32))
        self.quality.append(np.full(n, np.nan))
        self.output_len.append(np.zeros(n, np.int64))

    def source_codes(self) -> np.ndarray:
        """Every document's source code."""
        return np.concatenate(self.source_code) if self.source_code else np.zeros(0, np.int32)

    def rank_order(
        self,
        members: np.ndarray,
        labels: np.ndarray,
        rules: list[KeepRule],
        ids: pa.ChunkedArray,
        n_ref: int,
    ) -> np.ndarray:
        """``members`` sorted by component, then by the keeper rules (best first)."""
        source_rank = np.concatenate(self.source_rank)[members]
        quality = np.concatenate(self.quality)[members]
        output_len = np.concatenate(self.output_len)[members]
        rule_keys: list[np.ndarray] = []
        for rule in rules:
            if rule == "source":
                rule_keys.append(source_rank)
            elif rule == "quality":
                rule_keys.append(np.where(np.isnan(quality), np.inf, -quality))
            elif rule == "longer_output":
                rule_keys.append(-output_len)
            elif rule == "shorter_output":
                rule_keys.append(output_len)
            elif rule == "first":
                rule_keys.append(members)
            elif rule == "smallest_id":
                id_values = np.array(ids.take(pa.array(members)).to_pylist(), dtype=str)
                id_rank = np.empty(len(members), np.int64)
                id_rank[np.argsort(id_values, kind="stable")] = np.arange(len(members))
                rule_keys.append(id_rank)
        # np.lexsort: last key is primary. Component, then reference rows first (they are
        # already published), then the rule, then stream order.
        is_new = (members >= n_ref).astype(np.int8)
        keys = [members, *reversed(rule_keys), is_new, labels[members]]
        return members[np.lexsort(keys)]

    def _quality_scores(self, batch: pa.Table) -> np.ndarray:
        column = self.quality_column
        if column in batch.column_names:
            kind = batch.schema.field(column).type
            if pa.types.is_floating(kind) or pa.types.is_integer(kind):
                values = _as_array(batch.column(column)).cast(pa.float64())
                return pc.fill_null(values, np.nan).to_numpy(zero_copy_only=False).astype(float)
        return np.full(batch.num_rows, np.nan)

    def _source_codes(self, sources: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        if len(sources) == 0:
            return np.zeros(0, np.int32), np.zeros(0, np.int32)
        encoded = pc.dictionary_encode(pc.fill_null(sources, ""))
        names = encoded.dictionary.to_pylist()
        priority = {name: i for i, name in enumerate(self.source_priority)}
        codes = np.array(
            [self.sources.setdefault(name, len(self.sources)) for name in names], np.int32
        )
        ranks = np.array([priority.get(name, len(priority)) for name in names], np.int32)
        index = encoded.indices.to_numpy(zero_copy_only=False)
        return codes[index], ranks[index]


@dataclass
class Keepers:
    """Per document: the keeper that removes it (-1: kept) and how similar it is to that keeper."""

    dup_of: np.ndarray
    similarity: np.ndarray
    field_similarity: dict[str, np.ndarray]
    exactly: np.ndarray  # similarity measured exactly (else the signature estimate)


def choose_keepers(
    labels: np.ndarray,
    rank_order: Callable[[np.ndarray, np.ndarray], np.ndarray],
    match: Callable[[np.ndarray, np.ndarray], Match],
    n_ref: int,
    field_names: Iterable[str] = (),
    transitive: bool = False,
) -> Keepers:
    """Keepers and removals per component (``labels``: each document's component).

    ``rank_order(members, labels)`` sorts members by component, best first; ``match(u, v)``
    says which pairs are duplicates (see :class:`curate.lib.minhash.verify.PairVerifier`).
    """
    n = len(labels)
    result = Keepers(
        dup_of=np.full(n, -1, np.int64),
        similarity=np.full(n, np.nan),
        field_similarity={name: np.full(n, np.nan) for name in field_names},
        exactly=np.zeros(n, bool),
    )
    sizes = np.bincount(labels, minlength=n)
    members = np.flatnonzero(sizes[labels] > 1)
    remaining = rank_order(members, labels) if len(members) else members
    while len(remaining):
        group = labels[remaining]
        first = np.concatenate([[True], group[1:] != group[:-1]])
        keeper = remaining[np.maximum.accumulate(np.where(first, np.arange(len(remaining)), 0))]
        others = ~first
        if not others.any():
            break
        u, v = keeper[others], remaining[others]
        ok, sim, exact, fields = match(u, v)
        if transitive:
            ok = np.ones(len(v), bool)
        ok &= v >= n_ref  # reference rows all stay keepers
        hit = v[ok]
        result.dup_of[hit] = u[ok]
        result.similarity[hit] = sim[ok]
        for name, words in fields.items():
            result.field_similarity[name][hit] = words[ok]
        result.exactly[hit] = exact[ok]
        remaining = v[~ok]
    return result


def _as_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
