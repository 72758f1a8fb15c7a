"""OpenAI chat ``messages`` = [{role, content}]; content may be a list of typed parts."""

from __future__ import annotations

import json
from typing import Any

from curate.ingest.convert import final_exchange, map_role, to_json_text
from curate.ingest.format import Format
from curate.ingest.parse import ReadContext, RowError


def _content_text(content: Any, index: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type", "text") == "text":
                text = part.get("text", part.get("value"))
                if not isinstance(text, str):
                    raise RowError("wrong_type", f"message {index}: text part without text")
                texts.append(text)
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise RowError(
                    "unsupported_content",
                    f"message {index}: content part of type {kind!r} is not text",
                )
        return "".join(texts)
    raise RowError("wrong_type", f"message {index}: content should be text or a list of parts")


class Messages(Format):
    name = "messages"
    detect_order = 20

    def matches(self, keys: set[str]) -> bool:
        return "messages" in keys

    def convert(self, obj: dict[str, Any], ctx: ReadContext) -> dict[str, Any]:
        column = ctx.columns("messages", "messages")[0]
        raw = obj.pop(column, None)
        if not isinstance(raw, list) or not raw:
            raise RowError("missing_field", f"{column!r} must be a non-empty list of messages")
        messages: list[dict[str, str]] = []
        extras: dict[str, Any] = {}
        for index, message in enumerate(raw):
            if not isinstance(message, dict):
                raise RowError("wrong_type", f"message {index} is not an object")
            message = dict(message)
            role = map_role(message.pop("role", None))
            tool_calls = message.pop("tool_calls", None)
            text = _content_text(message.pop("content", None), index)
            if text or not tool_calls:
                messages.append({"role": role, "content": text})
            if tool_calls:
                messages.append({"role": "tool_call", "content": to_json_text(tool_calls)})
            if message:
                extras[str(index)] = message
        if extras:
            obj["message_extra"] = json.loads(json.dumps(extras, default=str))
        instruction, output = final_exchange(messages)
        return {"instruction": instruction, "output": output, "messages": messages, "meta": obj}
