"""Vectorized text helpers shared by stages (Arrow compute, RE2 regexes)."""

from __future__ import annotations

import string
from collections.abc import Collection, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Conversation roles of the prompt side (what a record asks), and of the answer side.
PROMPT_ROLES: tuple[str, ...] = ("system", "user")
ASSISTANT_ROLES: tuple[str, ...] = ("assistant",)

# Punctuation and symbols folded to spaces for matching keys (exact and near dedup, decontamination).
_FOLD = r"[\p{P}\p{S}\s]+"
# What _FOLD matches among ASCII characters (RE2's \s is [\t\n\f\r ]: not \v), by byte; a
# test checks it against the regex character by character.
_FOLDED_ASCII = np.zeros(256, dtype=bool)
_FOLDED_ASCII[[ord(c) for c in string.punctuation + "\t\n\f\r "]] = True
# What utf8_split_whitespace splits on (Python's str.isspace) beyond ascii_split_whitespace's
# [\t\n\v\f\r ]; a test checks both sets on every code point.
_OTHER_WHITESPACE = (
    "[\\x{1c}-\\x{1f}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}"
    "\\x{205f}\\x{3000}]"
)
# RE2's \s, by byte: what separates the words of count_words.
_SPACE_BYTES = np.zeros(256, dtype=bool)
_SPACE_BYTES[[ord(c) for c in "\t\n\f\r "]] = True
# ...but not the symbols that carry meaning, spelled out first so that "What is C++?", "What is C#?"
# and "What is C?" stay three questions, and so do "2+2" and "2*2": a language name's suffix, and an
# operator between two numbers.
_MEANINGFUL_SYMBOLS = [
    (r"(\pL)\+\+", r"\1pp "),
    (r"(\pL)#", r"\1sharp "),
    (r"(\d)\s*\+\s*(\d)", r"\1 plus \2"),
    (r"(\d)\s*[-−]\s*(\d)", r"\1 minus \2"),
    (r"(\d)\s*[*×]\s*(\d)", r"\1 times \2"),
    (r"(\d)\s*[/÷]\s*(\d)", r"\1 over \2"),
]
HAS_MEANINGFUL_SYMBOL = r"\pL(?:\+\+|#)|\d\s*[-−+*×/÷]\s*\d"


def matching_text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """NFKC, lower-cased, punctuation and whitespace folded (meaningful symbols spelled out first):
    the text two records are compared on."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = nfkc(pc.fill_null(values, ""))
    values = pc.utf8_lower(values)
    # Few rows hold such a symbol: spell them out on those rows only.
    has_symbol = pc.match_substring_regex(values, HAS_MEANINGFUL_SYMBOL)
    if pc.any(has_symbol).as_py():
        spelled = values.filter(has_symbol)
        for pattern, replacement in _MEANINGFUL_SYMBOLS:
            spelled = pc.replace_substring_regex(spelled, pattern, replacement)
        values = pc.replace_with_mask(values, has_symbol, spelled)
    return pc.utf8_trim_whitespace(fold_punctuation(values))


def matching_text_within(values: pa.Array | pa.ChunkedArray, max_bytes: int) -> pa.Array:
    """:func:`matching_text` on the rows whose matching text may be ``max_bytes`` long or shorter,
    null on the others: rows holding more ASCII letters and digits than that. Each of them stays
    at least one byte of the matching text (folding keeps them, NFKC never merges two of them,
    spelling out a symbol only adds). For comparing with a list of short phrases without folding
    every long text."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = pc.fill_null(values, "") if values.null_count else values
    if len(values) == 0:
        return matching_text(values)
    offsets, data = string_buffers(values)
    # Counted as the row's length less its other bytes (fewer: positions and a binary search).
    alnum = np.diff(offsets) - _per_row(_NOT_ASCII_ALNUM[data], offsets, sparse=True)
    maybe = alnum <= max_bytes
    if maybe.all():
        return matching_text(values)
    return pc.replace_with_mask(
        pa.nulls(len(values), values.type),
        pa.array(maybe),
        matching_text(values.filter(pa.array(maybe))),
    )


def nfkc(values: pa.Array) -> pa.Array:
    """``pc.utf8_normalize(values, "NFKC")``, normalizing only the non-ASCII rows (ASCII text is
    NFKC already)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    other = pc.fill_null(pc.invert(pc.string_is_ascii(values)), False)
    if not pc.any(other).as_py():
        return values
    if pc.all(other).as_py():
        return pc.utf8_normalize(values, "NFKC")
    return pc.replace_with_mask(values, other, pc.utf8_normalize(values.filter(other), "NFKC"))


def split_whitespace(values: pa.Array | pa.ChunkedArray) -> pa.ListArray:
    """Per row, its words: the non-empty strings of ``pc.utf8_split_whitespace(values)``, in order
    ([] for a blank row, null for null). Through the ASCII kernel, about 3x faster: UTF-8 never
    puts an ASCII whitespace byte inside a character, and the few rows holding another whitespace
    character get it as a space first. Rows are trimmed and blank rows left out of the split, so
    no empty string comes out (the kernels put them at a row's edges, and differently)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    trimmed = pc.ascii_trim_whitespace(_space_other_whitespace(values))
    blank = pc.equal(pc.binary_length(trimmed), 0)
    lists = pc.ascii_split_whitespace(pc.if_else(blank, pa.scalar(None, values.type), trimmed))
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(pc.fill_null(pc.list_value_length(lists), 0).to_numpy(), out=offsets[1:])
    return pa.ListArray.from_arrays(
        pa.array(offsets), pc.list_flatten(lists), mask=pc.is_null(values)
    )


def _space_other_whitespace(values: pa.Array) -> pa.Array:
    """Each whitespace character that ``ascii_split_whitespace`` does not split on as a space."""
    if len(values) == 0 or values.null_count == len(values):
        return values
    filled = pc.fill_null(values, "") if values.null_count else values
    candidates = pc.invert(pc.string_is_ascii(filled))
    offsets, data = string_buffers(filled)
    separators = (data - np.uint8(0x1C)) < 4  # \x1c-\x1f, the only ASCII ones
    if separators.any():
        holding = pa.array(_per_row(separators, offsets, sparse=True) > 0)
        candidates = pc.or_(candidates, holding)
    if not pc.any(candidates).as_py():
        return values
    subset = values.filter(candidates)
    if not pc.any(pc.match_substring_regex(subset, _OTHER_WHITESPACE)).as_py():
        return values
    spaced = pc.replace_substring_regex(subset, _OTHER_WHITESPACE, " ")
    return pc.replace_with_mask(values, candidates, spaced)


def fold_punctuation(values: pa.Array) -> pa.Array:
    """Every run of punctuation, symbols and whitespace as one space (``_FOLD``): by byte (numpy),
    which is right on ASCII rows, then the regex on the others. The regex's strings on every row."""
    if len(values) == 0 or values.null_count:
        return pc.replace_substring_regex(values, _FOLD, " ")
    folded = _collapse_runs(values, _FOLDED_ASCII)
    other = pc.invert(pc.string_is_ascii(values))
    if pc.any(other).as_py():
        by_regex = pc.replace_substring_regex(values.filter(other), _FOLD, " ")
        folded = pc.replace_with_mask(folded, other, by_regex)
    return folded


def string_buffers(values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(int64 offsets from 0, bytes) of a string or large_string array, without copying the
    bytes. A null row has no bytes."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    offset_type = np.int64 if pa.types.is_large_string(values.type) else np.int32
    buffers = values.buffers()
    offsets = np.frombuffer(buffers[1], dtype=offset_type)[
        values.offset : values.offset + len(values) + 1
    ].astype(np.int64)
    data = (
        np.frombuffer(buffers[2], dtype=np.uint8)
        if buffers[2] is not None
        else np.zeros(0, dtype=np.uint8)
    )
    return offsets - offsets[0], data[offsets[0] : offsets[-1]]


def collapse_whitespace(values: pa.Array) -> pa.Array:
    """Every run of RE2's ``\\s`` as one space: what ``replace_substring_regex(values, r"\\s+",
    " ")`` gives, by byte (``\\s`` is ASCII only, so UTF-8 text needs no special case)."""
    if values.null_count:
        return pc.replace_substring_regex(values, r"\s+", " ")
    return _collapse_runs(values, _SPACE_BYTES)


def _collapse_runs(values: pa.Array, byte_class: np.ndarray) -> pa.Array:
    """Each run of bytes in ``byte_class`` (ASCII bytes only) as one space, runs ending at row
    ends. ``values`` has no nulls."""
    if len(values) == 0:
        return values
    offsets, data = string_buffers(values)
    folded = byte_class[data]
    # Every folded byte but the first of its run goes.
    dropped = np.flatnonzero(folded & ~_run_starts(folded, offsets))
    text = np.where(folded, np.uint8(ord(" ")), data)
    if len(dropped):
        text = np.delete(text, dropped)
    new_offsets = offsets - np.searchsorted(dropped, offsets)
    offset_type = np.int64 if pa.types.is_large_string(values.type) else np.int32
    return pa.Array.from_buffers(
        values.type,
        len(values),
        [None, pa.py_buffer(new_offsets.astype(offset_type)), pa.py_buffer(text)],
    )


def _row_starts(offsets: np.ndarray, size: int) -> np.ndarray:
    return offsets[:-1][offsets[:-1] < size]


def _run_starts(marks: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Where each run of marked bytes begins (a run never continues into the next row)."""
    begins = marks.copy()
    begins[1:] &= ~marks[:-1]
    starts = _row_starts(offsets, len(marks))
    begins[starts] = marks[starts]
    return begins


def _per_row(marks: np.ndarray, offsets: np.ndarray, sparse: bool) -> np.ndarray:
    """How many marked bytes each row holds (int64). ``sparse``: at most about half the bytes
    are marked (word or run starts), where positions and a binary search are faster than a
    segmented sum (which needs no array of positions for dense marks such as letters)."""
    if sparse:
        return np.diff(np.searchsorted(np.flatnonzero(marks), offsets)).astype(np.int64)
    counts = np.add.reduceat(np.append(marks, False).view(np.uint8), offsets[:-1], dtype=np.int64)
    counts[offsets[1:] == offsets[:-1]] = 0  # reduceat gives an empty row the next byte
    return counts


# Character classes whose matches on ASCII text are single bytes of a table (a test checks each
# against RE2 on every ASCII character).
ASCII_LETTERS = np.zeros(256, dtype=bool)
ASCII_LETTERS[[ord(c) for c in string.ascii_letters]] = True
_NOT_ASCII_ALNUM = ~ASCII_LETTERS
_NOT_ASCII_ALNUM[[ord(c) for c in string.digits]] = False


def count_class(values: pa.Array, pattern: str, ascii_class: np.ndarray, runs: bool) -> np.ndarray:
    """``pc.count_substring_regex(values, pattern)`` as int64 (0 for null), where ``pattern``
    matches, on ASCII text, one byte of ``ascii_class`` (``runs`` False: ``\\pL``) or a longest
    run of them (``runs`` True: ``\\p{Latin}+``): ASCII rows by byte, the others by the regex."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = pc.fill_null(values, "") if values.null_count else values
    ascii_rows = np.asarray(pc.string_is_ascii(values).to_numpy(zero_copy_only=False), dtype=bool)
    counts = np.zeros(len(values), dtype=np.int64)
    other = np.flatnonzero(~ascii_rows)
    if len(other):
        subset = values if len(other) == len(values) else values.take(pa.array(other))
        found = pc.count_substring_regex(subset, pattern).to_numpy(zero_copy_only=False)
        counts[other] = found
    if len(other) < len(values):
        offsets, data = string_buffers(values)
        marks = ascii_class[data]
        if runs:
            marks = _run_starts(marks, offsets)
        # Non-ASCII rows' bytes are counted too, then overwritten by their regex counts.
        counts[ascii_rows] = _per_row(marks, offsets, sparse=runs)[ascii_rows]
    return counts


def count_words(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    r"""Per row: runs of characters other than RE2's ``\s`` (``[\t\n\f\r ]``), as the regex
    ``\S+`` counts them (same numbers, same type, null for null), by byte with numpy."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    count_type = pa.int64() if pa.types.is_large_string(values.type) else pa.int32()
    if len(values) == 0:
        return pa.array([], count_type)
    filled = pc.fill_null(values, "") if values.null_count else values
    offsets, data = string_buffers(filled)
    counts = _per_row(_run_starts(~_SPACE_BYTES[data], offsets), offsets, sparse=True)
    mask = (
        np.asarray(pc.is_null(values).to_numpy(zero_copy_only=False), dtype=bool)
        if values.null_count
        else None
    )
    return pa.array(counts, count_type, mask=mask)


def record_text(
    table: pa.Table | pa.RecordBatch,
    fields: Sequence[str],
    *,
    separator: str,
    roles: Collection[str] | None = None,
    turn_separator: str | None = None,
    prefer_messages: bool = False,
    matching: bool = False,
) -> pa.Array:
    """The text of each record built from its ``fields``: the one place records become text.

    Every field is a string column with nulls read as ""; ``"messages"`` is a conversation, turned
    into the ``content`` of its turns whose role is in ``roles`` (``None``: every turn) joined by
    ``turn_separator`` (default ``separator``). A turn of another role still counts as an empty turn
    (its separator stays). Rows without a conversation give "" for it, and so does a conversation
    holding a null turn. The parts are then joined by ``separator`` in the order of ``fields``.

    ``prefer_messages``: rows that have a conversation are its turns only; the other fields are
    joined for rows without one (a conversation repeats its last exchange in instruction/input/output).
    ``matching``: each part goes through :func:`matching_text` before the join.
    """
    n = table.num_rows
    between_turns = separator if turn_separator is None else turn_separator
    if prefer_messages and "messages" in fields:
        single = record_text(
            table,
            [name for name in fields if name != "messages"],
            separator=separator,
            matching=matching,
        )
        turns = _turns_text(table.column("messages"), roles, between_turns)
        if turns is None:
            return single
        if matching:
            turns = matching_text(turns)
        return pc.if_else(pc.is_null(_combined(table.column("messages"))), single, turns)
    parts: list[pa.Array] = []
    for name in fields:
        if name == "messages":
            part = _turns_text(table.column(name), roles, between_turns)
            if part is None:
                part = pa.array([""] * n, pa.string())
        else:
            part = pc.fill_null(_combined(table.column(name)), "")
        parts.append(matching_text(part) if matching else part)
    if not parts:
        return pa.array([""] * n, pa.string())
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, separator)


def _combined(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _turns_text(
    messages: pa.Array | pa.ChunkedArray, roles: Collection[str] | None, separator: str
) -> pa.Array | None:
    """The chosen turns of each conversation joined, "" where none; ``None`` if no row has one."""
    messages = _combined(messages)
    if messages.null_count == len(messages):
        return None
    flat = pc.list_flatten(messages)
    content = flat.field("content")
    if roles is not None:
        chosen = pc.is_in(flat.field("role"), pa.array(list(roles), pa.string()))
        # binary_join gives null for a list holding a null: other turns become "" instead.
        content = pc.if_else(chosen, content, "")
    # Offsets from 0 also for a sliced array (list_flatten keeps only the slice's values).
    offsets = pc.subtract(messages.offsets, messages.offsets[0])
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, content), separator)
    return pc.fill_null(pc.if_else(pc.is_null(messages), "", joined), "")
