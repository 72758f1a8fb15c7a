"""Alpaca: ``instruction``, ``input``, ``output`` (GPTeacher-style ``response`` accepted as output)."""

from __future__ import annotations

from typing import Any

from curate.readers.base import ReadContext, take_optional_text, take_text
from curate.readers.common import take_outputs

NAME = "alpaca"
KIND = "records"
# Columnar fast path: schema field -> (source columns to try, required).
COLUMNS = {
    "instruction": (("instruction",), True),
    "input": (("input",), False),
    "output": (("output", "response"), True),
    "category": (("category",), False),
}


def matches(keys: set[str]) -> bool:
    return "instruction" in keys and bool(keys & {"output", "response"})


def convert(obj: dict[str, Any], ctx: ReadContext) -> dict[str, Any]:
    instruction = take_text(
        obj, ctx.columns("instruction", "instruction"), required=True, what="instruction"
    )
    input_text = take_text(obj, ctx.columns("input", "input"), required=False, what="input")
    output, others = take_outputs(obj, ctx)
    if others:
        obj["ranked_outputs"] = others
    category = take_optional_text(obj, ctx.columns("category", "category"))
    return {
        "instruction": instruction,
        "input": input_text,
        "output": output,
        "category": category,
        "meta": obj,
    }
