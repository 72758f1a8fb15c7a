"""FLAN Collection exports: ``inputs``, ``targets``, ``task_source``, ``task_name``, ``template_type``."""

from __future__ import annotations

from typing import Any

from curate.readers.base import ReadContext, take_optional_text, take_text

NAME = "flan"
KIND = "records"
# Columnar fast path: schema field -> (source columns to try, required).
COLUMNS = {
    "instruction": (("inputs",), True),
    "output": (("targets",), True),
    "task": (("task_name", "task"), False),
    "task_source": (("task_source",), False),
    "template_type": (("template_type",), False),
}


def matches(keys: set[str]) -> bool:
    return "inputs" in keys and "targets" in keys


def convert(obj: dict[str, Any], ctx: ReadContext) -> dict[str, Any]:
    return {
        "instruction": take_text(
            obj, ctx.columns("instruction", "inputs"), required=True, what="inputs"
        ),
        "output": take_text(obj, ctx.columns("output", "targets"), required=True, what="targets"),
        "task": take_optional_text(obj, ctx.columns("task", "task_name", "task")),
        "task_source": take_optional_text(obj, ctx.columns("task_source", "task_source")),
        "template_type": take_optional_text(obj, ("template_type",)),
        "meta": obj,
    }
