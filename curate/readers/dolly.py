"""Dolly: ``instruction``, ``context``, ``response``, ``category`` (also the ``input``/``output``
spelling of translated Dolly releases such as dolly-15k-ja)."""

from __future__ import annotations

import re
from typing import Any

from curate.readers.base import ReadContext, take_optional_text, take_text

NAME = "dolly"
KIND = "records"
# Columnar fast path: schema field -> (source columns to try, required).
COLUMNS = {
    "instruction": (("instruction",), True),
    "input": (("context", "input"), False),
    "output": (("response", "output"), True),
    "category": (("category",), False),
}

_CITATION = re.compile(r"\[\d+\]")


def matches(keys: set[str]) -> bool:
    if "instruction" not in keys:
        return False
    native = "context" in keys and "response" in keys
    translated = "category" in keys and "input" in keys and "output" in keys
    return native or translated


def convert(obj: dict[str, Any], ctx: ReadContext) -> dict[str, Any]:
    instruction = take_text(
        obj, ctx.columns("instruction", "instruction"), required=True, what="instruction"
    )
    context = take_text(
        obj, ctx.columns("input", "context", "input"), required=False, what="context"
    )
    response = take_text(
        obj, ctx.columns("output", "response", "output"), required=True, what="response"
    )
    category = take_optional_text(obj, ctx.columns("category", "category"))
    return {
        "instruction": instruction,
        "input": context,
        "output": response,
        "category": category,
        "meta": obj,
    }
