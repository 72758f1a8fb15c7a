"""Exact deduplication on a normalized key (NFKC, case-folded, punctuation and whitespace folded)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.stages.base import Decision, GlobalStage, StageParams, StageResult, apply_decision
from curate.text import matching_text, user_turns_text

KeyField = Literal["instruction", "input", "output", "rationale", "messages"]


def dedup_key(table: pa.Table, fields: Sequence[str]) -> pa.Array:
    """The normalized key a row is compared on. ``messages`` means every system/user turn."""
    parts = []
    for name in fields:
        if name == "messages":
            parts.append(matching_text(user_turns_text(table.column("messages"))))
        else:
            parts.append(matching_text(table.column(name)))
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, "\x1f")


def _default_key_fields() -> list[KeyField]:
    return ["instruction", "input"]


class ExactDedup(GlobalStage):
    """Drop rows whose normalized key was already seen; the first row (recipe source order) is kept.

    Multi-turn rows also key on their whole user side (``include_conversation``), so two
    conversations are duplicates only when every prompt turn matches, not just the last one.
    Rejects: ``reason="exact_duplicate"``, ``duplicate_of`` = the kept row's id.
    """

    name: ClassVar[str] = "exact_dedup_v1"

    class Params(StageParams):
        fields: list[KeyField] = Field(default_factory=_default_key_fields, min_length=1)
        include_conversation: bool = True

    params: Params

    def __init__(
        self, params: StageParams | dict[str, object] | None = None, **kwargs: object
    ) -> None:
        super().__init__(params, **kwargs)
        self._first: dict[
            str, tuple[int, str]
        ] = {}  # key -> (global row position, id) of its keeper
        self._apply_offset = 0

    def _keys(self, table: pa.Table) -> pa.Array:
        fields: list[str] = list(self.params.fields)
        if self.params.include_conversation and "messages" not in fields:
            fields.append("messages")
        return dedup_key(table, fields)

    def fit(self, batches: Iterable[pa.Table]) -> None:
        """Record the first occurrence of every key across the stream (batches in stream order)."""
        self._first = {}
        self._apply_offset = 0
        offset = 0
        for batch in batches:
            self._fit_batch(batch, self._keys(batch), offset)
            offset += batch.num_rows

    def _fit_batch(self, batch: pa.Table, keys: pa.Array, offset: int) -> None:
        ids = batch.column("id").combine_chunks()
        uniq, first = _first_occurrences(keys)
        first_ids = ids.take(pa.array(first, pa.int64())).to_pylist()
        for key, index, row_id in zip(uniq.to_pylist(), first.tolist(), first_ids, strict=True):
            if key not in self._first:
                self._first[key] = (offset + index, row_id)

    def run(self, table: pa.Table) -> StageResult:
        # One batch: compute the (costly) keys once for both passes.
        self._first = {}
        self._apply_offset = 0
        keys = self._keys(table)
        self._fit_batch(table, keys, 0)
        return self._apply_keys(table, keys)

    def apply(self, table: pa.Table) -> StageResult:
        """Keep a row iff it is its key's first occurrence; batches must come in fit order."""
        return self._apply_keys(table, self._keys(table))

    def _apply_keys(self, table: pa.Table, key_array: pa.Array) -> StageResult:
        keys = key_array.to_pylist()
        offset = self._apply_offset
        self._apply_offset += table.num_rows
        first = self._first
        keep_list = []
        keeper_ids: list[str | None] = []
        for index, key in enumerate(keys):
            position, keeper_id = first[key]
            is_keeper = position == offset + index
            keep_list.append(is_keeper)
            keeper_ids.append(None if is_keeper else keeper_id)
        keep = pa.array(keep_list, pa.bool_())
        reason = pc.if_else(keep, pa.scalar(None, pa.string()), "exact_duplicate")
        detail = pc.if_else(
            keep, pa.scalar(None, pa.string()), f"same normalized {'+'.join(self.params.fields)}"
        )
        decision = Decision(
            keep=keep, reason=reason, detail=detail, duplicate_of=pa.array(keeper_ids, pa.string())
        )
        return apply_decision(table, decision, self.name)


def _first_occurrences(keys: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Distinct keys of a batch and the index of each one's first row."""
    encoded = pc.dictionary_encode(keys)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    _, first = np.unique(codes, return_index=True)
    return encoded.dictionary.take(pa.array(codes[first])), first
