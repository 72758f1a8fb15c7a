"""ShareGPT: ``conversations`` = [{from, value}], with explicit role mapping (tool calls included)."""

from __future__ import annotations

from typing import Any

from curate.ingest.convert import final_exchange, map_role, to_json_text
from curate.ingest.format import Format
from curate.ingest.parse import ReadContext, RowError


class ShareGPT(Format):
    name = "sharegpt"
    detect_order = 10

    def matches(self, keys: set[str]) -> bool:
        return "conversations" in keys

    def convert(self, obj: dict[str, Any], ctx: ReadContext) -> dict[str, Any]:
        column = ctx.columns("messages", "conversations")[0]
        turns = obj.pop(column, None)
        if not isinstance(turns, list) or not turns:
            raise RowError("missing_field", f"{column!r} must be a non-empty list of turns")
        messages: list[dict[str, str]] = []
        system = obj.pop("system", None)
        if isinstance(system, str) and system.strip():
            messages.append({"role": "system", "content": system})
        extras: dict[str, Any] = {}
        for index, turn in enumerate(turns):
            if not isinstance(turn, dict):
                raise RowError("wrong_type", f"turn {index} is not an object")
            turn = dict(turn)
            role = map_role(turn.pop("from", turn.pop("role", None)))
            value = turn.pop("value", turn.pop("content", None))
            if value is None:
                raise RowError("missing_field", f"turn {index} has no 'value'")
            messages.append({"role": role, "content": to_json_text(value)})
            if turn:
                extras[str(index)] = turn
        if extras:
            obj["turn_extra"] = extras
        instruction, output = final_exchange(messages)
        return {"instruction": instruction, "output": output, "messages": messages, "meta": obj}
