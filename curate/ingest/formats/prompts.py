"""Prompt / question sets: ``question`` | ``text`` | ``prompt`` | ``turns`` with an optional ``answer``.

Covers benchmark-style files (GSM8K, Vicuna / MT-bench questions). A record without an answer has an
empty output; the quality stage decides what to do with it.
"""

from __future__ import annotations

from typing import Any

from curate.ingest.format import Format
from curate.ingest.parse import ReadContext, RowError, take_optional_text, take_text

_PROMPT_COLUMNS = ("question", "prompt", "text", "query")


class Prompts(Format):
    name = "prompts"
    detect_order = 80

    def matches(self, keys: set[str]) -> bool:
        return bool(keys & {*_PROMPT_COLUMNS, "turns"})

    def convert(self, obj: dict[str, Any], ctx: ReadContext) -> dict[str, Any]:
        turns = obj.pop("turns", None)
        if turns is not None:
            if (
                not isinstance(turns, list)
                or not turns
                or not all(isinstance(t, str) for t in turns)
            ):
                raise RowError("wrong_type", "'turns' should be a non-empty list of strings")
            instruction = turns[0]
            if len(turns) > 1:
                obj["follow_up_turns"] = turns[1:]
        else:
            instruction = take_text(
                obj, ctx.columns("instruction", *_PROMPT_COLUMNS), required=True, what="question"
            )
        output = take_text(
            obj,
            ctx.columns("output", "answer", "response", "output"),
            required=False,
            what="answer",
        )
        category = take_optional_text(obj, ctx.columns("category", "category"))
        return {"instruction": instruction, "output": output, "category": category, "meta": obj}
