"""The report's "Diversity" section: how alike the kept records are, before and after the
dedup and selection stages removed rows.

Two seeded samples of up to :data:`SAMPLE` rows are embedded with the static model of
:mod:`curate.lib.embed` (extra ``curate[embed]``) and quantized to int8:

* **after**: kept records (``data/``);
* **before**: kept records plus the rows the dedup and selection stages removed
  (:data:`BEFORE_REASONS`), i.e. what the data looked like before those stages ran.

Both samples sort their set by ``md5(seed | id | source_file | source_row)`` (the run's seed, from
the manifest), so the same run always gives the same rows, and a kept row sampled "before" is
sampled "after" too. A record's text is its instruction and input joined by a newline, or the user
turns of its conversation (:func:`curate.util.text.record_text`).

Metrics per sample (all exact or deterministic: integer dot products of the int8 vectors are exact
in floating point whatever order a BLAS sums them in):

* nearest-neighbour cosine of every row within its sample (a blocked matrix product), its mean,
  and the share of rows whose nearest neighbour is at :data:`NEAR` or more;
* cluster entropy: :data:`CENTROIDS` centroids picked from the *before* sample by a farthest-point
  pass (starting at its first row, so seeded by the sample order), every row of both samples
  assigned to its most similar centroid; the entropy (bits) of the cluster sizes and the largest
  cluster's share. One partition for both samples, so the two numbers compare the same regions.

Also: a 2-D map of the kept sample (first two principal components of the exact int8 scatter
matrix, each component's sign fixed so its largest loading is positive) and, when the run has a
``response_format`` column, the answer formats of every kept record per source.

Nothing here fails the report: without the embedder the section says what to install; any other
error is named in the section.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import StageError
from curate.lib import embed
from curate.util.text import record_text

SAMPLE = 2000
CENTROIDS = 32
NEAR = 0.9
BEFORE_REASONS = ("exact_duplicate", "near_duplicate", "semantic_duplicate", "not_selected")
# Nearest-neighbour cosine histogram: bins of this width over [0, 1] (the last one closed).
HISTOGRAM_BINS = 20
# The map colours this many sources (largest first); the rest are "other".
MAP_SOURCES = 7
MAP_TEXT_CHARS = 60
# Dot products per block of rows: BLOCK x SAMPLE floats at a time.
BLOCK = 512
UNAVAILABLE = (
    "Diversity needs the embedding model that ships with the wordllama package: "
    "pip install 'curate[embed]' (the rest of the report does not)."
)

Status = Literal["ok", "unavailable", "failed"]


@dataclass
class SampleMetrics:
    """The numbers of one sample (``before`` or ``after``)."""

    rows: int  # rows sampled
    total: int  # rows in the set sampled from
    mean_nn_cosine: float | None
    near_share: float | None  # share of rows whose nearest neighbour is >= NEAR
    cluster_entropy_bits: float | None
    largest_cluster_share: float | None
    clusters: int  # non-empty clusters
    histogram: list[int] = field(default_factory=list)  # nearest-neighbour cosines per bin

    def summary(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "total": self.total,
            "mean_nn_cosine": self.mean_nn_cosine,
            "near_share": self.near_share,
            "cluster_entropy_bits": self.cluster_entropy_bits,
            "largest_cluster_share": self.largest_cluster_share,
            "clusters": self.clusters,
        }


@dataclass
class MapPoint:
    x: float
    y: float
    source: str
    text: str


@dataclass
class Diversity:
    status: Status
    message: str = ""
    before: SampleMetrics | None = None
    after: SampleMetrics | None = None
    centroids: int = 0
    # True when no dedup/selection stage removed a row: "before" is the kept set again.
    same_sets: bool = False
    histogram_bins: list[str] = field(default_factory=list)
    points: list[MapPoint] = field(default_factory=list)
    explained: tuple[float, float] = (0.0, 0.0)  # variance share of the two components
    formats: list[str] = field(default_factory=list)
    formats_by_source: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0  # build time (not shown: the section is byte-identical per run)
    near: float = NEAR

    @property
    def max_entropy_bits(self) -> float:
        """The entropy of clusters of equal size: log2 of the number of centroids."""
        return math.log2(self.centroids) if self.centroids else 0.0

    def summary(self) -> dict[str, Any]:
        """What a test or a script can check (no build time: the page must rebuild identically)."""
        return {
            "status": self.status,
            "sample": SAMPLE,
            "near": NEAR,
            "centroids": self.centroids,
            "before": self.before.summary() if self.before else None,
            "after": self.after.summary() if self.after else None,
            "map_points": len(self.points),
            "response_formats": {
                row["source"]: dict(zip(self.formats, row["counts"], strict=True))
                for row in self.formats_by_source
            },
        }


# --- sampling -----------------------------------------------------------------------------------


def _to_arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    relation = con.sql(sql)
    to_arrow = getattr(relation, "to_arrow_table", None) or relation.arrow  # duckdb 1 and 2
    table: pa.Table = to_arrow()
    return table


def _select(view_columns: set[str]) -> str:
    wanted = ("id", "source", "instruction", "input", "messages")
    parts = [name if name in view_columns else f"NULL AS {name}" for name in wanted]
    key = " || '|' || ".join(
        f"coalesce(CAST({name} AS VARCHAR), '')" if name in view_columns else "''"
        for name in ("id", "source_file", "source_row")
    )
    return ", ".join(parts) + f", {key} AS _key"


def sample(
    con: duckdb.DuckDBPyConnection,
    columns: dict[Any, set[str]],
    seed: int,
    *,
    before: bool,
    limit: int = SAMPLE,
) -> tuple[pa.Table, int]:
    """Up to ``limit`` rows of the kept set (or the "before" set), in seeded order, and the size
    of the set."""
    reasons = ", ".join(f"'{r}'" for r in BEFORE_REASONS)
    union = f"SELECT {_select(columns['records'])} FROM records"
    if before:
        union += (
            f" UNION ALL BY NAME SELECT {_select(columns['rejects'])} FROM rejects "
            f"WHERE reason IN ({reasons})"
        )
    salt = f"{int(seed)}|"
    table = _to_arrow(
        con,
        f"SELECT * EXCLUDE (_key) FROM ({union}) "
        f"ORDER BY md5('{salt}' || _key), _key, source, instruction LIMIT {int(limit)}",
    )
    [(total,)] = con.execute(f"SELECT count(*) FROM ({union})").fetchall()
    return table, int(total)


def texts(table: pa.Table) -> list[str]:
    """Instruction and input joined by a newline; a conversation's user turns instead."""
    fields = ["instruction", "input"]
    if table.num_rows and pc.any(pc.is_valid(table.column("messages"))).as_py():
        fields.append("messages")
    values = record_text(table, fields, separator="\n", roles=("user",), prefer_messages=True)
    return [str(v) for v in pc.fill_null(values, "").to_pylist()]


# --- metrics ------------------------------------------------------------------------------------


def _norms(vectors: np.ndarray) -> np.ndarray:
    """Squared norms of int8 vectors (exact integers, as float64)."""
    return (vectors.astype(np.int64) ** 2).sum(axis=1).astype(np.float64)


def _cosines(vectors: np.ndarray, norms: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Cosines of every row of ``vectors`` (squared ``norms``) with every row of ``others``
    (int8): the dot products are integers below 2**24, exact in float32; the product of squared
    norms is an exact integer in float64, so one correctly rounded square root and one division
    per pair (a copy is at exactly 1.0)."""
    dots = (vectors.astype(np.float32) @ others.astype(np.float32).T).astype(np.float64)
    denominator = np.sqrt(norms[:, None] * _norms(others)[None, :])
    out = np.divide(dots, denominator, out=np.zeros_like(dots), where=denominator > 0)
    return np.clip(out, -1.0, 1.0)


def nearest_neighbours(vectors: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """Each row's highest cosine to another row of the sample (exact; ``block`` rows at a time)."""
    n = len(vectors)
    norms = _norms(vectors)
    nearest = np.full(n, -1.0)
    if n < 2:
        return nearest[:0]
    for start in range(0, n, block):
        stop = min(start + block, n)
        similarity = _cosines(vectors[start:stop], norms[start:stop], vectors)
        similarity[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        nearest[start:stop] = similarity.max(axis=1)
    return nearest


def farthest_point_centroids(vectors: np.ndarray, k: int = CENTROIDS) -> np.ndarray:
    """Indices of up to ``k`` rows: the first row with text, then again and again the row least
    similar to every row picked so far (first on ties). Stops early when every row left is a
    copy of a picked one."""
    norms = _norms(vectors)
    candidates = np.flatnonzero(norms > 0)
    if not len(candidates) or k < 1:
        return np.zeros(0, np.int64)
    chosen = [int(candidates[0])]
    unavailable = norms == 0  # rows without text are never picked
    closest = np.full(len(vectors), -np.inf)
    while len(chosen) < k:
        last = chosen[-1]
        closest = np.maximum(closest, _cosines(vectors, norms, vectors[last : last + 1])[:, 0])
        unavailable[last] = True
        pick = int(np.argmin(np.where(unavailable, np.inf, closest)))
        if unavailable[pick] or closest[pick] >= 1.0 - 1e-9:  # nothing, or only copies, left
            break
        chosen.append(pick)
    return np.asarray(chosen, np.int64)


def cluster_sizes(vectors: np.ndarray, centroids: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """Rows with text per centroid (each row to its most similar centroid, first on ties)."""
    sizes = np.zeros(len(centroids), np.int64)
    if not len(centroids):
        return sizes
    norms = _norms(vectors)
    for start in range(0, len(vectors), block):
        stop = min(start + block, len(vectors))
        has_text = norms[start:stop] > 0
        similarity = _cosines(vectors[start:stop], norms[start:stop], centroids)
        labels = similarity.argmax(axis=1)[has_text]
        sizes += np.bincount(labels, minlength=len(centroids))
    return sizes


def entropy_bits(sizes: np.ndarray) -> float | None:
    total = int(sizes.sum())
    if not total:
        return None
    shares = sizes[sizes > 0] / total
    return float(-(shares * np.log2(shares)).sum()) + 0.0


def histogram_counts(nearest: np.ndarray, bins: int = HISTOGRAM_BINS) -> list[int]:
    """Counts per bin of width 1/bins over [0, 1]: [0, .05), ..., [.95, 1]; below 0 counts as 0."""
    index = np.clip(np.floor(np.clip(nearest, 0.0, 1.0) * bins).astype(np.int64), 0, bins - 1)
    return [int(n) for n in np.bincount(index, minlength=bins)]


def histogram_labels(bins: int = HISTOGRAM_BINS) -> list[str]:
    return [f"{i / bins:.2f}" for i in range(bins)]


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), digits) + 0.0


def sample_metrics(vectors: np.ndarray, total: int, centroids: np.ndarray) -> SampleMetrics:
    nearest = nearest_neighbours(vectors)
    sizes = cluster_sizes(vectors, centroids)
    clustered = int(sizes.sum())
    return SampleMetrics(
        rows=len(vectors),
        total=total,
        mean_nn_cosine=_round(float(nearest.mean())) if len(nearest) else None,
        near_share=_round(float((nearest >= NEAR).mean())) if len(nearest) else None,
        cluster_entropy_bits=_round(entropy_bits(sizes)),
        largest_cluster_share=_round(int(sizes.max()) / clustered) if clustered else None,
        clusters=int((sizes > 0).sum()),
        histogram=histogram_counts(nearest) if len(nearest) else [],
    )


def principal_map(vectors: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """The rows projected on the first two principal components, and each one's share of the
    variance. The scatter matrix is computed from the int8 values in float64, where every sum is
    an exact integer; each component's sign makes its largest-magnitude loading positive."""
    n = len(vectors)
    if n < 3:
        return np.zeros((0, 2)), (0.0, 0.0)
    x = vectors.astype(np.float64)
    total = x.sum(axis=0)
    scatter = n * (x.T @ x) - np.outer(total, total)  # n^2 x the covariance, exact
    values, components = np.linalg.eigh(scatter)
    top = np.argsort(values, kind="stable")[::-1][:2]
    basis = components[:, top]
    for j in range(basis.shape[1]):
        if basis[np.argmax(np.abs(basis[:, j])), j] < 0:
            basis[:, j] = -basis[:, j]
    coords = ((n * x - total) @ basis) / n
    spread = float(values.clip(min=0).sum())
    first, second = (round(float(values[i]) / spread, 4) + 0.0 if spread > 0 else 0.0 for i in top)
    return coords, (first, second)


def _points(table: pa.Table, texts_: list[str], coords: np.ndarray) -> list[MapPoint]:
    if not len(coords):
        return []
    sources = [str(s) if s is not None else "(none)" for s in table.column("source").to_pylist()]
    points = []
    for (x, y), source, text in zip(coords.tolist(), sources, texts_, strict=True):
        snippet = " ".join(text.split())
        if len(snippet) > MAP_TEXT_CHARS:
            snippet = snippet[: MAP_TEXT_CHARS - 1] + "…"
        points.append(MapPoint(round(x, 3) + 0.0, round(y, 3) + 0.0, source, snippet))
    return points


# --- response formats ---------------------------------------------------------------------------


def response_formats(
    con: duckdb.DuckDBPyConnection, columns: dict[Any, set[str]]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Every kept record's answer format, per source: (formats by count, one row per source)."""
    if "response_format" not in columns["records"]:
        return [], []
    rows = con.execute(
        "SELECT coalesce(CAST(source AS VARCHAR), '(none)'), "
        "coalesce(CAST(response_format AS VARCHAR), '(none)'), count(*) "
        "FROM records GROUP BY ALL"
    ).fetchall()
    totals: dict[str, int] = {}
    by_source: dict[str, dict[str, int]] = {}
    for source, label, n in rows:
        totals[label] = totals.get(label, 0) + int(n)
        by_source.setdefault(source, {})[label] = int(n)
    formats = sorted(totals, key=lambda label: (-totals[label], label))
    table = []
    for source in sorted(by_source, key=lambda s: (-sum(by_source[s].values()), s)):
        counts = [by_source[source].get(label, 0) for label in formats]
        table.append({"source": source, "total": sum(counts), "counts": counts})
    return formats, table


# --- the section --------------------------------------------------------------------------------


def collect(con: duckdb.DuckDBPyConnection, columns: dict[Any, set[str]], seed: int) -> Diversity:
    """The Diversity section's numbers; never raises (a failure becomes the section's message)."""
    started = time.perf_counter()
    try:
        embedder = embed.load_embedder("static")
    except StageError as exc:
        # Not installed (the common case), or installed but broken: then say how.
        broken = f" Loading it failed: {exc}" if exc.__cause__ is not None else ""
        result = Diversity("unavailable", UNAVAILABLE + broken)
    else:
        try:
            result = _measure(con, columns, seed, embedder)
        except Exception as exc:  # the report never fails for its diversity section
            result = Diversity("failed", f"Diversity could not be computed: {exc}")
    with contextlib.suppress(duckdb.Error):  # no table then; the rest of the section stands
        result.formats, result.formats_by_source = response_formats(con, columns)
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _measure(
    con: duckdb.DuckDBPyConnection, columns: dict[Any, set[str]], seed: int, embedder: Any
) -> Diversity:
    after_rows, after_total = sample(con, columns, seed, before=False)
    before_rows, before_total = sample(con, columns, seed, before=True)
    after_texts = texts(after_rows)
    before_texts = texts(before_rows)
    # Most kept rows sampled "after" are sampled "before" too (same seeded order): each distinct
    # text is embedded once (a text's vector does not depend on the texts embedded with it).
    distinct = {text: row for row, text in enumerate(dict.fromkeys(after_texts + before_texts))}
    vectors = embed.quantize(embedder.embed(list(distinct)))
    after_vectors = vectors[np.array([distinct[text] for text in after_texts], np.intp)]
    before_vectors = vectors[np.array([distinct[text] for text in before_texts], np.intp)]
    centroids = before_vectors[farthest_point_centroids(before_vectors)]
    coords, explained = principal_map(after_vectors)
    return Diversity(
        "ok",
        before=sample_metrics(before_vectors, before_total, centroids),
        after=sample_metrics(after_vectors, after_total, centroids),
        centroids=len(centroids),
        same_sets=before_total == after_total,
        histogram_bins=histogram_labels(),
        points=_points(after_rows, after_texts, coords),
        explained=explained,
    )


__all__ = [
    "BEFORE_REASONS",
    "CENTROIDS",
    "NEAR",
    "SAMPLE",
    "Diversity",
    "MapPoint",
    "SampleMetrics",
    "collect",
]
