"""Super-NaturalInstructions task JSON: ``Definition`` + ``Instances`` (list outputs).

Instances become records (first output is the target, the rest go to ``meta.alt_outputs``).
Positive examples become records too, marked ``meta.niv2_part = "positive_example"`` so few-shot
expansion can use them. Negative examples are wrong answers by design: they are accounted for as
rejects with ``reason = "niv2_negative_example"``.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from curate.ingest.builder import RowBuilder
from curate.ingest.files import strip_compression
from curate.ingest.format import Format
from curate.ingest.parse import Item, ReadContext, RowError


def _scalar_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _outputs(value: Any) -> list[str]:
    """Outputs as text; numeric answers (task1759_gsm has ``[18]``) are written as text."""
    single = _scalar_text(value)
    if single is not None:
        return [single]
    if isinstance(value, list) and value:
        texts = [_scalar_text(v) for v in value]
        if all(t is not None for t in texts):
            return [t for t in texts if t is not None]
    raise RowError("wrong_type", "'output' should be a string or a non-empty list of strings")


class NIv2(Format):
    name = "niv2"
    kind = "document"
    detect_order = 90

    def matches(self, keys: set[str]) -> bool:
        return "Definition" in keys and "Instances" in keys

    def read_document(self, doc: dict[str, Any], ctx: ReadContext, builder: RowBuilder) -> None:
        doc = dict(doc)
        definition = doc.pop("Definition", None)
        if isinstance(definition, list):
            definition = "\n".join(str(d) for d in definition)
        if not isinstance(definition, str) or not definition.strip():
            raise RowError("missing_field", "task has no 'Definition'")
        instances = doc.pop("Instances", None) or []
        positives = doc.pop("Positive Examples", None) or []
        negatives = doc.pop("Negative Examples", None) or []
        task = PurePath(strip_compression(PurePath(ctx.file).name)).stem
        categories = doc.get("Categories")
        category = categories[0] if isinstance(categories, list) and categories else None
        task_meta = {k.lower().replace(" ", "_"): v for k, v in doc.items()}
        row = 0
        for part, rows in (
            ("positive_example", positives),
            ("instance", instances),
            ("negative_example", negatives),
        ):
            for index, raw in enumerate(rows):
                item = Item(row, None, raw)
                row += 1
                if part == "negative_example":
                    builder.reject(
                        item,
                        RowError(
                            "niv2_negative_example",
                            f"negative example {index} of {task} (a wrong answer by design)",
                        ),
                    )
                    continue
                try:
                    if not isinstance(raw, dict):
                        raise RowError("wrong_type", f"{part} {index} is not an object")
                    entry = dict(raw)
                    input_text = entry.pop("input", "")
                    if not isinstance(input_text, str):
                        raise RowError("wrong_type", f"{part} {index}: 'input' should be text")
                    outputs = _outputs(entry.pop("output", None))
                    meta: dict[str, Any] = {"niv2_part": part, "niv2_index": index, **task_meta}
                    if len(outputs) > 1:
                        meta["alt_outputs"] = outputs[1:]
                    meta.update({f"instance_{k}": v for k, v in entry.items()})
                    builder.add(
                        item.row,
                        instruction=definition,
                        input=input_text,
                        output=outputs[0],
                        task=task,
                        category=category,
                        task_source="niv2",
                        meta=meta,
                    )
                except RowError as error:
                    builder.reject(item, error)
