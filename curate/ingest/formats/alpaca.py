"""Alpaca: ``instruction``, ``input``, ``output`` (GPTeacher-style ``response`` accepted as output)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from curate.ingest.convert import take_outputs
from curate.ingest.format import Column, Format
from curate.ingest.parse import ReadContext


class Alpaca(Format):
    name = "alpaca"
    detect_order = 70
    columns: ClassVar[Mapping[str, Column]] = {
        "instruction": Column(("instruction",), required=True),
        "input": Column(("input",)),
        "output": Column(("output", "response"), required=True),
        "category": Column(("category",)),
    }

    def matches(self, keys: set[str]) -> bool:
        return "instruction" in keys and bool(keys & {"output", "response"})

    def take(self, obj: dict[str, Any], ctx: ReadContext, field: str) -> str | None:
        if field != "output":
            return super().take(obj, ctx, field)
        # oasst-style ranked outputs: a list whose first item is the output.
        output, others = take_outputs(obj, ctx)
        if others:
            obj["ranked_outputs"] = others
        return output
