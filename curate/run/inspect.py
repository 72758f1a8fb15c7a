"""Sample records or rejects of a run directory, with filters pushed into DuckDB.

``curate inspect`` renders what :func:`sample_run` returns. Sampling is deterministic: rows are
ordered by an md5 of the seed and the row's identity (id + lineage key), so the same seed shows
the same rows on any machine, and only the ``n`` sampled rows are materialized.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb

from curate.errors import CurateError
from curate.run.manifest import Manifest
from curate.run.query import connect, load_manifest, run_columns, stage_order

Table = Literal["records", "rejects"]

# What a sampled row shows, in display order; columns a run lacks are skipped.
SHOWN_COLUMNS = (
    "id",
    "source",
    "source_format",
    "source_file",
    "source_row",
    "task",
    "category",
    "task_source",
    "lang",
    "lang_score",
    "template_id",
    "template_type",
    "inverted",
    "parent_id",
    "instruction",
    "input",
    "output",
    "rationale",
    "options",
    "messages",
    "stage",
    "reason",
    "detail",
    "duplicate_of",
)
# The columns shown for the row a duplicate was dropped in favour of.
KEEPER_COLUMNS = (
    "id",
    "source",
    "source_file",
    "source_row",
    "template_id",
    "inverted",
    "parent_id",
    "instruction",
    "input",
    "output",
    "messages",
)
# Identity of a row for sampling: ingest rejects (parse errors) have no id, the lineage key is unique.
SAMPLE_KEY = "md5(concat_ws(chr(31), $seed::VARCHAR, id, source, source_file, source_row))"


class UnknownFilterValueError(CurateError):
    """A --reason/--source/--stage value that does not occur in the run."""


@dataclass(frozen=True)
class Keeper:
    """The row a duplicate reject points at (``duplicate_of``), looked up in the same run."""

    id: str
    found_in: Table | None  # None: not in this run (e.g. a benchmark item from decontamination)
    expanded: bool = False  # the keeper only survives as template expansions; one is shown
    row: dict[str, Any] | None = None  # KEEPER_COLUMNS (+ stage, reason when found in rejects)


@dataclass(frozen=True)
class Sample:
    """``n`` rows sampled from the filtered records or rejects, plus how many matched."""

    run_dir: Path
    table: Table
    filters: dict[str, list[str]]
    matched: int
    seed: int
    rows: list[dict[str, Any]]
    keepers: dict[str, Keeper] = field(default_factory=dict)


def sample_run(
    run_dir: Path,
    *,
    rejects: bool = False,
    reasons: Sequence[str] = (),
    sources: Sequence[str] = (),
    stages: Sequence[str] = (),
    n: int = 5,
    seed: int = 0,
) -> Sample:
    """Sample ``n`` rows of a run's records (or rejects) matching the filters.

    A reason or stage filter implies the rejects. Values are checked against the run's data; an
    unknown one raises :class:`UnknownFilterValueError` listing the valid values. A stage may be
    given by its registry name (``quality_v1``) or its recipe key (``quality``).
    """
    if n < 0:
        raise CurateError(f"--n must be 0 or more, not {n}")
    table: Table = "rejects" if (rejects or reasons or stages) else "records"
    manifest = load_manifest(run_dir)
    con = connect(run_dir)
    try:
        columns: dict[Table, set[str]] = run_columns(con)
        filters: dict[str, list[str]] = {}
        if sources:
            known = [s.name for s in manifest.sources]
            filters["source"] = _check(
                con, run_dir, "source", sources, ["records", "rejects"], known
            )
        if stages:
            known = list(stage_order(manifest))
            filters["stage"] = _check(
                con, run_dir, "stage", _stage_names(manifest, stages), ["rejects"], known
            )
        if reasons:
            filters["reason"] = _check(con, run_dir, "reason", reasons, ["rejects"])
        where = " AND ".join(f"{name} IN (SELECT unnest(${name}))" for name in filters) or "true"
        params: dict[str, Any] = dict(filters)
        matched = _scalar(con, f"SELECT count(*) FROM {table} WHERE {where}", params)
        shown = [c for c in SHOWN_COLUMNS if c in columns[table]]
        rows = _fetch(
            con,
            f"SELECT {', '.join(shown)} FROM {table} WHERE {where} "
            f"ORDER BY {SAMPLE_KEY}, id LIMIT $n",
            {**params, "seed": seed, "n": n},
        )
        wanted = sorted({r["duplicate_of"] for r in rows if r.get("duplicate_of")})
        keepers = find_keepers(con, wanted, columns) if wanted else {}
    finally:
        con.close()
    return Sample(run_dir, table, filters, matched, seed, rows, keepers)


def find_keepers(
    con: duckdb.DuckDBPyConnection, ids: Sequence[str], columns: dict[Table, set[str]]
) -> dict[str, Keeper]:
    """Look up ``duplicate_of`` ids: records first, then rejects; by id, then as a parent_id.

    Expansion gives rows new ids, so a keeper that was expanded is found through ``parent_id``
    (one of its expansions is shown). Ids found nowhere map to ``Keeper(found_in=None)``.
    """
    parts = []
    order: list[tuple[Table, str]] = [
        ("records", "id"),
        ("rejects", "id"),
        ("records", "parent_id"),
        ("rejects", "parent_id"),
    ]
    for priority, (table, via) in enumerate(order):
        present = columns[table]
        if via not in present:
            continue
        select = [
            c if c in present else f"NULL AS {c}" for c in (*KEEPER_COLUMNS, "stage", "reason")
        ]
        parts.append(
            f"SELECT {via} AS __key, {priority} AS __priority, '{table}' AS __table, "
            f"{via == 'parent_id'} AS __expanded, {', '.join(select)} "
            f"FROM {table} WHERE {via} IN (SELECT unnest($ids))"
        )
    rows = _fetch(
        con,
        f"SELECT * FROM ({' UNION ALL BY NAME '.join(parts)}) "
        # An expansion that is not inverted reads most like the keeper itself.
        "QUALIFY row_number() OVER ("
        "PARTITION BY __key ORDER BY __priority, inverted IS TRUE, id) = 1",
        {"ids": list(ids)},
    )
    found: dict[str, Keeper] = {}
    for row in rows:
        key, table = row.pop("__key"), row.pop("__table")
        row.pop("__priority")
        expanded = bool(row.pop("__expanded"))
        if table == "records":
            del row["stage"], row["reason"]
        found[key] = Keeper(key, table, expanded, row)
    return {i: found.get(i, Keeper(i, None)) for i in ids}


def _stage_names(manifest: Manifest, stages: Sequence[str]) -> list[str]:
    """Recipe keys (``quality``) -> registry names (``quality_v1``); other values unchanged."""
    by_key: dict[str, list[str]] = {}
    for line in manifest.stages:
        by_key.setdefault(line.key, []).append(line.name)
    names: list[str] = []
    for stage in stages:
        for name in by_key.get(stage, [stage]):
            if name not in names:
                names.append(name)
    return names


def _check(
    con: duckdb.DuckDBPyConnection,
    run_dir: Path,
    column: str,
    values: Sequence[str],
    tables: list[Table],
    known: Sequence[str] = (),
) -> list[str]:
    """The values, if each occurs in the tables (or is ``known`` from the manifest); else raise."""
    union = " UNION ALL ".join(f"SELECT {column} AS v FROM {t}" for t in tables)
    counts: dict[str, int] = dict(
        con.execute(
            f"SELECT v, count(*) FROM ({union}) WHERE v IS NOT NULL GROUP BY v ORDER BY 2 DESC, 1"
        ).fetchall()
    )
    for name in known:
        counts.setdefault(name, 0)
    unknown = [v for v in values if v not in counts]
    if unknown:
        listed = ", ".join(f"{v} ({c})" for v, c in counts.items()) or "none"
        raise UnknownFilterValueError(
            f"unknown {column} {', '.join(repr(v) for v in unknown)} in {run_dir}; "
            f"valid {column}s (rows in {' + '.join(tables)}): {listed}"
        )
    return list(values)


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> int:
    row = con.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


def _fetch(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]
) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


__all__ = ["Keeper", "Sample", "UnknownFilterValueError", "find_keepers", "sample_run"]
