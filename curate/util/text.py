"""Vectorized text helpers shared by stages (Arrow compute, RE2 regexes)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

# Punctuation and symbols folded to spaces for matching keys (exact and near dedup, decontamination).
_FOLD = r"[\p{P}\p{S}\s]+"


def matching_text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """NFKC, lower-cased, punctuation and whitespace folded: the text two records are compared on."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = pc.fill_null(values, "")
    values = pc.utf8_normalize(values, "NFKC")
    values = pc.utf8_lower(values)
    values = pc.replace_substring_regex(values, _FOLD, " ")
    return pc.utf8_trim_whitespace(values)


def user_turns_text(messages: pa.Array | pa.ChunkedArray) -> pa.Array:
    """All system/user turns of each conversation joined ("" for single-turn rows)."""
    if isinstance(messages, pa.ChunkedArray):
        messages = messages.combine_chunks()
    if len(messages) == 0:
        return pa.array([], pa.string())
    flat = pc.list_flatten(messages)
    is_prompt = pc.is_in(flat.field("role"), pa.array(["system", "user"]))
    content = pc.if_else(is_prompt, flat.field("content"), "")
    lists = pa.ListArray.from_arrays(messages.offsets, content)
    joined = pc.binary_join(lists, "\n")
    return pc.fill_null(pc.if_else(pc.is_null(messages), "", joined), "")
