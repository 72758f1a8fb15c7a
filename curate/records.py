"""The curate record: one pydantic model is the single source of truth.

The JSON Schema (``schemas/record.schema.json``) and the Arrow schema
(``schemas/record.arrow.json``) are generated from :class:`Record`; ``tests/test_schema.py``
fails when the committed files drift. Regenerate with ``python -m curate.records``.
"""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from pydantic import BaseModel, ConfigDict, Field

from curate.util.text import string_buffers

Role = Literal["system", "user", "assistant", "tool_call", "tool"]

# Columns added to every rejected row (on top of the record columns).
REJECT_COLUMNS: tuple[str, ...] = ("stage", "reason", "detail", "duplicate_of")


class Message(BaseModel):
    """One chat turn. ``tool_call`` is an assistant's function call, ``tool`` its result."""

    model_config = ConfigDict(extra="forbid")
    role: Role
    content: str


class Record(BaseModel):
    """One instruction-tuning example, whatever format it came from."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        description="Stable content hash of instruction, input, output, messages, options, rationale."
    )
    instruction: str = ""
    input: str = Field("", description="Alpaca input / Dolly context / NIv2 instance input.")
    output: str = ""
    rationale: str | None = Field(
        None, description="Chain-of-thought rationale (FLAN CoT sources)."
    )
    messages: list[Message] | None = Field(
        None, description="Whole conversation for multi-turn sources."
    )
    options: list[str] | None = Field(None, description="Answer choices when the task has them.")
    task: str | None = None
    category: str | None = None
    task_source: str | None = None
    source: str = Field("", description="Source name from the recipe.")
    source_format: str = ""
    source_file: str = ""
    source_row: int = Field(-1, description="0-based record index within source_file.")
    license: str | None = None
    lang: str | None = None
    lang_score: float | None = None
    lang_backend: str | None = Field(
        None, description="Which language-ID backend set lang (script rule, langdetect, fasttext)."
    )
    template_id: str | None = None
    template_type: str | None = None
    inverted: bool | None = None
    exemplar_ids: list[str] | None = None
    parent_id: str | None = Field(
        None, description="Id of the record a template expansion came from."
    )
    meta: dict[str, Any] = Field(
        default_factory=dict,
        description="Source fields the schema has no place for. Stored as a JSON string in Arrow.",
        json_schema_extra={"arrow": "json"},
    )


def record_json_schema() -> dict[str, Any]:
    return Record.model_json_schema()


def _arrow_type(prop: dict[str, Any], defs: dict[str, Any]) -> tuple[pa.DataType, bool]:
    """Map one JSON Schema property to (arrow type, nullable)."""
    if prop.get("arrow") == "json":
        return pa.string(), False
    if "anyOf" in prop:
        branches = [b for b in prop["anyOf"] if b.get("type") != "null"]
        nullable = len(branches) != len(prop["anyOf"])
        dtype, _ = _arrow_type(branches[0], defs)
        return dtype, nullable
    if "$ref" in prop:
        ref = defs[prop["$ref"].rsplit("/", 1)[-1]]
        fields = []
        for name, sub in ref["properties"].items():
            dtype, nullable = _arrow_type(sub, defs)
            fields.append(pa.field(name, dtype, nullable=nullable))
        return pa.struct(fields), False
    kind = prop.get("type")
    if kind == "string":
        return pa.string(), False
    if kind == "integer":
        return pa.int64(), False
    if kind == "number":
        return pa.float64(), False
    if kind == "boolean":
        return pa.bool_(), False
    if kind == "array":
        item, _ = _arrow_type(prop["items"], defs)
        return pa.list_(item), False
    raise TypeError(f"no Arrow mapping for JSON Schema property {prop!r}")


def arrow_schema_from_json_schema(schema: dict[str, Any]) -> pa.Schema:
    defs = schema.get("$defs", {})
    fields = []
    for name, prop in schema["properties"].items():
        dtype, nullable = _arrow_type(prop, defs)
        fields.append(pa.field(name, dtype, nullable=nullable))
    return pa.schema(fields)


RECORD_SCHEMA: pa.Schema = arrow_schema_from_json_schema(record_json_schema())
RECORD_COLUMNS: tuple[str, ...] = tuple(RECORD_SCHEMA.names)
REJECT_SCHEMA: pa.Schema = pa.schema(
    list(RECORD_SCHEMA) + [pa.field(name, pa.string()) for name in REJECT_COLUMNS]
)
MESSAGE_TYPE: pa.DataType = RECORD_SCHEMA.field("messages").type.value_type
# Set by the reader for every row of a file, not by a format.
PROVENANCE_COLUMNS: tuple[str, ...] = ("id", "source", "source_format", "source_file", "license")
# Written by stages (language, expand), never by a reader.
STAGE_COLUMNS: tuple[str, ...] = (
    "lang",
    "lang_score",
    "lang_backend",
    "template_id",
    "inverted",
    "exemplar_ids",
    "parent_id",
)


def arrow_schema_as_json(schema: pa.Schema) -> list[dict[str, Any]]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def empty_records() -> pa.Table:
    return RECORD_SCHEMA.empty_table()


def empty_rejects() -> pa.Table:
    return REJECT_SCHEMA.empty_table()


def encode_meta(meta: dict[str, Any] | None) -> str:
    """Deterministic JSON for the ``meta`` column."""
    if not meta:
        return "{}"
    return json.dumps(meta, ensure_ascii=False, sort_keys=True, default=str)


# What json.dumps(ensure_ascii=False) escapes in a string: control characters, quote, backslash.
_JSON_ESCAPED = r'[\x00-\x1f"\\]'


def encode_meta_column(table: pa.Table) -> pa.Array:
    """:func:`encode_meta` of each row of a table of string (or null) columns, leaving out null
    values: the same strings, built column-wise. Rows whose values are all present and need no
    JSON escaping are joined by Arrow; the others go through ``encode_meta``."""
    names = sorted(
        name
        for name, kind in zip(table.column_names, table.schema.types, strict=True)
        if not pa.types.is_null(kind)
    )
    n = table.num_rows
    if not names:
        return pa.array(["{}"] * n, pa.string())
    columns = [pc.cast(table.column(name).combine_chunks(), pa.string()) for name in names]
    plain = None
    for column in columns:
        simple = pc.and_kleene(
            pc.is_valid(column), pc.invert(pc.match_substring_regex(column, _JSON_ESCAPED))
        )
        plain = simple if plain is None else pc.and_(plain, simple)
    parts: list[Any] = []
    for index, (name, column) in enumerate(zip(names, columns, strict=True)):
        parts += [
            ("{" if index == 0 else '", ') + json.dumps(name, ensure_ascii=False) + ': "',
            column,
        ]
    joined = pc.binary_join_element_wise(*parts, '"}', "")
    others = pc.invert(pc.fill_null(plain, False))
    rows = pc.indices_nonzero(others)
    if not len(rows):
        return joined
    subset = table.select(names).take(rows).to_pylist()
    slow = pa.array(
        [encode_meta({k: v for k, v in row.items() if v is not None}) for row in subset],
        pa.string(),
    )
    return pc.replace_with_mask(joined, others, slow)


_SEP = "\x1f"
_LIST_SEP = "\x1e"


def content_id(
    instruction: str,
    input: str,
    output: str,
    messages: list[dict[str, str]] | None = None,
    options: list[str] | None = None,
    rationale: str | None = None,
) -> str:
    """Stable id: the same normalized content gives the same id in every run and on every machine.

    xxh3-128 over the text fields joined with a unit separator; :func:`compute_ids` is the
    vectorized twin and must give the same value (tested).
    """
    messages_text = _SEP.join(f"{m['role']}:{m['content']}" for m in messages) if messages else ""
    options_text = _LIST_SEP.join(options) if options else ""
    joined = _SEP.join([instruction, input, output, rationale or "", options_text, messages_text])
    return xxhash.xxh3_128_hexdigest(joined.encode("utf-8"))


def _messages_text(messages: pa.Array) -> pa.Array:
    flat = pc.list_flatten(messages)
    turns = pc.binary_join_element_wise(flat.field("role"), flat.field("content"), ":")
    lists = pa.ListArray.from_arrays(messages.offsets, turns)
    joined = pc.binary_join(lists, _SEP)
    return pc.if_else(pc.is_null(messages), "", joined)


def compute_ids(table: pa.Table) -> pa.Array:
    """Content ids for every row of a record table (recomputed after normalization)."""
    if table.num_rows == 0:
        return pa.array([], pa.string())
    col = {
        name: table.column(name).combine_chunks()
        for name in ("instruction", "input", "output", "rationale", "options", "messages")
    }
    options_text = pc.fill_null(pc.binary_join(col["options"], _LIST_SEP), "")
    messages_text = _messages_text(col["messages"])
    joined = pc.binary_join_element_wise(
        col["instruction"],
        col["input"],
        col["output"],
        pc.fill_null(col["rationale"], ""),
        options_text,
        messages_text,
        _SEP,
    )
    digest = xxhash.xxh3_128_hexdigest
    if joined.null_count:
        return pa.array([digest(text.encode("utf-8")) for text in joined.to_pylist()], pa.string())
    # Each row's UTF-8 bytes straight from the Arrow buffer (no str made and encoded again).
    offsets, data = string_buffers(joined)
    text = data.data  # a memoryview of the bytes
    return pa.array(
        [digest(text[start:end]) for start, end in pairwise(offsets.tolist())], pa.string()
    )


def conform(table: pa.Table, schema: pa.Schema = RECORD_SCHEMA) -> pa.Table:
    """Order/cast the schema columns first, keep any extra columns (scores) after them."""
    columns = []
    fields = []
    for field in schema:
        if field.name in table.column_names:
            col = table.column(field.name)
            if col.type != field.type:
                col = col.cast(field.type)
        else:
            col = pa.nulls(table.num_rows, field.type)
            if not field.nullable:
                col = pa.array([_default_for(field.type)] * table.num_rows, field.type)
        columns.append(col)
        fields.append(field)
    for name in table.column_names:
        if name not in schema.names:
            columns.append(table.column(name))
            fields.append(table.schema.field(name))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _default_for(dtype: pa.DataType) -> Any:
    if pa.types.is_string(dtype):
        return ""
    if pa.types.is_integer(dtype):
        return -1
    if pa.types.is_list(dtype):
        return []
    return None


def write_schema_files(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "record.schema.json").write_text(
        json.dumps(record_json_schema(), indent=2, ensure_ascii=False) + "\n"
    )
    (directory / "record.arrow.json").write_text(
        json.dumps(
            {
                "record": arrow_schema_as_json(RECORD_SCHEMA),
                "reject": arrow_schema_as_json(REJECT_SCHEMA),
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    write_schema_files(Path(__file__).resolve().parent.parent / "schemas")
    print("wrote schemas/record.schema.json and schemas/record.arrow.json")
