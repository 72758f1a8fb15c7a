"""Counting a run: the funnel (ingest, then every stage) and, per source, which input rows
reached the output or only the rejects. The report, the export card and the manifest use it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb


def source_accounting(run_dir: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Per source, ingested rows that reached the output, and rows that only reached the rejects.

    Expanded rows share ``parent_id``: an ingested row counts once however many rows it became.
    Computed in DuckDB over the written files, so memory stays bounded.
    """
    data = (run_dir / "data" / "*.parquet").as_posix()
    rejects = (run_dir / "rejects" / "*.parquet").as_posix()
    con = duckdb.connect()
    try:

        def lineage(glob: str) -> str:
            return (
                f"SELECT DISTINCT source, source_file, source_row, coalesce(parent_id, id) AS lineage "
                f"FROM read_parquet('{glob}', union_by_name = true)"
            )

        kept = dict(
            con.execute(f"SELECT source, count(*) FROM ({lineage(data)}) GROUP BY 1").fetchall()
        )
        dropped = dict(
            con.execute(
                f"SELECT source, count(*) FROM ({lineage(rejects)} EXCEPT {lineage(data)}) GROUP BY 1"
            ).fetchall()
        )
    finally:
        con.close()
    return {str(k): int(v) for k, v in kept.items()}, {str(k): int(v) for k, v in dropped.items()}


def by_count(counts: Mapping[str, int]) -> dict[str, int]:
    """Reasons, most frequent first (ties by name)."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def funnel_steps(
    manifest: Mapping[str, Any], ingest_reasons: Mapping[str, int] | None = None
) -> list[dict[str, Any]]:
    """Ingest, then every stage of a run's manifest: index, step, kind, rows in/out, the drops by
    reason (most frequent first) and seconds.

    ``ingest_reasons`` (counted from the rejects) names why rows were rejected at ingest; without
    it the count comes from the manifest's per-file ``rows_rejected_at_ingest``.
    """
    steps: list[dict[str, Any]] = []
    read = manifest.get("rows", {}).get("read")
    if read is not None:
        if ingest_reasons is None:
            rejected = sum(
                f.get("rows_rejected_at_ingest", 0)
                for s in manifest.get("sources", [])
                for f in s.get("files", [])
            )
            ingest_reasons = {"rejected_at_ingest": rejected} if rejected else {}
        read = int(read)
        steps.append(
            {
                "index": "",
                "step": "ingest",
                "kind": "read",
                "rows_in": read,
                "rows_out": read - sum(ingest_reasons.values()),
                "dropped": by_count(ingest_reasons),
                "seconds": manifest.get("ingest", {}).get("seconds"),
            }
        )
    for stage in manifest.get("stages", []):
        steps.append(
            {
                "index": stage.get("index", ""),
                "step": stage.get("name", stage.get("key", "")),
                "kind": stage.get("kind", ""),
                "rows_in": int(stage.get("rows_in", 0)),
                "rows_out": int(stage.get("rows_out", 0)),
                "dropped": by_count(stage.get("dropped", {})),
                "seconds": stage.get("seconds"),
            }
        )
    return steps
