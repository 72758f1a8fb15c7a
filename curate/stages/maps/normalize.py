"""Normalize text: NFC, control characters out, insignificant whitespace trimmed, placeholders emptied."""

from __future__ import annotations

from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.records import compute_ids
from curate.stages.base import MapStage, StageParams

# C0/C1 controls except tab and newline, DEL, BOM and zero-width characters.
_CONTROL = "[\\x{00}-\\x{08}\\x{0B}\\x{0C}\\x{0E}-\\x{1F}\\x{7F}-\\x{9F}\\x{FEFF}\\x{200B}\\x{200C}\\x{200D}\\x{2060}]"
_CRLF = "\\r\\n?"
_TRAILING_SPACE = "(?m)[ \\t]+$"
_EXTRA_BLANK_LINES = "\\n{3,}"
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


def _clean(values: pa.Array, collapse_spaces: bool, strip_citations: bool) -> pa.Array:
    values = pc.utf8_normalize(values, "NFC")
    values = pc.replace_substring_regex(values, _CRLF, "\n")
    values = pc.replace_substring_regex(values, _CONTROL, "")
    if strip_citations:
        values = pc.replace_substring_regex(values, _CITATION, "")
    if collapse_spaces:
        values = pc.replace_substring_regex(values, "[ \\t\\x{00A0}]+", " ")
    values = pc.replace_substring_regex(values, _TRAILING_SPACE, "")
    values = pc.replace_substring_regex(values, _EXTRA_BLANK_LINES, "\n\n")
    return pc.utf8_trim_whitespace(values)


class Normalize(MapStage):
    """Unicode NFC, control characters removed, whitespace trimmed where it is not significant.

    Instructions have runs of spaces collapsed; inputs, outputs and chat turns keep their
    newlines and indentation (code). Whole-field "no input" placeholders become an empty input.
    Ids are recomputed from the normalized content.
    """

    name: ClassVar[str] = "normalize_v1"

    class Params(StageParams):
        nfc: bool = True
        collapse_instruction_whitespace: bool = True
        no_input_placeholders: list[str] = Field(default_factory=lambda: list(DEFAULT_NO_INPUT))
        strip_citations: bool = Field(False, description="Remove Dolly-style [n] citation marks from input/output.")

    params: Params

    def transform(self, table: pa.Table) -> pa.Table:
        if table.num_rows == 0:
            return table
        p = self.params
        out = table
        for name, collapse, cite in (
            ("instruction", p.collapse_instruction_whitespace, False),
            ("input", False, p.strip_citations),
            ("output", False, p.strip_citations),
            ("rationale", False, False),
        ):
            column = out.column(name).combine_chunks()
            out = out.set_column(out.column_names.index(name), name, _clean(column, collapse, cite))
        placeholders = pa.array([s.strip().lower() for s in p.no_input_placeholders], pa.string())
        inputs = out.column("input").combine_chunks()
        is_placeholder = pc.is_in(pc.utf8_lower(inputs), placeholders)
        out = out.set_column(out.column_names.index("input"), "input", pc.if_else(is_placeholder, "", inputs))
        out = self._normalize_messages(out, p.strip_citations)
        return out.set_column(out.column_names.index("id"), "id", compute_ids(out))

    @staticmethod
    def _normalize_messages(table: pa.Table, strip_citations: bool) -> pa.Table:
        messages = table.column("messages").combine_chunks()
        if messages.null_count == len(messages):
            return table
        flat = pc.list_flatten(messages)
        content = _clean(flat.field("content"), False, strip_citations)
        struct = pa.StructArray.from_arrays([flat.field("role"), content], fields=list(messages.type.value_type))
        rebuilt = pa.ListArray.from_arrays(messages.offsets, struct, mask=messages.is_null())
        return table.set_column(table.column_names.index("messages"), "messages", rebuilt)
