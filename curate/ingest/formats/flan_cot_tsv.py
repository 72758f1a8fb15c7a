"""Raw FLAN chain-of-thought TSV: ``question<TAB>answer<TAB>rationale``, no header.

The task name comes from the file name (``gsm8k_train.tsv`` -> ``cot_gsm8k``), as FLAN names them.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from curate.ingest.files import strip_compression
from curate.ingest.format import Format
from curate.ingest.parse import ReadContext, RowError


def task_name(file: str) -> str:
    stem = PurePath(strip_compression(PurePath(file).name)).stem
    for suffix in ("_train", "_dev", "_validation", "_test"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem if stem.startswith("cot_") else f"cot_{stem}"


class FlanCotTsv(Format):
    name = "flan_cot_tsv"
    kind = "tsv"
    detect_order = 91

    def convert_fields(self, fields: list[str], ctx: ReadContext) -> dict[str, Any]:
        if len(fields) != 3:
            raise RowError(
                "parse_error",
                f"expected 3 tab-separated columns (question, answer, rationale), got {len(fields)}",
            )
        # FLAN's TSVs write line breaks inside a field as the two characters backslash-n.
        question, answer, rationale = (f.replace("\\n", "\n") for f in fields)
        if not question.strip():
            raise RowError("missing_field", "empty question column")
        return {
            "instruction": question,
            "output": answer,
            "rationale": rationale,
            "task": task_name(ctx.file),
            "task_source": "flan_cot",
            "meta": None,
        }
