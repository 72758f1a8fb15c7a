"""`curate export --for TRAINER`: folders each trainer reads as they are, checked against each
format's documented schema (TRL's own SFTTrainer reads its export in test_export_trl.py; LLaMA-Factory
and axolotl pin numpy/torch stacks that do not install beside curate's)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import pytest
import yaml
from typer.testing import CliRunner

from curate import cli
from curate.run.export import export_run
from curate.run.export.trainers import NotOpenAI, openai_messages

OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def load_messages(folder: Path, pattern: str) -> list[list[dict[str, Any]]]:
    kind = "parquet" if pattern.endswith("parquet") else "json"
    dataset = datasets.load_dataset(kind, data_files=str(folder / pattern), split="train")
    return [row["messages"] for row in dataset]


def test_trl_gets_a_conversational_messages_column(run_dir: Path, tmp_path: Path) -> None:
    result = export_run(run_dir, tmp_path / "trl", trainer="trl")
    assert (result.format, result.chat, result.trainer) == ("parquet", True, "trl")
    conversations = load_messages(tmp_path / "trl", "data/*.parquet")
    assert len(conversations) == result.rows > 0
    for turns in conversations:
        assert turns and all(set(t) == {"role", "content"} for t in turns)
        assert turns[-1]["role"] == "assistant"
    card = (tmp_path / "trl" / "README.md").read_text()
    assert "SFTTrainer" in card and 'load_dataset("parquet"' in card


def test_llama_factory_dataset_info_declares_the_data(run_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "lf"
    export_run(run_dir, folder, trainer="llama-factory")
    info = json.loads((folder / "dataset_info.json").read_text())
    ((name, entry),) = info.items()
    assert name == "demo"
    assert entry["formatting"] == "sharegpt" and entry["columns"] == {"messages": "messages"}
    tags = entry["tags"]
    assert (tags["role_tag"], tags["content_tag"]) == ("role", "content")
    assert (folder / entry["file_name"]).is_dir()
    # LLaMA-Factory's sharegpt converter: an optional system turn, then user (or observation)
    # at even and assistant (or function) at odd positions; it drops rows that break this.
    odd_roles = {tags["assistant_tag"], tags["function_tag"]}
    even_roles = {tags["user_tag"], tags["observation_tag"]}
    for turns in load_messages(folder, "data/*.jsonl"):
        if turns[0]["role"] == tags["system_tag"]:
            turns = turns[1:]
        assert len(turns) % 2 == 0
        for position, turn in enumerate(turns):
            assert turn["role"] in (odd_roles if position % 2 else even_roles), turns


def test_axolotl_snippet_points_at_the_data(run_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ax"
    export_run(run_dir, folder, trainer="axolotl")
    (entry,) = yaml.safe_load((folder / "axolotl.yaml").read_text())["datasets"]
    assert entry["type"] == "chat_template" and entry["field_messages"] == "messages"
    assert (folder / entry["path"]).is_dir()
    conversations = load_messages(folder, "data/*.jsonl")
    mapping = entry["message_property_mappings"]
    assert all(mapping["role"] in t and mapping["content"] in t for c in conversations for t in c)


def test_openai_lines_hold_only_messages_in_the_api_format(run_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "oa"
    result = export_run(run_dir, folder, trainer="openai")
    lines = [
        json.loads(line)
        for path in sorted((folder / "data").glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    assert len(lines) == result.rows > 0
    for example in lines:
        assert set(example) == {"messages"}
        roles = [m["role"] for m in example["messages"]]
        assert set(roles) <= {"system", "user", "assistant", "tool"} and "assistant" in roles
        for message in example["messages"]:
            if "tool_calls" in message:
                assert message["role"] == "assistant"
            else:
                assert isinstance(message["content"], str)


def test_tool_calls_become_openai_tool_calls_and_unmappable_ones_are_named() -> None:
    turns = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "tool_call", "content": '{"name": "weather", "arguments": {"city": "Paris"}}'},
        {"role": "tool", "content": '{"temp": 21}'},
        {"role": "assistant", "content": "21 degrees."},
    ]
    messages = openai_messages(turns)
    assert messages[1] == {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'}
    with pytest.raises(NotOpenAI, match="not JSON"):
        openai_messages([{"role": "tool_call", "content": "weather(Paris)"}])
    with pytest.raises(NotOpenAI, match="without a tool call"):
        openai_messages([{"role": "tool", "content": "21"}, {"role": "assistant", "content": "x"}])


def test_trainer_exports_are_byte_identical_and_a_re_export_is_a_no_op(
    run_dir: Path, tmp_path: Path
) -> None:
    first = export_run(run_dir, tmp_path / "a", trainer="llama-factory")
    export_run(run_dir, tmp_path / "b", trainer="llama-factory")
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    again = export_run(run_dir, tmp_path / "a", trainer="llama-factory")
    assert again.up_to_date and again.files == first.files


def test_cli_for_option(run_dir: Path, tmp_path: Path) -> None:
    out = CliRunner().invoke(
        cli.app, ["export", str(run_dir), "--to", str(tmp_path / "o"), "--for", "openai"]
    )
    assert out.exit_code == 0, out.output
    assert "for openai" in out.output
    bad = CliRunner().invoke(
        cli.app, ["export", str(run_dir), "--to", str(tmp_path / "x"), "--for", "kiln"]
    )
    assert bad.exit_code != 0
    assert "--for must be one of trl, llama-factory, axolotl, openai" in str(bad.exception)
