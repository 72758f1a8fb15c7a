"""The real datasets the benches read (``../shared/data``), normalized as a run would read them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO / ".." / "shared" / "data").resolve()
PATHS = {
    "alpaca": DATA / "alpaca" / "alpaca_data.json.gz",
    "dolly": DATA / "dolly" / "databricks-dolly-15k.jsonl.gz",
    "lima": DATA / "lima" / "lima.json.gz",
    "oasst_zh": DATA / "oasst" / "oaast_sft_zh.json.gz",
    "sharegpt": DATA / "sharegpt" / "fastchat_dummy_conversation.json",
}


def normalized(name: str, limit: int | None = None) -> Any:
    """One dataset's records after ``normalize`` (its first ``limit`` rows when given)."""
    from curate.ingest import read_file
    from curate.stages.normalize import Normalize

    records = read_file(PATHS[name], source=name, with_ids=False).records
    if limit:
        records = records.slice(0, limit)
    return Normalize().run(records).kept


def concatenated(names: list[str], limit: int | None = None) -> Any:
    """Several datasets' normalized records, one table, in the order given."""
    import pyarrow as pa

    return pa.concat_tables([normalized(name, limit) for name in names])
