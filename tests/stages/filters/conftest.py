from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from curate.records import RECORD_SCHEMA

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def make_table(rows: list[dict[str, Any]]) -> pa.Table:
    """A record table from partial rows (missing text fields are empty strings)."""
    full = []
    for index, row in enumerate(rows):
        base: dict[str, Any] = dict.fromkeys(RECORD_SCHEMA.names)
        base.update(
            id=f"r{index}",
            instruction="",
            input="",
            output="",
            source="test",
            source_format="alpaca",
            source_file="test.json",
            source_row=index,
            meta="{}",
        )
        base.update(row)
        full.append(base)
    return pa.Table.from_pylist(full, schema=RECORD_SCHEMA)
