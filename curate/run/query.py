"""DuckDB over a run directory: views ``records``, ``rejects`` and ``stages``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa

from curate.errors import CurateError
from curate.run.layout import RunDir


def load_manifest(run_dir: Path) -> dict[str, Any]:
    return RunDir(run_dir).load_manifest()


def stages_table(manifest: dict[str, Any]) -> pa.Table:
    rows = [
        {
            "stage_index": s["index"],
            "stage": s["name"],
            "kind": s["kind"],
            "rows_in": s["rows_in"],
            "rows_out": s["rows_out"],
            "rows_dropped": sum(s["dropped"].values()),
            "dropped_by_reason": json.dumps(s["dropped"], sort_keys=True),
            "seconds": s["seconds"],
        }
        for s in manifest.get("stages", [])
    ]
    schema = pa.schema(
        [
            ("stage_index", pa.int64()),
            ("stage", pa.string()),
            ("kind", pa.string()),
            ("rows_in", pa.int64()),
            ("rows_out", pa.int64()),
            ("rows_dropped", pa.int64()),
            ("dropped_by_reason", pa.string()),
            ("seconds", pa.float64()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def create_run_views(con: duckdb.DuckDBPyConnection, run_dir: Path, prefix: str = "") -> None:
    """Views ``{prefix}records`` (data/) and ``{prefix}rejects`` over a run's parquet files."""
    for view, folder in (("records", "data"), ("rejects", "rejects")):
        glob = (run_dir / folder / "*.parquet").as_posix().replace("'", "''")
        con.execute(
            f"CREATE VIEW {prefix}{view} AS SELECT * FROM "
            f"read_parquet('{glob}', union_by_name = true)"
        )


def view_columns(con: duckdb.DuckDBPyConnection, view: str) -> set[str]:
    return {str(row[0]) for row in con.execute(f"DESCRIBE {view}").fetchall()}


def stage_order(manifest: dict[str, Any]) -> dict[str, int]:
    """Stage name -> the order it ran in (``ingest`` first), as rejects name their stage."""
    return {"ingest": -1} | {str(s["name"]): int(s["index"]) for s in manifest.get("stages", [])}


def connect(run_dir: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with views over the run's parquet files."""
    manifest = load_manifest(run_dir)
    con = duckdb.connect()
    create_run_views(con, run_dir)
    stages = stages_table(manifest)
    con.register("stages_arrow", stages)
    con.execute("CREATE VIEW stages AS SELECT * FROM stages_arrow")
    return con


def run_query(run_dir: Path, sql: str) -> pa.Table:
    con = connect(run_dir)
    try:
        relation = con.sql(sql)
        if relation is None:  # a statement without a result (e.g. SET)
            return pa.table({})
        # duckdb 2 renamed arrow() -> to_arrow_table().
        to_arrow = getattr(relation, "to_arrow_table", None) or relation.arrow
        table: pa.Table = to_arrow()
        return table
    except duckdb.Error as exc:
        raise CurateError(f"query failed: {exc}") from None
    finally:
        con.close()


View = Literal["records", "rejects"]


def run_columns(con: duckdb.DuckDBPyConnection) -> dict[View, set[str]]:
    """The columns of the ``records`` and ``rejects`` views."""
    return {"records": view_columns(con, "records"), "rejects": view_columns(con, "rejects")}
