"""Alpaca with ``history`` = [[user, assistant], ...] before the final turn (LIMA, oasst in LLaMA-Factory)."""

from __future__ import annotations

from typing import Any

from curate.ingest.convert import take_outputs
from curate.ingest.format import Format
from curate.ingest.parse import ReadContext, RowError, take_text


class AlpacaHistory(Format):
    name = "alpaca_history"
    detect_order = 30

    def matches(self, keys: set[str]) -> bool:
        return "instruction" in keys and "history" in keys

    def convert(self, obj: dict[str, Any], ctx: ReadContext) -> dict[str, Any]:
        instruction = take_text(
            obj, ctx.columns("instruction", "instruction"), required=True, what="instruction"
        )
        input_text = take_text(obj, ctx.columns("input", "input"), required=False, what="input")
        output, others = take_outputs(obj, ctx)
        if others:
            obj["ranked_outputs"] = others
        history = obj.pop("history", None) or []
        messages: list[dict[str, str]] = []
        system = obj.pop("system", None)
        if isinstance(system, str) and system.strip():
            messages.append({"role": "system", "content": system})
        if not isinstance(history, list):
            raise RowError("wrong_type", "'history' should be a list of [user, assistant] pairs")
        for index, pair in enumerate(history):
            if not (
                isinstance(pair, list) and len(pair) == 2 and all(isinstance(t, str) for t in pair)
            ):
                raise RowError(
                    "wrong_type", f"history[{index}] should be a [user, assistant] pair of strings"
                )
            messages.append({"role": "user", "content": pair[0]})
            messages.append({"role": "assistant", "content": pair[1]})
        prompt = f"{instruction}\n\n{input_text}" if input_text else instruction
        messages.append({"role": "user", "content": prompt})
        messages.append({"role": "assistant", "content": output})
        return {
            "instruction": instruction,
            "input": input_text,
            "output": output,
            "messages": messages if history or len(messages) > 2 else None,
            "meta": obj,
        }
