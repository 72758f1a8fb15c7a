"""Counting a run: the funnel (ingest, then every stage) and, per source, which input rows
reached the output or only the rejects. The report, the export card and the manifest use it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from curate.run.manifest import Manifest


def source_accounting(run_dir: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Per source, ingested rows that reached the output, and rows that only reached the rejects.

    Expanded rows share ``parent_id``: an ingested row counts once however many rows it became.
    Computed in DuckDB over the written files, so memory stays bounded.
    """
    data = (run_dir / "data" / "*.parquet").as_posix()
    rejects = (run_dir / "rejects" / "*.parquet").as_posix()
    import duckdb  # here, not at import: a run that is up to date never needs it

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
    manifest: Manifest, ingest_reasons: Mapping[str, int] | None = None
) -> list[dict[str, Any]]:
    """Ingest, then every stage of a run's manifest: index, step, kind, rows in/out, the drops by
    reason (most frequent first) and seconds.

    ``ingest_reasons`` (counted from the rejects) names why rows were rejected at ingest; without
    it the count comes from the manifest's per-file ``rows_rejected_at_ingest``.
    """
    if ingest_reasons is None:
        rejected = sum(f.rows_rejected_at_ingest for s in manifest.sources for f in s.files)
        ingest_reasons = {"rejected_at_ingest": rejected} if rejected else {}
    read = manifest.rows.read
    steps: list[dict[str, Any]] = [
        {
            "index": "",
            "step": "ingest",
            "kind": "read",
            "rows_in": read,
            "rows_out": read - sum(ingest_reasons.values()),
            "dropped": by_count(ingest_reasons),
            "seconds": manifest.ingest.get("seconds"),
        }
    ]
    for stage in manifest.stages:
        steps.append(
            {
                "index": stage.index,
                "step": stage.name,
                "kind": stage.kind,
                "rows_in": stage.rows_in,
                "rows_out": stage.rows_out,
                "dropped": by_count(stage.dropped),
                "seconds": stage.seconds,
            }
        )
    return steps
