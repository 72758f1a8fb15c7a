"""Exports a trainer reads as they are: ``curate export RUN --to DIR --for TRAINER``.

==============  ===============================================================================
trl             ``data/train-*.parquet`` with a ``messages`` column of ``{role, content}`` turns:
                the conversational format TRL's ``SFTTrainer`` takes from ``load_dataset``.
llama-factory   ``data/train-*.jsonl`` (``messages``) and ``dataset_info.json`` declaring the
                dataset in LLaMA-Factory's sharegpt format with role/content tags: point
                ``dataset_dir`` at DIR and use ``dataset: <name>``.
axolotl         ``data/train-*.jsonl`` (``messages``) and ``axolotl.yaml``, the ``datasets:``
                entry (``type: chat_template``) to paste into a config.
openai          ``data/train-*.jsonl`` with one ``{"messages": [...]}`` per line and nothing else,
                as OpenAI's fine-tuning API takes it: roles system / user / assistant, tool calls
                as assistant ``tool_calls`` answered by ``tool`` messages with their ids.
==============  ===============================================================================

Every export also has the dataset card (README.md) saying which trainer it targets and how to load
it. Records an OpenAI file cannot hold (a tool call curate cannot parse into a name and JSON
arguments) are left out, counted in the card and in the command's output.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.errors import ExportError
from curate.run.export.writers import DataStats, chat_messages, record_batches

TRAINERS: tuple[str, ...] = ("trl", "llama-factory", "axolotl", "openai")


@dataclass(frozen=True)
class Target:
    """How a trainer's export is laid out: the data format, and the files beside the data."""

    name: str
    format: str  # parquet | jsonl
    chat: bool


TARGETS: dict[str, Target] = {
    "trl": Target("trl", "parquet", True),
    "llama-factory": Target("llama-factory", "jsonl", True),
    "axolotl": Target("axolotl", "jsonl", True),
    "openai": Target("openai", "jsonl", True),
}


def target(name: str) -> Target:
    if name not in TARGETS:
        raise ExportError(f"--for must be one of {', '.join(TRAINERS)}, not {name!r}")
    return TARGETS[name]


def dataset_name(run_name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in run_name.strip())
    return cleaned or "curate"


def extra_files(trainer: str, run_name: str) -> dict[str, str]:
    """Files written beside ``data/`` for a trainer (name -> text)."""
    name = dataset_name(run_name)
    if trainer == "llama-factory":
        info = {
            name: {
                "file_name": "data",
                "formatting": "sharegpt",
                "columns": {"messages": "messages"},
                "tags": {
                    "role_tag": "role",
                    "content_tag": "content",
                    "user_tag": "user",
                    "assistant_tag": "assistant",
                    "observation_tag": "tool",
                    "function_tag": "tool_call",
                    "system_tag": "system",
                },
            }
        }
        return {"dataset_info.json": json.dumps(info, indent=2, sort_keys=True) + "\n"}
    if trainer == "axolotl":
        return {
            "axolotl.yaml": (
                "# Paste into your axolotl config; `path` is this folder's data/ directory.\n"
                "datasets:\n"
                "  - path: ./data\n"
                "    ds_type: json\n"
                "    type: chat_template\n"
                "    field_messages: messages\n"
                "    message_property_mappings:\n"
                "      role: role\n"
                "      content: content\n"
                "    roles_to_train: [assistant]\n"
            )
        }
    return {}


def how_to_load(trainer: str, run_name: str) -> str:
    """The card section that says which trainer the folder targets and how to load it."""
    name = dataset_name(run_name)
    snippets = {
        "trl": (
            "This folder targets **TRL**'s `SFTTrainer` (conversational format: a `messages` "
            "column of `{role, content}` turns).\n\n```python\nfrom datasets import load_dataset\n"
            'from trl import SFTConfig, SFTTrainer\n\ndataset = load_dataset("parquet", '
            'data_files="data/*.parquet", split="train")\ntrainer = SFTTrainer(model="<model>", '
            'train_dataset=dataset, args=SFTConfig(output_dir="out"))\n```\n'
        ),
        "llama-factory": (
            "This folder targets **LLaMA-Factory**: `dataset_info.json` declares the dataset "
            f"`{name}` (sharegpt formatting, `messages` with role/content tags).\n\n```yaml\n"
            f"dataset_dir: <this folder>\ndataset: {name}\ntemplate: <your model's template>\n```\n"
        ),
        "axolotl": (
            "This folder targets **axolotl**: paste the `datasets:` entry of `axolotl.yaml` into "
            "your config (`type: chat_template`, `field_messages: messages`; run axolotl from "
            "this folder or make `path` absolute).\n"
        ),
        "openai": (
            "This folder targets **OpenAI fine-tuning**: each line of `data/train-*.jsonl` is one "
            '`{"messages": [...]}` example (roles system, user, assistant, tool).\n\n```python\n'
            "from openai import OpenAI\n\nclient = OpenAI()\nfile = client.files.create(file="
            'open("data/train-00000-of-00001.jsonl", "rb"), purpose="fine-tune")\n```\n'
        ),
    }
    return "## Training with this export\n\n" + snippets[trainer]


# --------------------------------------------------------------------------- OpenAI


class NotOpenAI(Exception):
    """A conversation the OpenAI format cannot hold as it is."""


def openai_messages(turns: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """curate's turns as OpenAI chat messages: a ``tool_call`` turn (JSON with ``name`` and
    ``arguments``) becomes an assistant message with ``tool_calls``; the ``tool`` turn after it
    answers it by id. Raises :class:`NotOpenAI` for what cannot be mapped."""
    out: list[dict[str, Any]] = []
    pending: list[str] = []
    calls = 0
    for turn in turns:
        role, content = turn["role"], turn["content"]
        if role in ("system", "user", "assistant"):
            out.append({"role": role, "content": content})
        elif role == "tool_call":
            try:
                call = json.loads(content)
            except ValueError:
                raise NotOpenAI("a tool call that is not JSON") from None
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                raise NotOpenAI("a tool call without a function name")
            arguments = call.get("arguments", call.get("parameters", {}))
            calls += 1
            call_id = f"call_{calls}"
            pending.append(call_id)
            out.append(
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {
                                "name": call["name"],
                                "arguments": arguments
                                if isinstance(arguments, str)
                                else json.dumps(arguments, ensure_ascii=False, sort_keys=True),
                            },
                        }
                    ],
                }
            )
        elif role == "tool":
            if not pending:
                raise NotOpenAI("a tool result without a tool call before it")
            out.append({"role": "tool", "tool_call_id": pending.pop(0), "content": content})
        else:
            raise NotOpenAI(f"role {role!r}")
    if not any(m["role"] == "assistant" for m in out):
        raise NotOpenAI("no assistant turn")
    return out


def write_openai(
    data_files: list[Path], partial: Path
) -> tuple[list[str], DataStats, Counter[str]]:
    """One OpenAI JSONL shard per run data file; what could not be written, by why."""
    from curate.run.export.writers import CHAT_SCHEMA, _chat_columns, _shard_name

    (partial / "data").mkdir()
    stats = DataStats(0, Counter(), Counter(), CHAT_SCHEMA)
    left_out: Counter[str] = Counter()
    names = []
    for index, source in enumerate(data_files):
        name = f"data/{_shard_name(index, len(data_files), 'jsonl')}"
        with (partial / name).open("w", encoding="utf-8", newline="\n") as out:
            for batch in record_batches(source, _chat_columns(source)):
                written = []
                for row in batch.to_pylist():
                    try:
                        messages = openai_messages(chat_messages(row))
                    except NotOpenAI as why:
                        left_out[str(why)] += 1
                        continue
                    written.append(row)
                    line = json.dumps(
                        {"messages": messages}, ensure_ascii=False, separators=(",", ":")
                    )
                    out.write(line + "\n")
                stats.rows += len(written)
                stats.by_source.update(r.get("source") or "" for r in written)
        names.append(name)
    if stats.rows == 0:
        raise ExportError("no record could be written in OpenAI's format: " + ", ".join(left_out))
    return names, stats, left_out


__all__ = [
    "TARGETS",
    "TRAINERS",
    "NotOpenAI",
    "Target",
    "extra_files",
    "how_to_load",
    "openai_messages",
    "target",
    "write_openai",
]
