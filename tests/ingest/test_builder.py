"""RowBuilder on its own: schemas, field names, the columnar path, strict mode, reject raw text."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest

from curate.errors import InputFileError
from curate.ingest.builder import ROW_FIELDS, RowBuilder
from curate.ingest.parse import MAX_RAW_CHARS, Item, ReadContext, RowError
from curate.records import PROVENANCE_COLUMNS, RECORD_SCHEMA, REJECT_SCHEMA


def builder(**kwargs: Any) -> RowBuilder:
    return RowBuilder(ReadContext("src", "data/src.jsonl", format="alpaca", **kwargs))


def test_tables_have_the_record_and_reject_schemas() -> None:
    b = builder(license="cc-by-4.0")
    b.add(0, instruction="Say hi.", output="hi", meta={"note": 1})
    b.reject(Item(1, 2, None, raw="{oops"), RowError("parse_error", "bad"))
    records, rejects = b.records(), b.rejects()
    assert records.schema == RECORD_SCHEMA
    assert rejects.schema == REJECT_SCHEMA
    assert len(b) == 1 and b.reject_count == 1
    record = records.to_pylist()[0]
    assert record["id"]  # content id computed
    assert (record["source"], record["source_format"], record["source_file"]) == (
        "src",
        "alpaca",
        "data/src.jsonl",
    )
    assert record["license"] == "cc-by-4.0"
    assert record["input"] == "" and record["rationale"] is None
    assert json.loads(record["meta"]) == {"note": 1}


def test_empty_builder_gives_empty_tables_with_the_schemas() -> None:
    b = builder()
    assert b.records().schema == RECORD_SCHEMA and b.records().num_rows == 0
    assert b.rejects().schema == REJECT_SCHEMA and b.rejects().num_rows == 0


def test_row_fields_leave_provenance_to_the_builder() -> None:
    assert not set(ROW_FIELDS) & set(PROVENANCE_COLUMNS)
    assert {"instruction", "input", "output", "source_row", "meta"} <= set(ROW_FIELDS)


def test_unknown_field_name_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not record fields: \\['answer'\\]"):
        builder().add(0, instruction="x", answer="y")


def test_add_columns_and_add_come_back_sorted_by_source_row() -> None:
    b = builder()
    b.add(1, instruction="row one")
    b.add_columns(
        {
            "source_row": pa.array([2, 0], pa.int64()),
            "instruction": pa.array(["row two", "row zero"], pa.string()),
        }
    )
    b.add(3, instruction="row three")
    records = b.records()
    assert len(b) == 4
    assert records.column("source_row").to_pylist() == [0, 1, 2, 3]
    assert records.column("instruction").to_pylist() == [
        "row zero",
        "row one",
        "row two",
        "row three",
    ]
    # Columns the batch did not give take the schema's defaults.
    assert records.column("output").to_pylist() == [""] * 4
    assert all(records.column("id").to_pylist())


def test_without_ids_the_id_column_stays_empty() -> None:
    b = builder(with_ids=False)
    b.add(0, instruction="x")
    assert b.records().column("id").to_pylist() == [""]


def test_strict_mode_raises_naming_file_and_line() -> None:
    b = builder(strict=True)
    with pytest.raises(
        InputFileError,
        match=r"^data/src\.jsonl, line 7: bad thing \(reason=wrong_type\); .*--strict",
    ):
        b.reject(Item(3, 7, {"a": 1}), RowError("wrong_type", "bad thing"))
    assert b.reject_count == 0


def test_reject_detail_and_meta_use_line_or_record_number() -> None:
    b = builder()
    b.reject(Item(0, 4, {"a": 1}), RowError("wrong_type", "no"))
    b.reject(Item(5, None, [1, 2]), RowError("wrong_type", "no"), stage="other")
    first, second = b.rejects().to_pylist()
    assert first["detail"] == "data/src.jsonl, line 4: no"
    assert json.loads(first["meta"]) == {"line": 4, "raw": '{"a": 1}'}
    assert (first["stage"], first["reason"], first["source_row"]) == ("ingest", "wrong_type", 0)
    assert second["detail"] == "data/src.jsonl, record 5: no"
    assert json.loads(second["meta"]) == {"raw": "[1, 2]"}
    assert second["stage"] == "other"


def test_reject_raw_text_is_truncated_at_max_raw_chars() -> None:
    b = builder()
    raw = "x" * (MAX_RAW_CHARS + 10)
    b.reject(Item(0, 1, None, raw=raw), RowError("parse_error", "too long"))
    b.reject(Item(1, 2, None, raw="y" * MAX_RAW_CHARS), RowError("parse_error", "fits"))
    long, fits = (json.loads(r["meta"]) for r in b.rejects().to_pylist())
    assert long["raw"] == "x" * MAX_RAW_CHARS
    assert long["raw_truncated_from"] == MAX_RAW_CHARS + 10
    assert fits["raw"] == "y" * MAX_RAW_CHARS and "raw_truncated_from" not in fits
