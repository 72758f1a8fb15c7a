"""Each reader on the project's own samples, detection, field mapping, meta, and compression."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pytest
from testutils import SAMPLES

from curate.errors import InputFileError, UnknownFormatError
from curate.ingest import SkippedFile, read_dataset, read_file
from curate.records import RECORD_SCHEMA, REJECT_SCHEMA


def rows(path: Path, **kwargs: object) -> list[dict]:
    result = read_file(path, source="t", **kwargs)  # type: ignore[arg-type]
    assert result.records.schema == RECORD_SCHEMA
    assert result.rejects.schema == REJECT_SCHEMA
    return result.records.to_pylist()


def test_alpaca_json_array() -> None:
    result = read_file(SAMPLES / "alpaca.json", source="alpaca")
    assert result.format == "alpaca" and result.detected
    records = result.records.to_pylist()
    assert len(records) == 8
    assert records[1]["instruction"] == "Translate the sentence into French."
    assert records[1]["input"] == "The library opens at nine."
    assert records[1]["output"].startswith("La bibliothèque")
    assert [r["source_row"] for r in records] == list(range(8))
    # Unknown fields go to meta, never silently lost.
    assert json.loads(records[4]["meta"]) == {"source_note": "kept in meta"}
    assert all(
        r["source"] == "alpaca" and r["source_file"].endswith("alpaca.json") for r in records
    )


def test_alpaca_jsonl_bad_lines_become_rejects_with_line_numbers() -> None:
    result = read_file(SAMPLES / "alpaca_more.jsonl", source="a")
    assert result.records.num_rows == 3
    rejects = result.rejects.to_pylist()
    assert [r["reason"] for r in rejects] == ["parse_error", "missing_field"]
    assert "line 3" in rejects[0]["detail"] and "alpaca_more.jsonl" in rejects[0]["detail"]
    assert "line 5" in rejects[1]["detail"] and "instruction" in rejects[1]["detail"]
    assert json.loads(rejects[0]["meta"])["raw"].startswith('{"instruction": "Convert 5 kilometres')
    assert [r["source_row"] for r in rejects] == [2, 4]
    assert result.rows_read == 5


def test_strict_mode_fails_on_the_first_bad_row() -> None:
    with pytest.raises(InputFileError, match=r"alpaca_more.jsonl, line 3: .*--strict"):
        read_file(SAMPLES / "alpaca_more.jsonl", source="a", strict=True)


def test_flan_collection_export() -> None:
    records = rows(SAMPLES / "flan.jsonl")
    assert records[0]["task"] == "anli_r1" and records[0]["task_source"] == "Flan2021"
    assert records[0]["template_type"] == "zs_opt" and records[0]["output"] == "yes"
    assert json.loads(records[2]["meta"]) == {"_template_idx": 3}


def test_flan_cot_tsv() -> None:
    result = read_file(SAMPLES / "cot_gsm8k_train.tsv", source="cot")
    assert result.format == "flan_cot_tsv"
    records = result.records.to_pylist()
    assert len(records) == 3
    assert records[0]["output"] == "20" and records[0]["rationale"].endswith("12 + 8 = 20.")
    assert records[0]["task"] == "cot_gsm8k" and records[0]["task_source"] == "flan_cot"
    (reject,) = result.rejects.to_pylist()
    assert (
        reject["reason"] == "parse_error"
        and "line 3" in reject["detail"]
        and "got 2" in reject["detail"]
    )


def test_niv2_task_positive_examples_and_list_outputs() -> None:
    result = read_file(SAMPLES / "niv2_task001_sample_antonyms.json", source="niv2")
    assert result.format == "niv2"
    records = result.records.to_pylist()
    assert len(records) == 4  # 1 positive example + 3 instances
    metas = [json.loads(r["meta"]) for r in records]
    assert metas[0]["niv2_part"] == "positive_example" and metas[0][
        "instance_explanation"
    ].startswith("Cold")
    happy = records[1]
    assert happy["instruction"].startswith("Given a word, write its antonym")
    assert (happy["input"], happy["output"]) == ("happy", "sad")
    assert metas[1]["alt_outputs"] == ["unhappy"]
    assert happy["task"] == "niv2_task001_sample_antonyms" and happy["task_source"] == "niv2"
    assert happy["category"] == "Word Semantics"
    (negative,) = result.rejects.to_pylist()
    assert negative["reason"] == "niv2_negative_example"


def test_sharegpt_roles_mapped_explicitly_with_tool_calls() -> None:
    result = read_file(SAMPLES / "sharegpt.json", source="sg")
    records = result.records.to_pylist()
    first, tools = records
    assert [m["role"] for m in first["messages"]] == ["user", "assistant", "user", "assistant"]
    # instruction/output mirror the final exchange; the whole conversation is in messages
    assert first["instruction"] == "Why is it readable?"
    assert first["output"].startswith("It uses indentation")
    assert [m["role"] for m in tools["messages"]] == [
        "system",
        "user",
        "tool_call",
        "tool",
        "assistant",
    ]
    meta = json.loads(tools["meta"])
    assert meta["id"] == "conv-2" and "get_weather" in meta["tools"]
    (reject,) = result.rejects.to_pylist()
    assert reject["reason"] == "unknown_role" and "'robot'" in reject["detail"]


def test_openai_messages_with_parts_and_tool_calls() -> None:
    records = rows(SAMPLES / "messages.jsonl")
    assert records[0]["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert records[1]["instruction"] == "Say hi in Spanish." and records[1]["output"] == "¡Hola!"
    # per-message keys the schema has no place for (loss_weight) are kept in meta
    assert json.loads(records[1]["meta"])["message_extra"]["0"] == {"loss_weight": 0.0}
    roles = [m["role"] for m in records[2]["messages"]]
    assert roles == ["user", "tool_call", "tool", "assistant"]
    assert "calculator" in records[2]["messages"][1]["content"]


def test_alpaca_history_builds_the_conversation() -> None:
    result = read_file(SAMPLES / "alpaca_history.json", source="h")
    assert result.format == "alpaca_history"
    first, single = result.records.to_pylist()
    assert [m["content"] for m in first["messages"]][:2] == [
        "What is the capital of France?",
        "The capital of France is Paris.",
    ]
    assert first["messages"][-1] == {"role": "assistant", "content": first["output"]}
    assert single["messages"] is None  # no history: a plain single-turn record


def test_fields_mapping_for_renamed_columns_and_zst() -> None:
    records = rows(
        SAMPLES / "gpteacher_style.jsonl.zst", format="alpaca", fields={"output": "response"}
    )
    assert records[0]["output"] == "The plan was approved by the committee."
    assert records[0]["meta"] == "{}"


def test_gzip_jsonl() -> None:
    records = rows(SAMPLES / "alpaca_compressed.jsonl.gz")
    assert len(records) == 2 and records[1]["output"] == "Central processing unit."


def test_hf_dataset_on_disk_and_in_python() -> None:
    result = read_file(SAMPLES / "hf_dataset", source="hf")
    assert result.format == "hf_disk"
    assert [r["output"] for r in result.records.to_pylist()] == ["Red.", "32 °F."]
    import datasets

    ds = datasets.Dataset.from_list(
        [{"instruction": "q", "context": "c", "response": "r", "category": "open_qa"}]
    )
    in_memory = read_dataset(ds, source="mem")
    (record,) = in_memory.records.to_pylist()
    assert (record["input"], record["output"], record["category"]) == ("c", "r", "open_qa")


def test_preference_files_are_skipped_with_a_message(tmp_path: Path) -> None:
    path = tmp_path / "dpo.json"
    path.write_text(
        json.dumps(
            [{"conversations": [{"from": "human", "value": "hi"}], "chosen": {}, "rejected": {}}]
        )
    )
    with pytest.raises(SkippedFile, match="preference pairs"):
        read_file(path, source="p")


def test_unknown_format_names_fields_and_options(tmp_path: Path) -> None:
    path = tmp_path / "weird.jsonl"
    path.write_text('{"foo": 1, "bar": 2}\n')
    with pytest.raises(
        UnknownFormatError, match=r"weird.jsonl: cannot tell the format .*\['bar', 'foo'\].*format:"
    ):
        read_file(path, source="w")


def test_broken_json_array_names_file_line_column_or_recovers_when_lenient(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text(
        '[\n  {"instruction": "a", "input": "", "output": "b"},\n  {"instruction": "c", "output": "d"},\n]\n'
    )
    with pytest.raises(InputFileError, match=r"broken.json:4:1: invalid JSON.*lenient: true"):
        read_file(path, source="b")
    result = read_file(path, source="b", lenient_json=True)
    assert [r["instruction"] for r in result.records.to_pylist()] == ["a", "c"]
    assert any("trailing comma" in w for w in result.warnings)


def test_lenient_recovery_quarantines_a_broken_element(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text(
        '[\n{"instruction": "a", "output": "b"},\n{"instruction": "c" "output": "d"},\n{"instruction": "e", "output": "f"}\n]\n'
    )
    result = read_file(path, source="b", lenient_json=True)
    assert [r["instruction"] for r in result.records.to_pylist()] == ["a", "e"]
    (reject,) = result.rejects.to_pylist()
    assert reject["reason"] == "parse_error" and "line 3" in reject["detail"]
    assert result.rows_read == 3


def test_invalid_utf8(tmp_path: Path) -> None:
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_bytes(
        b'{"instruction": "ok", "output": "x"}\n{"instruction": "\xff\xfe", "output": "x"}\n'
    )
    result = read_file(jsonl, source="u")
    assert result.records.num_rows == 1
    assert result.rejects.to_pylist()[0]["reason"] == "encoding_error"
    array = tmp_path / "bad.json"
    array.write_bytes(b'[\n{"instruction": "\xff", "output": "x"}]')
    with pytest.raises(InputFileError, match=r"bad.json:2:\d+: not valid UTF-8"):
        read_file(array, source="u")


def test_wrong_types_and_non_objects_become_rejects(tmp_path: Path) -> None:
    path = tmp_path / "types.jsonl"
    path.write_text(
        '{"instruction": ["a list"], "output": "x"}\n[1, 2]\n{"instruction": "fine", "output": 3}\n'
    )
    result = read_file(path, source="t", format="alpaca")
    assert [r["reason"] for r in result.rejects.to_pylist()] == ["wrong_type", "wrong_type"]
    assert result.records.to_pylist()[0]["output"] == "3"


def test_bom_crlf_and_json_lines_in_a_dot_json_file(tmp_path: Path) -> None:
    path = tmp_path / "lines.json"
    path.write_bytes(
        b'\xef\xbb\xbf{"instruction": "a", "output": "b"}\r\n{"instruction": "c", "output": "d"}\r\n'
    )
    assert [r["instruction"] for r in rows(path)] == ["a", "c"]


def test_gzip_of_broken_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "x.json.gz"
    path.write_bytes(gzip.compress(b'[{"instruction": "a", "output": "b"}')[:-8])
    with pytest.raises(InputFileError, match=r"x\.json\.gz"):
        read_file(path, source="g")


def test_missing_file() -> None:
    from curate.ingest.files import expand_paths

    with pytest.raises(InputFileError, match="no such file"):
        expand_paths("does/not/exist.json")


def test_all_records_have_content_ids() -> None:
    tables = [
        read_file(p, source="s").records
        for p in sorted(SAMPLES.glob("*.json*"))
        if "recipe" not in p.name
    ]
    ids = pa.concat_tables(tables).column("id").to_pylist()
    assert all(isinstance(i, str) and len(i) == 32 for i in ids)


def test_truncated_zstd_is_an_error_not_a_silent_loss(tmp_path: Path) -> None:
    import zstandard

    lines = "".join(
        json.dumps({"instruction": f"Question {i}?", "output": f"Answer {i}."}) + "\n"
        for i in range(2000)
    ).encode()
    frame = zstandard.ZstdCompressor().compress(lines)
    whole = tmp_path / "whole.jsonl.zst"
    whole.write_bytes(frame + frame)  # two frames, as `cat a.zst b.zst` makes
    assert len(rows(whole)) == 4000
    for cut in (0.5, 0.9):
        cut_path = tmp_path / f"cut{cut}.jsonl.zst"
        cut_path.write_bytes(frame[: int(len(frame) * cut)])
        with pytest.raises(InputFileError, match=r"cut.*truncated zstd stream"):
            read_file(cut_path, source="t")
    garbage = tmp_path / "garbage.jsonl.zst"
    garbage.write_bytes(b"not zstd at all")
    with pytest.raises(
        InputFileError, match=r"garbage\.jsonl\.zst: cannot decompress zstd after 0 bytes \(\S"
    ):
        read_file(garbage, source="t")


def test_a_field_mapping_to_a_missing_column_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"instruction": "Say hi.", "response": "Hi."}) + "\n")
    with pytest.raises(InputFileError, match=r"data\.jsonl: fields: \{output: nope\}.*'response'"):
        read_file(path, source="t", fields={"output": "nope"})
    assert rows(path, fields={"output": "response"})[0]["output"] == "Hi."
