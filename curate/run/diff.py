"""Compare two runs per input row, for re-tuning thresholds (``curate diff RUN_A RUN_B``).

Ids are content hashes and template expansion gives rows new ids, so rows are matched by their
lineage key ``(source, source_file, source_row)``: one key per row read from the inputs. In a run,
an input row is **kept** when at least one output record derives from it, else **rejected** with
the stage and reason of its latest drop (the furthest it got: when every expansion of a row was
dropped, by different stages, the last stage decided), else **absent** (not in that run's inputs).
Everything is computed in DuckDB over both runs' parquet files; only summaries reach Python.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from curate.errors import CurateError
from curate.run.manifest import Manifest
from curate.run.query import create_run_views, load_manifest, stage_order

KEY = ("source", "source_file", "source_row")
OUT_FORMATS = {
    ".parquet": "(FORMAT parquet)",
    ".csv": "(FORMAT csv, HEADER)",
    ".jsonl": "(FORMAT json)",
}
SNIPPET_CHARS = 200  # instruction characters kept per input row (examples, --out)


@dataclass(frozen=True)
class Status:
    """What happened to an input row in one run."""

    status: str  # kept | rejected | absent
    stage: str | None = None
    reason: str | None = None

    @property
    def label(self) -> str:
        return f"rejected {self.stage}/{self.reason}" if self.status == "rejected" else self.status


@dataclass(frozen=True)
class DiffExample:
    source: str | None
    source_file: str | None
    source_row: int | None
    id_a: str | None
    id_b: str | None
    instruction: str | None  # a snippet, preferring the text before template expansion


@dataclass(frozen=True)
class Transition:
    before: Status
    after: Status
    count: int
    examples: list[DiffExample] = field(default_factory=list)

    @property
    def only_one_side(self) -> bool:
        return "absent" in (self.before.status, self.after.status)


@dataclass(frozen=True)
class RunTotals:
    run_dir: Path
    input_rows: int
    kept: int
    rejected: int
    records: int  # output records (expansion can make several per input row)
    reject_rows: int
    by_reason: dict[str, int]  # "stage/reason" -> rejected input rows, most first


@dataclass(frozen=True)
class RunDiff:
    a: RunTotals
    b: RunTotals
    transitions: list[Transition]  # status changes, most rows first; absent on one side included
    unchanged: int
    content_changed: int  # input rows present in both whose id differs
    only_a_by_source: dict[str, int]
    only_b_by_source: dict[str, int]
    warnings: list[str]
    out: Path | None = None
    out_rows: int = 0

    @property
    def changed(self) -> int:
        return sum(t.count for t in self.transitions)


def diff_runs(run_a: Path, run_b: Path, *, n: int = 5, out: Path | None = None) -> RunDiff:
    """Compare two run directories per input row; optionally write every row's diff to ``out``.

    ``out`` (``.parquet``, ``.csv`` or ``.jsonl``) gets one row per input row of either run:
    the lineage key, ``changed``, and per run the id, status, stage, reason, detail and number of
    output records, plus the start of the instruction (before template expansion where possible).
    """
    if out is not None and out.suffix.lower() not in OUT_FORMATS:
        raise CurateError(
            f"--out {out}: unknown format {out.suffix or '(no suffix)'!r}; "
            f"use one of {', '.join(OUT_FORMATS)}"
        )
    manifests = {"a": load_manifest(run_a), "b": load_manifest(run_b)}
    con = duckdb.connect()
    try:
        for side, run_dir in (("a", run_a), ("b", run_b)):
            _attach(con, side, run_dir, manifests[side])
        con.execute(DIFF_SQL)
        totals = {
            side: _totals(con, side, run_dir) for side, run_dir in (("a", run_a), ("b", run_b))
        }
        transitions = _transitions(con, n)
        unchanged = _scalar(con, "SELECT count(*) FROM diff WHERE NOT changed")
        content_changed = _scalar(
            con,
            "SELECT count(*) FROM diff WHERE status_a <> 'absent' AND status_b <> 'absent' "
            "AND id_a IS DISTINCT FROM id_b",
        )
        only = {
            side: dict(
                con.execute(
                    f"SELECT source, count(*) FROM diff WHERE status_{other} = 'absent' "
                    "GROUP BY 1 ORDER BY 2 DESC, 1"
                ).fetchall()
            )
            for side, other in (("a", "b"), ("b", "a"))
        }
        out_rows = 0
        if out is not None:
            out_rows = _write(con, out)
    except duckdb.Error as exc:
        raise CurateError(f"diff of {run_a} and {run_b} failed: {exc}") from None
    finally:
        con.close()
    return RunDiff(
        totals["a"],
        totals["b"],
        transitions,
        unchanged,
        content_changed,
        only["a"],
        only["b"],
        input_warnings(manifests["a"], manifests["b"]),
        out,
        out_rows,
    )


def input_warnings(a: Manifest, b: Manifest) -> list[str]:
    """Differences between the two runs' inputs (sources, files, sha256) and seeds."""
    warnings = []

    def files(manifest: Manifest) -> dict[str, dict[str, str]]:
        return {s.name: {f.path: str(f.sha256) for f in s.files} for s in manifest.sources}

    files_a, files_b = files(a), files(b)
    for name in sorted(files_a.keys() | files_b.keys()):
        if name not in files_b:
            warnings.append(f"source {name} is only in run A")
        elif name not in files_a:
            warnings.append(f"source {name} is only in run B")
        else:
            for path in sorted(files_a[name].keys() | files_b[name].keys()):
                sha_a, sha_b = files_a[name].get(path), files_b[name].get(path)
                if sha_a is None or sha_b is None:
                    warnings.append(
                        f"source {name}: {path} is only in run {'A' if sha_b is None else 'B'}"
                    )
                elif sha_a != sha_b:
                    warnings.append(
                        f"source {name}: {path} differs (sha256 {sha_a[:12]} vs {sha_b[:12]}); "
                        "the same row number may hold different content"
                    )
    if a.seed != b.seed:
        warnings.append(
            f"seeds differ ({a.seed} vs {b.seed}): template choice and mix sampling differ too"
        )
    return warnings


def _attach(con: duckdb.DuckDBPyConnection, side: str, run_dir: Path, manifest: Manifest) -> None:
    """Views ``{side}_records`` / ``{side}_rejects`` and the table ``{side}_status`` (per input row)."""
    create_run_views(con, run_dir, prefix=f"{side}_")
    # The order the run's stages ran in: a row's latest drop decides its reason.
    order = list(stage_order(manifest).items())
    con.execute(f"CREATE TABLE {side}_stage_order (stage VARCHAR, idx INTEGER)")
    con.executemany(f"INSERT INTO {side}_stage_order VALUES (?, ?)", order)
    con.execute(STATUS_SQL.format(side=side, snippet=SNIPPET_CHARS))


# Per input row of one run: kept (some output derives from it) or its latest drop.
# `expanded` says whether the instruction is a template's rendering (no unexpanded row was found).
STATUS_SQL = """
CREATE TABLE {side}_status AS
WITH kept AS (
    SELECT source, source_file, source_row,
           arg_min(coalesce(parent_id, id), parent_id IS NOT NULL) AS id,
           left(arg_min(instruction, parent_id IS NOT NULL), {snippet}) AS instruction,
           bool_and(parent_id IS NOT NULL) AS expanded,
           count(*) AS records
    FROM {side}_records
    GROUP BY ALL
),
dropped AS (
    SELECT j.source, j.source_file, j.source_row,
           coalesce(j.parent_id, j.id) AS id, j.stage, j.reason, j.detail,
           first_value(left(j.instruction, {snippet})) OVER (
               PARTITION BY j.source, j.source_file, j.source_row
               ORDER BY j.parent_id IS NOT NULL, j.id) AS instruction,
           bool_and(j.parent_id IS NOT NULL) OVER (
               PARTITION BY j.source, j.source_file, j.source_row) AS expanded
    FROM {side}_rejects j LEFT JOIN {side}_stage_order o ON o.stage = j.stage
    QUALIFY row_number() OVER (
        PARTITION BY j.source, j.source_file, j.source_row
        ORDER BY coalesce(o.idx, 1000000) DESC, j.reason, j.id) = 1
)
SELECT source, source_file, source_row, id, 'kept' AS status, NULL::VARCHAR AS stage,
       NULL::VARCHAR AS reason, NULL::VARCHAR AS detail, records, instruction, expanded
FROM kept
UNION ALL
SELECT d.source, d.source_file, d.source_row, d.id, 'rejected', d.stage, d.reason, d.detail,
       0, d.instruction, d.expanded
FROM dropped d ANTI JOIN kept k
  ON k.source IS NOT DISTINCT FROM d.source AND k.source_file IS NOT DISTINCT FROM d.source_file
 AND k.source_row IS NOT DISTINCT FROM d.source_row
"""

DIFF_SQL = """
CREATE TABLE diff AS
SELECT *,
       (status_a, stage_a, reason_a) IS DISTINCT FROM (status_b, stage_b, reason_b) AS changed
FROM (
    SELECT coalesce(a.source, b.source) AS source,
           coalesce(a.source_file, b.source_file) AS source_file,
           coalesce(a.source_row, b.source_row) AS source_row,
           a.id AS id_a, coalesce(a.status, 'absent') AS status_a, a.stage AS stage_a,
           a.reason AS reason_a, a.detail AS detail_a, coalesce(a.records, 0) AS records_a,
           b.id AS id_b, coalesce(b.status, 'absent') AS status_b, b.stage AS stage_b,
           b.reason AS reason_b, b.detail AS detail_b, coalesce(b.records, 0) AS records_b,
           CASE WHEN a.instruction IS NOT NULL AND NOT a.expanded THEN a.instruction
                WHEN b.instruction IS NOT NULL AND NOT b.expanded THEN b.instruction
                ELSE coalesce(a.instruction, b.instruction) END AS instruction_snippet
    FROM a_status a FULL OUTER JOIN b_status b
      ON a.source IS NOT DISTINCT FROM b.source AND a.source_file IS NOT DISTINCT FROM b.source_file
     AND a.source_row IS NOT DISTINCT FROM b.source_row
)
"""


def _totals(con: duckdb.DuckDBPyConnection, side: str, run_dir: Path) -> RunTotals:
    row = con.execute(
        f"SELECT count(*), count_if(status = 'kept'), count_if(status = 'rejected') FROM {side}_status"
    ).fetchone()
    assert row is not None
    by_reason = {
        f"{stage}/{reason}": int(count)
        for stage, reason, count in con.execute(
            f"SELECT stage, reason, count(*) FROM {side}_status WHERE status = 'rejected' "
            "GROUP BY ALL ORDER BY 3 DESC, 1, 2"
        ).fetchall()
    }
    return RunTotals(
        run_dir,
        int(row[0]),
        int(row[1]),
        int(row[2]),
        _scalar(con, f"SELECT count(*) FROM {side}_records"),
        _scalar(con, f"SELECT count(*) FROM {side}_rejects"),
        by_reason,
    )


def _transitions(con: duckdb.DuckDBPyConnection, n: int) -> list[Transition]:
    group = "status_a, stage_a, reason_a, status_b, stage_b, reason_b"
    counts = con.execute(
        f"SELECT {group}, count(*) FROM diff WHERE changed GROUP BY ALL "
        f"ORDER BY count(*) DESC, {group}"
    ).fetchall()
    examples: dict[tuple[Any, ...], list[DiffExample]] = defaultdict(list)
    rows = con.execute(
        f"""
        SELECT {group}, source, source_file, source_row, id_a, id_b,
               left(trim(regexp_replace(instruction_snippet, '\\s+', ' ', 'g')), 100)
        FROM diff WHERE changed
        QUALIFY row_number() OVER (
            PARTITION BY {group}
            ORDER BY md5(concat_ws(chr(31), source, source_file, source_row))) <= $n
        ORDER BY source, source_file, source_row
        """,
        {"n": n},
    ).fetchall()
    for row in rows:
        examples[tuple(row[:6])].append(DiffExample(*row[6:]))
    return [
        Transition(Status(*row[0:3]), Status(*row[3:6]), int(row[6]), examples[tuple(row[:6])])
        for row in counts
    ]


def _write(con: duckdb.DuckDBPyConnection, out: Path) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    target = out.as_posix().replace("'", "''")
    columns = (
        "source, source_file, source_row, changed, "
        "status_a, stage_a, reason_a, detail_a, id_a, records_a, "
        "status_b, stage_b, reason_b, detail_b, id_b, records_b, instruction_snippet"
    )
    con.execute(
        f"COPY (SELECT {columns} FROM diff ORDER BY source, source_file, source_row) "
        f"TO '{target}' {OUT_FORMATS[out.suffix.lower()]}"
    )
    return _scalar(con, "SELECT count(*) FROM diff")


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


__all__ = [
    "DiffExample",
    "RunDiff",
    "RunTotals",
    "Status",
    "Transition",
    "diff_runs",
    "input_warnings",
]
