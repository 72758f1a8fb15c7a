"""``report.html``: a self-contained page per run (funnel, sources, languages, tasks, lengths,
diversity, duplicate clusters, reject samples).

Numbers come from the manifest (the funnel, per-source accounting) and from DuckDB queries over the
run's parquet files (distributions, clusters, samples), so a report can be rebuilt for any finished
run with ``curate report RUN_DIR``. Charts are inline SVG; the page loads nothing from the network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import jinja2
from markupsafe import Markup

from curate.errors import CurateError
from curate.run.funnel import funnel_steps
from curate.run.inspect import Keeper, Table, find_keepers
from curate.run.manifest import Manifest
from curate.run.query import connect, load_manifest, run_columns, stage_order
from curate.run.report.charts import PALETTE, bar_chart, grouped_histogram, histogram, scatter
from curate.run.report.diversity import HISTOGRAM_BINS, MAP_SOURCES, Diversity
from curate.run.report.diversity import collect as collect_diversity
from curate.util.files import write_bytes_atomic

REPORT = "report.html"
TOP_VALUES = 25
CLUSTERS = 10
SAMPLES_PER_REASON = 3
SNIPPET_CHARS = 400
DUPLICATE_REASONS = ("exact_duplicate", "near_duplicate")
# Length bins: 0, then powers of two (1-1, 2-3, 4-7, ...), the last bin open-ended.
LENGTH_BINS = 16


@dataclass
class ReportData:
    manifest: Manifest
    funnel: list[dict[str, Any]]
    sources: list[dict[str, Any]]
    distributions: dict[str, list[tuple[str, int]]]
    lengths: dict[str, dict[str, Any]]
    clusters: list[dict[str, Any]]
    reject_groups: list[dict[str, Any]]
    charts: dict[str, str] = field(default_factory=dict)
    # The "Diversity" section (None only for data built by hand without it).
    diversity: Diversity | None = None
    # Token lengths per source, when the run has a `length` stage (its total_tokens column).
    token_lengths: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The numbers a test or a script can check against the manifest."""
        return {
            "name": self.manifest.name,
            "rows": self.manifest.rows.model_dump(),
            "funnel": [
                {k: step[k] for k in ("step", "rows_in", "rows_out", "dropped")}
                for step in self.funnel
            ],
            "sources": [
                {k: s[k] for k in ("name", "rows_read", "rows_kept", "rows_rejected", "records")}
                for s in self.sources
            ],
            "rejects_by_reason": {
                f"{g['stage']}/{g['reason']}": g["count"] for g in self.reject_groups
            },
            "diversity": self.diversity.summary() if self.diversity else None,
        }


def _rows(con: duckdb.DuckDBPyConnection, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return con.execute(sql, list(params)).fetchall()


def _funnel(manifest: Manifest, ingest_rejects: dict[str, int]) -> list[dict[str, Any]]:
    return [
        {k: step[k] for k in ("step", "kind", "rows_in", "rows_out", "dropped", "seconds")}
        for step in funnel_steps(manifest, ingest_rejects)
    ]


def _distribution(
    con: duckdb.DuckDBPyConnection, view: str, expression: str, where: str = "TRUE"
) -> list[tuple[str, int]]:
    rows = _rows(
        con,
        f"SELECT coalesce(CAST({expression} AS VARCHAR), '(none)') AS value, count(*) AS n "
        f"FROM {view} WHERE {where} GROUP BY 1 ORDER BY n DESC, value",
    )
    if len(rows) > TOP_VALUES:
        rest = sum(int(n) for _, n in rows[TOP_VALUES - 1 :])
        rows = [*rows[: TOP_VALUES - 1], (f"({len(rows) - TOP_VALUES + 1} others)", rest)]
    return [(str(v), int(n)) for v, n in rows]


def _short(n: int) -> str:
    return f"{n // 1024}k" if n >= 1024 else str(n)


def _length_bin_labels() -> list[str]:
    labels = ["0"]
    for b in range(LENGTH_BINS - 1):
        lo, hi = 2**b, 2 ** (b + 1)
        if b == LENGTH_BINS - 2:
            labels.append(f"≥{_short(lo)}")
        else:
            labels.append(str(lo) if hi - lo == 1 else f"{_short(lo)}–{_short(hi)}")
    return labels


def _lengths(con: duckdb.DuckDBPyConnection, column: str) -> dict[str, Any]:
    length = f"length(coalesce({column}, ''))"
    bucket = f"CASE WHEN {length} = 0 THEN 0 ELSE least(floor(log2({length}))::INT + 1, {LENGTH_BINS - 1}) END"
    counts = [0] * LENGTH_BINS
    for b, n in _rows(con, f"SELECT {bucket} AS b, count(*) FROM records GROUP BY 1"):
        counts[int(b)] = int(n)
    stats = _rows(
        con,
        f"SELECT quantile_disc({length}, 0.5), quantile_disc({length}, 0.9), "
        f"quantile_disc({length}, 0.99), max({length}), avg({length}) FROM records",
    )[0]
    names = ("p50", "p90", "p99", "max", "mean")
    return {
        "bins": _length_bin_labels(),
        "counts": counts,
        "stats": {
            k: (round(float(v), 1) if v is not None else None)
            for k, v in zip(names, stats, strict=True)
        },
    }


def _token_lengths(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per source: records and the percentiles of ``total_tokens`` (what the trainer will see)."""
    names = ("source", "records", "p50", "p90", "p99", "max", "mean")
    rows = _rows(
        con,
        "SELECT source, count(*), quantile_disc(total_tokens, 0.5), "
        "quantile_disc(total_tokens, 0.9), quantile_disc(total_tokens, 0.99), max(total_tokens), "
        "round(avg(total_tokens), 1) FROM records GROUP BY 1 ORDER BY 1",
    )
    return [dict(zip(names, row, strict=True)) for row in rows]


def _text(row: dict[str, Any]) -> dict[str, str]:
    def clip(value: Any) -> str:
        text = "" if value is None else str(value)
        return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + " …"

    return {k: clip(row.get(k)) for k in ("instruction", "input", "output", "detail", "meta")}


def _dict_rows(con: duckdb.DuckDBPyConnection, sql: str, *params: Any) -> list[dict[str, Any]]:
    cursor = con.execute(sql, list(params))
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _keeper_status(keeper: Keeper) -> str:
    row = keeper.row or {}
    status = "kept" if keeper.found_in == "records" else f"{row.get('stage')}: {row.get('reason')}"
    return f"{status} (rendered by a template)" if keeper.expanded else status


def _clusters(
    con: duckdb.DuckDBPyConnection, columns: dict[Table, set[str]]
) -> list[dict[str, Any]]:
    reasons = ", ".join(f"'{r}'" for r in DUPLICATE_REASONS)
    top = _rows(
        con,
        f"SELECT duplicate_of, reason, count(*) AS n FROM rejects "
        f"WHERE reason IN ({reasons}) AND duplicate_of IS NOT NULL "
        f"GROUP BY ALL ORDER BY n DESC, reason, duplicate_of LIMIT {CLUSTERS}",
    )
    # The keeper is a kept record, or was dropped later (e.g. not sampled by the mix); after
    # expansion only its rendered children (parent_id) may be left: inspect's lookup handles all.
    keepers = find_keepers(con, [str(k) for k, _, _ in top], columns) if top else {}
    fields = "id, source, source_file, source_row, instruction, input, output"
    clusters = []
    for keeper_id, reason, n in top:
        found = keepers[keeper_id]
        keeper = (
            {**found.row, "status": _keeper_status(found), **_text(found.row)}
            if found.row is not None
            else None
        )
        members = _dict_rows(
            con,
            f"SELECT {fields}, detail FROM rejects WHERE duplicate_of = ? AND reason = ? "
            f"ORDER BY source, source_file, source_row LIMIT {SAMPLES_PER_REASON}",
            keeper_id,
            reason,
        )
        clusters.append(
            {
                "keeper_id": keeper_id,
                "reason": reason,
                "size": int(n) + 1,
                "keeper": keeper,
                "members": [{**m, **_text(m)} for m in members],
            }
        )
    return clusters


def _reject_groups(con: duckdb.DuckDBPyConnection, order: dict[str, int]) -> list[dict[str, Any]]:
    counts = _rows(con, "SELECT stage, reason, count(*) FROM rejects GROUP BY ALL")
    samples = _dict_rows(
        con,
        "SELECT * FROM (SELECT stage, reason, id, source, source_file, source_row, instruction, "
        "input, output, detail, duplicate_of, meta, row_number() OVER (PARTITION BY stage, reason "
        "ORDER BY md5(coalesce(id, '') || source_file || CAST(source_row AS VARCHAR))) AS rn "
        f"FROM rejects) WHERE rn <= {SAMPLES_PER_REASON} ORDER BY stage, reason, rn",
    )
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in samples:
        by_group.setdefault((row["stage"], row["reason"]), []).append({**row, **_text(row)})
    groups = [
        {
            "stage": stage,
            "reason": reason,
            "count": int(n),
            "samples": by_group.get((stage, reason), []),
        }
        for stage, reason, n in counts
    ]
    groups.sort(key=lambda g: (order.get(g["stage"], 1 << 20), -g["count"], g["reason"]))
    return groups


def collect(run_dir: Path) -> ReportData:
    """Query a finished (or about-to-be-published) run directory for everything the report shows."""
    manifest = load_manifest(run_dir)
    con = connect(run_dir)
    try:
        columns: dict[Table, set[str]] = run_columns(con)
        record_columns = columns["records"]
        ingest_rejects = {
            str(reason): int(n)
            for reason, n in _rows(
                con, "SELECT reason, count(*) FROM rejects WHERE stage = 'ingest' GROUP BY 1"
            )
        }
        records_by_source = {
            str(source): int(n)
            for source, n in _rows(con, "SELECT source, count(*) FROM records GROUP BY 1")
        }
        sources = [
            {
                "name": s.name,
                "license": s.license or "",
                "files": len(s.files),
                "formats": sorted({f.format for f in s.files}),
                "rows_read": s.rows_read,
                "rows_kept": s.rows_kept,
                "rows_rejected": s.rows_rejected,
                "records": int(records_by_source.get(s.name, 0)),
            }
            for s in manifest.sources
        ]
        distributions: dict[str, list[tuple[str, int]]] = {}
        for column in ("lang", "task", "category", "template_type", "response_format"):
            if column in record_columns:
                distributions[column] = _distribution(con, "records", column)
        # What the pii stage found, by type and action (from the `pii` view: never the values).
        findings = _rows(
            con,
            "SELECT type || ' (' || action || ')', count(*) FROM pii GROUP BY 1 ORDER BY 2 DESC, 1",
        )
        if findings:
            distributions["pii"] = [(str(kind), int(n)) for kind, n in findings]
        distributions["rejected_lang"] = _distribution(
            con, "rejects", "lang", "reason LIKE 'lang\\_%' ESCAPE '\\'"
        )
        lengths = {column: _lengths(con, column) for column in ("instruction", "output")}
        data = ReportData(
            manifest=manifest,
            funnel=_funnel(manifest, ingest_rejects),
            sources=sources,
            distributions=distributions,
            lengths=lengths,
            clusters=_clusters(con, columns),
            reject_groups=_reject_groups(con, stage_order(manifest)),
            diversity=collect_diversity(con, columns, manifest.seed),
            token_lengths=_token_lengths(con) if "total_tokens" in record_columns else [],
        )
    except duckdb.Error as exc:
        raise CurateError(f"cannot build the report for {run_dir}: {exc}") from None
    finally:
        con.close()
    data.charts = _charts(data)
    return data


def _charts(data: ReportData) -> dict[str, str]:
    charts = {
        "funnel": bar_chart(
            [step["step"] for step in data.funnel],
            [[step["rows_in"] for step in data.funnel], [step["rows_out"] for step in data.funnel]],
            names=["rows in", "rows out"],
            title="rows in and out per stage",
        ),
        "sources": bar_chart(
            [s["name"] for s in data.sources],
            [
                [s["rows_read"] for s in data.sources],
                [s["rows_kept"] for s in data.sources],
                [s["records"] for s in data.sources],
            ],
            names=["rows read", "input rows kept", "output records"],
            title="per-source contribution",
        ),
    }
    for name, values in data.distributions.items():
        charts[name] = bar_chart(
            [v for v, _ in values],
            [[n for _, n in values]],
            width=560,
            label_width=190,
            bar_height=13,
            title=name,
        )
    for name, lengths in data.lengths.items():
        charts[f"length_{name}"] = histogram(
            lengths["bins"],
            lengths["counts"],
            title=f"{name} length in characters (bins are [low, high))",
        )
    if data.diversity is not None:
        charts.update(_diversity_charts(data.diversity))
    return charts


def _diversity_charts(found: Diversity) -> dict[str, str]:
    charts: dict[str, str] = {}
    samples = [(name, m) for name, m in (("before", found.before), ("after", found.after)) if m]
    if found.status == "ok" and samples:
        charts["diversity_nn"] = grouped_histogram(
            found.histogram_bins,
            [[100 * n / max(1, m.rows) for n in m.histogram] for _, m in samples],
            names=[f"{name} ({m.rows:,} rows)" for name, m in samples],
            unit=" %",
            title="nearest-neighbour cosine within each sample (share of rows; bins are "
            f"[low, +{1 / HISTOGRAM_BINS:.2f}))",
        )
    if found.status == "ok" and found.points:
        counts: dict[str, int] = {}
        for point in found.points:
            counts[point.source] = counts.get(point.source, 0) + 1
        ranked = sorted(counts, key=lambda s: (-counts[s], s))
        named = ranked if len(ranked) <= MAP_SOURCES + 1 else ranked[:MAP_SOURCES]
        group = {source: i for i, source in enumerate(named)}
        other = len(named)
        names = [f"{s} ({counts[s]:,})" for s in named]
        if len(ranked) > len(named):
            names.append(f"other ({sum(counts[s] for s in ranked[len(named) :]):,})")
        first, second = found.explained
        charts["diversity_map"] = scatter(
            [p.x for p in found.points],
            [p.y for p in found.points],
            [group.get(p.source, other) % len(PALETTE) for p in found.points],
            names=names,
            titles=[f"{p.source}: {p.text}" for p in found.points],
            x_label=f"first principal component ({100 * first:.1f} % of the variance)",
            y_label=f"second ({100 * second:.1f} %)",
            title=f"kept sample, {len(found.points):,} rows, coloured by source",
        )
    return charts


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load_template),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda v: f"{v:,}" if isinstance(v, int) else v
    env.filters["pct"] = lambda part, whole: f"{100 * part / whole:.1f} %" if whole else "–"
    return env


def _load_template(name: str) -> str:
    return resources.files("curate").joinpath("data", name).read_text(encoding="utf-8")


def render(data: ReportData) -> str:
    summary = json.dumps(data.summary(), sort_keys=True).replace("</", "<\\/")
    template = _environment().get_template("report.html.j2")
    return template.render(
        m=data.manifest,
        data=data,
        charts={k: Markup(v) for k, v in data.charts.items()},  # built from escaped parts
        summary_json=Markup(summary),  # JSON with "</" escaped
    )


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Build ``report.html`` for ``run_dir`` (atomically); returns its path."""
    target = out or run_dir / REPORT
    html = render(collect(run_dir))
    write_bytes_atomic(html.encode("utf-8"), target)
    return target


__all__ = ["REPORT", "ReportData", "collect", "render", "write_report"]
