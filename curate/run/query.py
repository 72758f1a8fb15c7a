"""DuckDB over a run directory: views ``records``, ``rejects``, ``stages`` and ``pii``.

``curate query`` is read-only and contained by default: one SELECT (or EXPLAIN) statement, on a
connection that can read only the run's own files, install or load no extension, and change no
setting, stopped after a time limit. ``--unsafe`` gives plain DuckDB.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa

from curate.errors import CurateError
from curate.run.layout import RunDir
from curate.run.manifest import Manifest
from curate.util.storage import ObjectPath


def load_manifest(run_dir: Path | ObjectPath) -> Manifest:
    return RunDir(run_dir).manifest()


def stages_table(manifest: Manifest) -> pa.Table:
    rows = [
        {
            "stage_index": s.index,
            "stage": s.name,
            "kind": s.kind,
            "rows_in": s.rows_in,
            "rows_out": s.rows_out,
            "rows_dropped": sum(s.dropped.values()),
            "dropped_by_reason": json.dumps(s.dropped, sort_keys=True),
            "seconds": s.seconds,
        }
        for s in manifest.stages
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


def create_run_views(
    con: duckdb.DuckDBPyConnection, run_dir: Path | ObjectPath, prefix: str = ""
) -> None:
    """Views ``{prefix}records`` (data/) and ``{prefix}rejects`` over a run's parquet files.

    A run on object storage is read through pyarrow datasets registered on the connection (its
    S3 filesystem), not DuckDB's httpfs extension, which would be downloaded at run time."""
    if isinstance(run_dir, ObjectPath):
        import pyarrow.dataset as pads

        for view, folder in (("records", "data"), ("rejects", "rejects")):
            keys = [path.key for path in (run_dir / folder).glob("*.parquet")]
            dataset = pads.dataset(keys, filesystem=run_dir.fs, format="parquet")
            con.register(f"{prefix}{view}_dataset", dataset)
            con.execute(f"CREATE VIEW {prefix}{view} AS SELECT * FROM {prefix}{view}_dataset")
        return
    for view, folder in (("records", "data"), ("rejects", "rejects")):
        glob = (run_dir / folder / "*.parquet").as_posix().replace("'", "''")
        con.execute(
            f"CREATE VIEW {prefix}{view} AS SELECT * FROM "
            f"read_parquet('{glob}', union_by_name = true)"
        )


def view_columns(con: duckdb.DuckDBPyConnection, view: str) -> set[str]:
    return {str(row[0]) for row in con.execute(f"DESCRIBE {view}").fetchall()}


def stage_order(manifest: Manifest) -> dict[str, int]:
    """Stage name -> the order it ran in (``ingest`` first), as rejects name their stage."""
    return {"ingest": -1} | {s.name: s.index for s in manifest.stages}


def connect(run_dir: Path | ObjectPath) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with views over the run's parquet files."""
    manifest = load_manifest(run_dir)
    con = duckdb.connect()
    create_run_views(con, run_dir)
    stages = stages_table(manifest)
    con.register("stages_arrow", stages)
    con.execute("CREATE VIEW stages AS SELECT * FROM stages_arrow")
    create_pii_view(con)
    return con


_SPAN_COLUMNS = 'type, field, turn, start, "end", action, hash'
_SPANS_JSON = (
    '{"spans": [{"type": "VARCHAR", "field": "VARCHAR", "turn": "INTEGER", "start": "INTEGER", '
    '"end": "INTEGER", "action": "VARCHAR", "hash": "VARCHAR"}]}'
)


def create_pii_view(con: duckdb.DuckDBPyConnection, prefix: str = "") -> None:
    """View ``pii``: one row per span the ``pii`` stage found (kept rows from ``pii_spans``,
    dropped rows from their reject detail): where, what type, which action, the keyed hash;
    never the value."""
    parts = []
    if "pii_spans" in view_columns(con, f"{prefix}records"):
        parts.append(
            f"SELECT id, source, 'kept' AS outcome, {_SPAN_COLUMNS} FROM "
            f"(SELECT id, source, UNNEST(pii_spans, recursive := true) FROM {prefix}records)"
        )
    parts.append(
        f"SELECT id, source, 'rejected' AS outcome, {_SPAN_COLUMNS} FROM "
        "(SELECT id, source, UNNEST(json_transform(detail, '" + _SPANS_JSON + "').spans, "
        f"recursive := true) FROM {prefix}rejects WHERE stage LIKE 'pii_v%' "
        "AND reason LIKE 'pii_%')"
    )
    con.execute(f"CREATE VIEW {prefix}pii AS " + " UNION ALL ".join(parts))


# Statements ``curate query`` runs by default: reading only.
READ_ONLY_STATEMENTS = ("SELECT", "EXPLAIN")
DEFAULT_TIMEOUT_SECONDS = 300.0


def contain(con: duckdb.DuckDBPyConnection, run_dir: Path | ObjectPath) -> None:
    """Lock a connection to reading this run: no other files, no extension installs or loads,
    and no setting can be changed back (``lock_configuration``). A run on object storage is read
    through the datasets registered on the connection: no file at all is allowed."""
    if isinstance(run_dir, Path):
        allowed = run_dir.resolve().as_posix().rstrip("/") + "/"
        con.execute("SET allowed_directories = [$1]", [allowed])
    for statement in (
        "SET enable_external_access = false",
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
        "SET lock_configuration = true",
    ):
        con.execute(statement)


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """One statement that only reads; anything else (COPY, ATTACH, EXPORT, INSTALL, CREATE,
    several statements) is refused before it runs."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise CurateError(f"query failed: {exc}") from None
    if len(statements) != 1:
        raise CurateError(
            f"curate query runs one statement, got {len(statements)}; "
            "(--unsafe lifts every restriction)"
        )
    kind = statements[0].type.name
    if kind not in READ_ONLY_STATEMENTS:
        raise CurateError(
            f"curate query is read-only: {kind} statements are refused (only SELECT, WITH ... "
            "SELECT and EXPLAIN run). Pass --unsafe for full DuckDB, at your own risk: it can "
            "write files, change the run and read any file"
        )


def run_query(
    run_dir: Path | ObjectPath,
    sql: str,
    *,
    unsafe: bool = False,
    timeout: float | None = DEFAULT_TIMEOUT_SECONDS,
) -> pa.Table:
    """Run SQL over a run's views. By default read-only and contained (see :func:`contain`,
    :func:`check_read_only`) and stopped after ``timeout`` seconds; ``unsafe`` is plain DuckDB."""
    con = connect(run_dir)
    timer: threading.Timer | None = None
    timed_out = threading.Event()
    try:
        if not unsafe:
            contain(con, run_dir)
            check_read_only(con, sql)
        if timeout is not None:

            def stop() -> None:
                timed_out.set()
                con.interrupt()

            timer = threading.Timer(timeout, stop)
            timer.daemon = True
            timer.start()
        relation = con.sql(sql)
        if relation is None:  # a statement without a result (e.g. SET)
            return pa.table({})
        # duckdb 2 renamed arrow() -> to_arrow_table().
        to_arrow = getattr(relation, "to_arrow_table", None) or relation.arrow
        table: pa.Table = to_arrow()
        return table
    except duckdb.Error as exc:
        if timed_out.is_set():
            raise CurateError(
                f"query stopped after {timeout:g} s (--timeout SECONDS to allow longer)"
            ) from None
        raise CurateError(f"query failed: {exc}") from None
    finally:
        if timer is not None:
            timer.cancel()
        con.close()


View = Literal["records", "rejects"]


def run_columns(con: duckdb.DuckDBPyConnection) -> dict[View, set[str]]:
    """The columns of the ``records`` and ``rejects`` views."""
    return {"records": view_columns(con, "records"), "rejects": view_columns(con, "rejects")}
