"""FLAN Collection exports: ``inputs``, ``targets``, ``task_source``, ``task_name``, ``template_type``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from curate.ingest.format import Column, Format


class Flan(Format):
    name = "flan"
    detect_order = 50
    columns: ClassVar[Mapping[str, Column]] = {
        "instruction": Column(("inputs",), required=True),
        "output": Column(("targets",), required=True),
        "task": Column(("task_name", "task")),
        "task_source": Column(("task_source",)),
        "template_type": Column(("template_type",)),
    }

    def matches(self, keys: set[str]) -> bool:
        return "inputs" in keys and "targets" in keys
