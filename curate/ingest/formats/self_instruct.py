"""Self-Instruct seed tasks: ``instruction`` + ``instances`` = [{input, output}] (one record per instance)."""

from __future__ import annotations

from typing import Any

from curate.ingest.format import Format
from curate.ingest.parse import ReadContext, RowError, take_optional_text, take_text


class SelfInstruct(Format):
    name = "self_instruct"
    detect_order = 40
    multi = True  # one source row can give several records

    def matches(self, keys: set[str]) -> bool:
        return "instruction" in keys and "instances" in keys

    def convert_many(self, obj: dict[str, Any], ctx: ReadContext) -> list[dict[str, Any]]:
        instruction = take_text(
            obj, ctx.columns("instruction", "instruction"), required=True, what="instruction"
        )
        instances = obj.pop("instances", None)
        if not isinstance(instances, list) or not instances:
            raise RowError(
                "missing_field", "'instances' must be a non-empty list of {input, output}"
            )
        task = take_optional_text(obj, ctx.columns("task", "name"))
        records = []
        for index, instance in enumerate(instances):
            if not isinstance(instance, dict):
                raise RowError("wrong_type", f"instances[{index}] is not an object")
            instance = dict(instance)
            input_text = take_text(instance, ("input",), required=False, what="input")
            output = take_text(instance, ("output",), required=True, what="output")
            meta = dict(obj)
            meta["instance_index"] = index
            if instance:
                meta["instance_extra"] = instance
            records.append(
                {
                    "instruction": instruction,
                    "input": input_text,
                    "output": output,
                    "task": task,
                    "meta": meta,
                }
            )
        return records
