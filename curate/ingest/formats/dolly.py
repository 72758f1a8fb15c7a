"""Dolly: ``instruction``, ``context``, ``response``, ``category`` (also the ``input``/``output``
spelling of translated Dolly releases such as dolly-15k-ja)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from curate.ingest.format import Column, Format


class Dolly(Format):
    name = "dolly"
    detect_order = 60
    columns: ClassVar[Mapping[str, Column]] = {
        "instruction": Column(("instruction",), required=True),
        "input": Column(("context", "input")),
        "output": Column(("response", "output"), required=True),
        "category": Column(("category",)),
    }

    def matches(self, keys: set[str]) -> bool:
        if "instruction" not in keys:
            return False
        native = "context" in keys and "response" in keys
        translated = "category" in keys and "input" in keys and "output" in keys
        return native or translated
