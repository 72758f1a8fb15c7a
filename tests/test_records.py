"""The committed schema files must match what the pydantic Record generates."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
from testutils import REPO

from curate.records import (
    RECORD_SCHEMA,
    REJECT_SCHEMA,
    Record,
    arrow_schema_as_json,
    compute_ids,
    content_id,
    encode_meta,
    encode_meta_column,
    record_json_schema,
    write_schema_files,
)


def test_committed_schema_files_match_the_model(tmp_path: Path) -> None:
    write_schema_files(tmp_path)
    for name in ("record.schema.json", "record.arrow.json"):
        committed = (REPO / "schemas" / name).read_text()
        generated = (tmp_path / name).read_text()
        assert committed == generated, (
            f"schemas/{name} drifted from curate/records.py: run `python -m curate.records`"
        )


def test_arrow_schema_is_derived_from_json_schema() -> None:
    schema = record_json_schema()
    assert list(schema["properties"]) == RECORD_SCHEMA.names
    message = pa.struct(
        [
            pa.field("role", pa.string(), nullable=False),
            pa.field("content", pa.string(), nullable=False),
        ]
    )
    assert RECORD_SCHEMA.field("messages").type == pa.list_(message)
    assert RECORD_SCHEMA.field("meta").type == pa.string()
    assert RECORD_SCHEMA.field("source_row").type == pa.int64()
    assert RECORD_SCHEMA.field("lang_score").nullable
    assert not RECORD_SCHEMA.field("instruction").nullable
    assert REJECT_SCHEMA.names[-4:] == ["stage", "reason", "detail", "duplicate_of"]
    arrow_json = json.loads((REPO / "schemas" / "record.arrow.json").read_text())
    assert arrow_json["record"] == arrow_schema_as_json(RECORD_SCHEMA)


def test_content_id_is_stable_and_matches_vectorized_twin() -> None:
    rows = [
        {"instruction": "a", "input": "b", "output": "c"},
        {"instruction": "é 日本", "input": "ü", "output": "ß", "rationale": "r"},
        {"instruction": "a", "input": "b", "output": "c", "rationale": "r"},
        {"instruction": "a", "input": "", "output": "", "options": ["x", "y"]},
        {
            "instruction": "hi",
            "input": "",
            "output": "yo",
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
        },
    ]
    table = pa.Table.from_pylist(
        [{**{"rationale": None, "options": None, "messages": None}, **r} for r in rows],
        schema=pa.schema(
            [
                RECORD_SCHEMA.field(n)
                for n in ("instruction", "input", "output", "rationale", "options", "messages")
            ]
        ),
    )
    vectorized = compute_ids(table).to_pylist()
    scalar = [
        content_id(
            r["instruction"],
            r["input"],
            r["output"],
            r.get("messages"),
            r.get("options"),
            r.get("rationale"),
        )
        for r in rows
    ]
    assert vectorized == scalar
    # Ids read each row's bytes from the Arrow buffers: slices and chunks start mid-buffer.
    assert compute_ids(table.slice(1, 2)).to_pylist() == scalar[1:3]
    assert compute_ids(pa.concat_tables([table.slice(0, 2), table.slice(2)])).to_pylist() == scalar
    assert len(set(scalar)) == len(scalar)
    # Same content, same id: in every run and on every machine (a fixed hash, not Python's hash()).
    assert content_id("a", "b", "c") == content_id("a", "b", "c")
    assert content_id("a", "b", "c") != content_id("a", "bc", "")


def test_record_model_validates_a_row_from_the_arrow_schema() -> None:
    row = {name: None for name in RECORD_SCHEMA.names}
    row.update(
        {
            "id": "x",
            "instruction": "i",
            "input": "",
            "output": "o",
            "source": "s",
            "source_format": "alpaca",
            "source_file": "f",
            "source_row": 0,
            "meta": {},
        }
    )
    record = Record.model_validate(row | {"meta": {"k": 1}})
    assert record.meta == {"k": 1}


def test_meta_column_equals_encode_meta_row_by_row() -> None:
    # Values that need JSON escaping (quotes, backslashes, control characters), that do not
    # (non-ASCII, U+2028, DEL), nulls, an all-null column and keys that sort and escape.
    rng = random.Random(7)
    alphabet = ["a", " ", '"', "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "日", "😀", "\u2028"]
    for _ in range(200):
        n = rng.randint(0, 20)
        names = rng.sample(["id", "z", "Alpha", "ß", 'key"q', "a b"], rng.randint(1, 4))
        columns = {
            name: pa.array(
                [
                    None
                    if rng.random() < 0.2
                    else "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5)))
                    for _ in range(n)
                ],
                pa.string(),
            )
            for name in names
        }
        columns["empty"] = pa.nulls(n)
        table = pa.table(columns)
        expected = [
            encode_meta({k: v for k, v in row.items() if v is not None})
            for row in table.to_pylist()
        ]
        assert encode_meta_column(table).to_pylist() == expected
        # and every value is JSON that gives the row back
        for row, text in zip(table.to_pylist(), expected, strict=True):
            assert json.loads(text) == {k: v for k, v in row.items() if v is not None}
