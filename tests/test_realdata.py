"""Acceptance on the real public datasets in ../shared/data (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
from testutils import REPO, SHARED_DATA, needs_shared_data

from curate.engine.run import run_recipe
from curate.errors import InputFileError
from curate.ingest import read_file
from curate.recipe import load_recipe

pytestmark = needs_shared_data

EXPECTED_FORMATS = {
    "alpaca/alpaca_data.json.gz": "alpaca",
    "alpaca/seed_tasks.jsonl": "self_instruct",
    "dolly/databricks-dolly-15k.jsonl.gz": "dolly",
    "dolly_ja/databricks-dolly-15k-ja.jsonl.gz": "dolly",
    "flan/gsm8k_train.tsv.gz": "flan_cot_tsv",
    "gpt4llm/vicuna_question_80.jsonl": "prompts",
    "gpteacher/Codegen/codegen-instruct.json.gz": "alpaca",
    "lima/lima.json.gz": "alpaca_history",
    "oasst/oaast_rm_zh.json.gz": "alpaca_history",
    "llamafactory/glaive_toolcall_en_demo.json.gz": "sharegpt",
    "llamafactory/v1_sft_demo.jsonl.gz": "messages",
    "sharegpt/fastchat_dummy_conversation.json": "sharegpt",
    "natural_instructions/adv_icl_copy/task1759_gsm.json.gz": "niv2",
}


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    recipe = load_recipe(REPO / "bench" / "recipes" / "shared_all.yaml")
    # The recipe's paths are relative to the repository root.
    cwd = Path.cwd()
    try:
        import os

        os.chdir(REPO)
        return run_recipe(recipe, out=tmp_path_factory.mktemp("real") / "run").manifest
    finally:
        os.chdir(cwd)


def test_every_file_ingested_with_the_right_family(shared_run: dict) -> None:
    formats = {
        f["path"].split("shared/data/")[-1]: f["format"]
        for s in shared_run["sources"]
        for f in s["files"]
    }
    for path, family in EXPECTED_FORMATS.items():
        assert formats[path] == family, path
    skipped = {
        f["path"].split("shared/data/")[-1]: f["reason"]
        for s in shared_run["sources"]
        for f in s["skipped_files"]
    }
    assert "preference pairs" in skipped["llamafactory/dpo_en_demo.json.gz"]
    assert "KTO" in skipped["llamafactory/kto_en_demo.json.gz"]
    assert all(
        not p.endswith((".json", ".json.gz", ".jsonl", ".jsonl.gz", ".tsv.gz"))
        or p.startswith("llamafactory/")
        for p in skipped
    )


def test_accounting_holds_per_source(shared_run: dict) -> None:
    for source in shared_run["sources"]:
        assert source["rows_read"] > 0
        assert source["rows_read"] == source["rows_kept"] + source["rows_rejected"], source["name"]
    by_name = {s["name"]: s for s in shared_run["sources"]}
    assert by_name["alpaca"]["rows_read"] == 52002 + 175  # alpaca_data + seed tasks
    assert by_name["dolly"]["rows_read"] == 15011
    exact = next(s for s in shared_run["stages"] if s["name"] == "exact_dedup_v1")
    assert (
        exact["dropped"]["exact_duplicate"] > 100
    )  # Dolly and merged Alpaca sets repeat instructions


def test_tool_call_conversations_keep_their_roles() -> None:
    result = read_file(
        SHARED_DATA / "llamafactory" / "glaive_toolcall_en_demo.json.gz", source="glaive"
    )
    roles = {m["role"] for row in result.records.column("messages").to_pylist() for m in row}
    assert roles >= {"user", "assistant", "tool_call", "tool"}
    assert result.rejects.num_rows == 0


def test_malformed_file_gives_file_line_column_or_lenient_rows() -> None:
    path = SHARED_DATA / "malformed" / "alpaca_zh_trailing_comma.json"
    with pytest.raises(
        InputFileError, match=r"alpaca_zh_trailing_comma.json:14007:1: invalid JSON"
    ):
        read_file(path, source="m")
    lenient = read_file(path, source="m", lenient_json=True)
    # Independent count: drop the one trailing comma and let json parse the rest.
    import json
    import re

    fixed = json.loads(re.sub(r",\s*\]\s*$", "]", path.read_text(encoding="utf-8")))
    assert lenient.records.num_rows == len(fixed) and lenient.rejects.num_rows == 0
    assert lenient.records.column("instruction").to_pylist() == [
        row["instruction"] for row in fixed
    ]
    assert any("14006" in w and "trailing comma" in w for w in lenient.warnings)
