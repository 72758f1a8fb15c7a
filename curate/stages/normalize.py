"""Normalize text: NFC, control characters out, insignificant whitespace trimmed, placeholders emptied."""

from __future__ import annotations

import unicodedata
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.records import RECORD_SCHEMA, compute_ids
from curate.stages.base import MapStage, StageParams

# C0/C1 controls except tab and newline, DEL, BOM and zero-width characters.
_CONTROL = "[\\x{00}-\\x{08}\\x{0B}\\x{0C}\\x{0E}-\\x{1F}\\x{7F}-\\x{9F}\\x{FEFF}\\x{200B}\\x{200C}\\x{200D}\\x{2060}]"
# Controls vanish and trailing spaces before a newline/end vanish, in one pass: a control match
# leaves group 1 empty, a trailing-space match keeps the newline it captured.
_CONTROL_OR_TRAILING = _CONTROL + "+|[ \\t]+(\\n|$)"
_EXTRA_BLANK_LINES = "\\n{3,}"
# Only runs of 2+ spaces, or a tab / no-break space, need rewriting (a single space is fine).
_SPACE_RUNS = "[ \\t\\x{00A0}]{2,}|[\\t\\x{00A0}]"
_CITATION = "\\[\\d+\\]"

DEFAULT_NO_INPUT = [
    "<noinput>",
    "<no input>",
    "noinput",
    "no input",
    "no input.",
    "no input required",
    "no input required.",
    "n/a",
    "n/a.",
    "na",
    "none",
    "none.",
    "(none)",
    "<none>",
    "null",
    "nan",
    "-",
    "empty",
    "<empty>",
    "not applicable",
    "not applicable.",
    "no input needed",
    "no input needed.",
]


def _nfc(values: pa.Array) -> pa.Array:
    """NFC only where it changes something: ASCII text is NFC already, and CPython's quick check
    (``unicodedata.is_normalized``) is ~5x faster than normalizing every non-ASCII row."""
    non_ascii = pc.invert(pc.fill_null(pc.string_is_ascii(values), True))
    if not pc.any(non_ascii).as_py():
        return values
    positions = pc.indices_nonzero(non_ascii).to_numpy()
    texts = pc.filter(values, non_ascii).to_pylist()
    changed = [
        (int(i), unicodedata.normalize("NFC", t))
        for i, t in zip(positions, texts, strict=True)
        if t is not None and not unicodedata.is_normalized("NFC", t)
    ]
    if not changed:
        return values
    mask = np.zeros(len(values), dtype=bool)
    mask[[i for i, _ in changed]] = True
    return pc.replace_with_mask(
        values, pa.array(mask), pa.array([t for _, t in changed], pa.string())
    )


def _clean(
    values: pa.Array, collapse_spaces: bool, strip_citations: bool, nfc: bool = True
) -> pa.Array:
    if nfc:
        values = _nfc(values)
    steps = [
        *([(_CITATION, "")] if strip_citations else []),
        *([(_SPACE_RUNS, " ")] if collapse_spaces else []),
        (_CONTROL_OR_TRAILING, "\\1"),
        (_EXTRA_BLANK_LINES, "\n\n"),
    ]
    # One pass finds the rows some step would change, and only they are rewritten: a row that
    # no step's pattern matches is left as it is by each step in turn. Line ends first: CR LF
    # and a lone CR become LF.
    patterns = ["\\r", *(pattern for pattern, _ in steps)]
    changes = pc.fill_null(
        pc.match_substring_regex(values, "|".join(f"(?:{pattern})" for pattern in patterns)),
        False,
    )
    if pc.any(changes).as_py():
        rewritten = values.filter(changes)
        rewritten = pc.replace_substring(pc.replace_substring(rewritten, "\r\n", "\n"), "\r", "\n")
        for pattern, replacement in steps:
            rewritten = pc.replace_substring_regex(rewritten, pattern, replacement)
        values = pc.replace_with_mask(values, changes, rewritten)
    return pc.utf8_trim_whitespace(values)


class Normalize(MapStage):
    """Unicode NFC, control characters removed, whitespace trimmed where it is not significant.

    Instructions have runs of spaces collapsed; inputs, outputs and chat turns keep their
    newlines and indentation (code). Whole-field "no input" placeholders become an empty input.
    Ids are recomputed from the normalized content.
    """

    name: ClassVar[str] = "normalize_v1"
    recomputes_ids: ClassVar[bool] = True

    class Params(StageParams):
        nfc: bool = Field(
            True,
            description="Unicode NFC on every text field (false keeps the composition as read).",
        )
        collapse_instruction_whitespace: bool = Field(
            True,
            description="Collapse runs of spaces, tabs and no-break spaces in the instruction to one space.",
        )
        no_input_placeholders: list[str] = Field(
            default_factory=lambda: list(DEFAULT_NO_INPUT),
            description="Inputs equal to one of these (case-insensitive, trimmed) become empty; replaces the default list.",
        )
        strip_citations: bool = Field(
            False, description="Remove Dolly-style [n] citation marks from input/output."
        )

    params: Params

    def transform(self, table: pa.Table) -> pa.Table:
        if table.num_rows == 0:
            return table
        out = self.clean(table)
        return out.set_column(
            out.column_names.index("id"), RECORD_SCHEMA.field("id"), compute_ids(out)
        )

    def clean(self, table: pa.Table) -> pa.Table:
        """Every cleaned column (the ids are recomputed from them afterwards)."""
        p = self.params
        out = table
        for name, collapse, cite in (
            ("instruction", p.collapse_instruction_whitespace, False),
            ("input", False, p.strip_citations),
            ("output", False, p.strip_citations),
            ("rationale", False, False),
        ):
            column = out.column(name).combine_chunks()
            cleaned = _clean(column, collapse, cite, p.nfc)
            out = out.set_column(out.column_names.index(name), name, cleaned)
        placeholders = pa.array([s.strip().lower() for s in p.no_input_placeholders], pa.string())
        inputs = out.column("input").combine_chunks()
        is_placeholder = pc.is_in(pc.utf8_lower(inputs), placeholders)
        out = out.set_column(
            out.column_names.index("input"), "input", pc.if_else(is_placeholder, "", inputs)
        )
        return self._normalize_messages(out, p.strip_citations, p.nfc)

    @staticmethod
    def _normalize_messages(table: pa.Table, strip_citations: bool, nfc: bool) -> pa.Table:
        messages = table.column("messages").combine_chunks()
        if messages.null_count == len(messages):
            return table
        flat = pc.list_flatten(messages)
        content = _clean(flat.field("content"), False, strip_citations, nfc)
        struct = pa.StructArray.from_arrays(
            [flat.field("role"), content], fields=list(messages.type.value_type)
        )
        rebuilt = pa.ListArray.from_arrays(messages.offsets, struct, mask=messages.is_null())
        return table.set_column(table.column_names.index("messages"), "messages", rebuilt)


# Short label fields: one line each (a newline or tab in a category is noise, or an attack on
# whatever displays it).
LABEL_FIELDS = ("category", "task", "task_source", "template_type")
_LINE_BREAKS = "[\\t\\n\\r\\x{2028}\\x{2029}]+"


class NormalizeV2(Normalize):
    """``normalize_v1``, and the label fields too: ``category``, ``task``, ``task_source`` and
    ``template_type`` lose control characters, line breaks and outer whitespace (one line, NFC);
    each of ``options`` is cleaned like an output. An empty label becomes null."""

    name: ClassVar[str] = "normalize_v2"

    def clean(self, table: pa.Table) -> pa.Table:
        out = super().clean(table)
        nfc = self.params.nfc
        for name in LABEL_FIELDS:
            values = out.column(name).combine_chunks()
            if values.null_count == len(values):
                continue
            values = pc.replace_substring_regex(values, _LINE_BREAKS, " ")
            cleaned = _clean(values, True, False, nfc)
            cleaned = pc.if_else(pc.equal(cleaned, ""), pa.scalar(None, pa.string()), cleaned)
            out = out.set_column(out.column_names.index(name), name, cleaned)
        options = out.column("options").combine_chunks()
        if options.null_count < len(options):
            items = _clean(pc.list_flatten(options), False, False, nfc)
            offsets = pc.subtract(options.offsets, options.offsets[0])  # a sliced array
            rebuilt = pa.ListArray.from_arrays(offsets, items, mask=options.is_null())
            out = out.set_column(out.column_names.index("options"), "options", rebuilt)
        return out
