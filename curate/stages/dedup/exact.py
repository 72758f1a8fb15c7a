"""Exact deduplication on a normalized key (NFKC, case-folded, punctuation and whitespace folded)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from pydantic import Field

from curate.errors import StageError
from curate.stages.base import Decision, GlobalStage, StageParams, StageResult, apply_decision
from curate.util.text import PROMPT_ROLES, record_text

KeyField = Literal["instruction", "input", "output", "rationale", "messages"]


def dedup_key(table: pa.Table, fields: Sequence[str]) -> pa.Array:
    """The normalized key a row is compared on. ``messages`` means every system/user turn.

    Each field is folded on its own (``matching_text``), then joined by a unit separator.
    """
    return record_text(
        table, fields, separator="\x1f", roles=PROMPT_ROLES, turn_separator="\n", matching=True
    )


def _ids(table: pa.Table) -> np.ndarray:
    return np.array(table.column("id").to_pylist(), dtype="S32")


def _default_key_fields() -> list[KeyField]:
    return ["instruction", "input"]


class ExactDedup(GlobalStage):
    """Drop rows whose normalized key was already seen; the first row (recipe source order) is kept.

    Multi-turn rows also key on their whole user side (``include_conversation``), so two
    conversations are duplicates only when every prompt turn matches, not just the last one.
    Rejects: ``reason="exact_duplicate"``, ``duplicate_of`` = the kept row's id.

    Memory: the fit pass keeps a 128-bit key hash and an id per row, then each row's keeper
    position and id (~40 bytes/row, numpy arrays, no per-row Python objects), so 10M rows fit in
    well under 1 GB. Two different keys share a 128-bit xxh3 hash with probability ~1e-25 at that
    size.
    """

    name: ClassVar[str] = "exact_dedup_v1"

    class Params(StageParams):
        fields: list[KeyField] = Field(
            default_factory=_default_key_fields,
            min_length=1,
            description="Fields the normalized key is built from; messages means every system/user turn.",
        )
        include_conversation: bool = Field(
            True,
            description="Multi-turn rows also key on every system/user turn, not just the last one.",
        )

    params: Params

    def __init__(
        self, params: StageParams | dict[str, object] | None = None, **kwargs: object
    ) -> None:
        super().__init__(params, **kwargs)
        self._reset()

    def _reset(self) -> None:
        self._hash_parts: list[np.ndarray] = []
        self._id_parts: list[np.ndarray] = []
        # Per row of the stream: the position of the first row with its key (itself if kept).
        self._keeper: np.ndarray = np.empty(0, dtype=np.int64)
        self._ids: np.ndarray = np.empty(0, dtype="S32")
        self._apply_offset = 0
        # A shard's copy (shard_copy): the stream row its rows start at, their keeper positions
        # and keeper ids, instead of the whole stream's arrays.
        self._shard: tuple[int, np.ndarray, np.ndarray] | None = None

    def _key_hashes(self, table: pa.Table) -> np.ndarray:
        fields: list[str] = list(self.params.fields)
        if self.params.include_conversation and "messages" not in fields:
            fields.append("messages")
        keys = dedup_key(table, fields).to_pylist()
        digest = xxhash.xxh3_128_intdigest
        hashes = np.empty(len(keys), dtype=[("hi", "<u8"), ("lo", "<u8")])
        values = [digest(k.encode("utf-8")) for k in keys]
        hashes["hi"] = np.fromiter((v >> 64 for v in values), dtype=np.uint64, count=len(values))
        hashes["lo"] = np.fromiter(
            (v & 0xFFFFFFFFFFFFFFFF for v in values), dtype=np.uint64, count=len(values)
        )
        return hashes

    def _finish_fit(self) -> None:
        """Each row's keeper: the first row in the stream with its key hash."""
        self._ids = np.concatenate(self._id_parts) if self._id_parts else self._ids
        if not self._hash_parts:
            self._hash_parts, self._id_parts = [], []
            self._keeper = np.empty(0, dtype=np.int64)
            return
        hashes = np.concatenate(self._hash_parts)
        self._hash_parts, self._id_parts = [], []
        # A stable sort by (hi, lo): each key's rows in stream order, its first row first. (Two
        # uint64 sort keys: sorting the structured array compares its records one by one, ~4x
        # slower, and so was searching it in apply.)
        order = np.lexsort((hashes["lo"], hashes["hi"]))
        hi, lo = hashes["hi"][order], hashes["lo"][order]
        del hashes
        starts = np.ones(len(order), bool)
        starts[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
        del hi, lo
        group = np.cumsum(starts) - 1
        keeper = np.empty(len(order), np.int64)
        keeper[order] = order[starts][group]
        self._keeper = keeper

    def fit(self, batches: Iterable[pa.Table]) -> None:
        """Record the first occurrence of every key across the stream (batches in stream order)."""
        self.fit_parts(self.fit_part(batch) for batch in batches)

    def fits_in_parts(self) -> bool:
        return True

    def fit_part(self, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """The shard's key hashes and ids: the costly part of the fit (normalizing the keys)."""
        return self._key_hashes(table), _ids(table)

    def fit_parts(self, parts: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        self._reset()
        for hashes, ids in parts:
            self._hash_parts.append(hashes)
            self._id_parts.append(ids)
        self._finish_fit()

    def applies_per_shard(self) -> bool:
        return True

    def shard_copy(self, batch: int, first_row: int, rows: int) -> ExactDedup:
        """A copy that applies rows ``first_row`` … ``first_row + rows - 1`` of the stream only:
        their keepers' positions and ids (~40 bytes a row), not the whole fit."""
        copy = ExactDedup(self.params)
        keeper = self._keeper[first_row : first_row + rows]
        copy._shard = (first_row, keeper, self._ids[keeper])
        copy._apply_offset = first_row
        return copy

    def _keepers(self, offset: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``offset`` … of the stream: each one's keeper position and keeper id."""
        if self._shard is None:
            keeper = self._keeper[offset : offset + rows]
            return keeper, self._ids[keeper]
        first, keeper, ids = self._shard
        start = offset - first
        return keeper[start : start + rows], ids[start : start + rows]

    def apply(self, table: pa.Table) -> StageResult:
        """Keep a row iff it is its key's first occurrence; batches must come in fit order."""
        offset = self._apply_offset
        keeper, keeper_id = self._keepers(offset, table.num_rows)
        if len(keeper) != table.num_rows:
            raise StageError(
                "exact_dedup: apply() got more rows than fit() saw; batches must match the fit pass"
            )
        self._apply_offset += table.num_rows
        if table.num_rows == 0:
            return apply_decision(
                table,
                Decision(keep=pa.array([], pa.bool_()), reason=pa.array([], pa.string())),
                self.name,
            )
        positions = np.arange(offset, offset + table.num_rows)
        is_keeper = keeper == positions
        keep = pa.array(is_keeper)
        keeper_ids = pa.array(keeper_id.astype(str), pa.string())
        null = pa.scalar(None, pa.string())
        reason = pc.if_else(keep, null, "exact_duplicate")
        detail = pc.if_else(keep, null, f"same normalized {'+'.join(self.params.fields)}")
        decision = Decision(
            keep=keep, reason=reason, detail=detail, duplicate_of=pc.if_else(keep, null, keeper_ids)
        )
        return apply_decision(table, decision, self.name)
