"""Helpers shared by several format families."""

from __future__ import annotations

import json
from typing import Any

from curate.ingest.parse import ReadContext, RowError, take_text

# Explicit role names (ShareGPT, LLaMA-Factory, FastChat, glaive tool-call data, OpenAI).
ROLE_MAP: dict[str, str] = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
    "system": "system",
    "function_call": "tool_call",
    "tool_call": "tool_call",
    "observation": "tool",
    "tool": "tool",
    "function": "tool",
    "ipython": "tool",
}


def map_role(raw: Any) -> str:
    if not isinstance(raw, str):
        raise RowError("wrong_type", f"message role should be text, got {type(raw).__name__}")
    role = ROLE_MAP.get(raw.strip().lower())
    if role is None:
        raise RowError(
            "unknown_role", f"unknown message role {raw!r} (known: {', '.join(sorted(ROLE_MAP))})"
        )
    return role


def take_outputs(
    obj: dict[str, Any], ctx: ReadContext, meta_key: str = "ranked_outputs"
) -> tuple[str, list[str] | None]:
    """An output column that may hold a ranked list (oasst ``rm``): first is the output."""
    for name in ctx.columns("output", "output", "response"):
        if name in obj and isinstance(obj[name], list):
            values = obj.pop(name)
            if not values or not all(isinstance(v, str) for v in values):
                raise RowError(
                    "wrong_type", f"field {name!r} is a list but not a non-empty list of strings"
                )
            return values[0], values[1:] or None
    return take_text(
        obj, ctx.columns("output", "output", "response"), required=True, what="output"
    ), None


def final_exchange(messages: list[dict[str, str]]) -> tuple[str, str]:
    """(instruction, output) = the last assistant turn and the user turn before it."""
    last_assistant = None
    for index in range(len(messages) - 1, -1, -1):
        if messages[index]["role"] == "assistant":
            last_assistant = index
            break
    if last_assistant is None:
        raise RowError("no_assistant_turn", "conversation has no assistant turn")
    for index in range(last_assistant - 1, -1, -1):
        if messages[index]["role"] == "user":
            return messages[index]["content"], messages[last_assistant]["content"]
    raise RowError("no_user_turn", "conversation has no user turn before the assistant reply")


def to_json_text(value: Any) -> str:
    return (
        value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    )
