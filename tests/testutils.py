"""Paths shared by tests (importable as ``testutils``: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from curate.ingest.builder import RowBuilder
from curate.ingest.parse import ReadContext

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data_samples"
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()

needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason="../shared/data is not present"
)


def records_table(rows: Iterable[dict[str, Any]], source: str = "s", **defaults: Any) -> pa.Table:
    """A record table built the way the readers build one (content ids included)."""
    builder = RowBuilder(ReadContext(source, f"{source}.jsonl"))
    for index, row in enumerate(rows):
        builder.add(index, **{**defaults, **row})
    return builder.records()
