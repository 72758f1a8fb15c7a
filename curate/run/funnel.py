"""Counting a run: which input rows reached the output or only the rejects, per source."""

from __future__ import annotations

from pathlib import Path

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
