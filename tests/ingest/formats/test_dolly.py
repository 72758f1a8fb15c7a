"""The Dolly format: its column mapping, detection, and the two paths derived from the mapping."""

from __future__ import annotations

import json
from pathlib import Path

from testutils import SAMPLES

from curate.ingest import read_file
from curate.ingest.formats.dolly import Dolly


def rows(path: Path) -> list[dict]:
    return read_file(path, source="t", display="dolly.jsonl").records.to_pylist()


def test_dolly_maps_context_response_category() -> None:
    records = rows(SAMPLES / "dolly.jsonl")
    assert records[0]["input"].startswith("Apollo 11")
    assert records[0]["output"].startswith("The first crewed")
    assert records[0]["category"] == "closed_qa"
    assert {r["source_format"] for r in records} == {"dolly"}


def test_translated_dolly_spelling_is_dolly(tmp_path: Path) -> None:
    path = tmp_path / "dolly_ja.jsonl"
    path.write_text(
        json.dumps(
            {
                "index": "0",
                "instruction": "質問",
                "input": "文脈",
                "output": "答え",
                "category": "open_qa",
            },
            ensure_ascii=False,
        )
        + "\n"
    )
    result = read_file(path, source="ja")
    assert result.format == "dolly"
    record = result.records.to_pylist()[0]
    assert (record["input"], record["output"], record["category"]) == ("文脈", "答え", "open_qa")
    assert json.loads(record["meta"]) == {"index": "0"}


def test_row_path_and_columnar_path_give_the_same_records(tmp_path: Path) -> None:
    """One mapping, two paths: a file of flat text rows takes the columnar path; one odd row
    (a number where text is expected) sends the whole file down the row-by-row path."""
    base = [
        {"instruction": "Q1", "context": "C1", "response": "R1", "category": "open_qa", "x": 1},
        {"instruction": "Q2", "context": None, "response": "R2", "category": "brainstorming"},
    ]
    flat, odd = tmp_path / "flat.jsonl", tmp_path / "odd.jsonl"
    flat.write_text("".join(json.dumps(r) + "\n" for r in base))
    odd.write_text("".join(json.dumps(r) + "\n" for r in [*base, {**base[1], "response": 7}]))
    columnar, row_by_row = rows(flat), rows(odd)[:2]
    assert columnar == row_by_row
    assert [(r["input"], r["output"], json.loads(r["meta"])) for r in columnar] == [
        ("C1", "R1", {"x": 1}),
        ("", "R2", {}),
    ]
    assert rows(odd)[2]["output"] == "7"


def test_missing_response_is_a_reject_naming_the_column(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"instruction": "Q", "context": "C", "category": "x"}) + "\n")
    result = read_file(path, source="t", format="dolly")
    (reject,) = result.rejects.to_pylist()
    assert reject["reason"] == "missing_field"
    assert "missing required field 'response'" in reject["detail"] and "line 1" in reject["detail"]


def test_detection() -> None:
    dolly = Dolly()
    assert dolly.matches({"instruction", "context", "response"})
    assert dolly.matches({"instruction", "input", "output", "category"})
    assert not dolly.matches({"instruction", "input", "output"})  # that is Alpaca
