"""The ``select`` stage: keep the best ``budget`` rows that are not too alike (DEITA's idea, with
any score instead of a 13B scorer).

Recipe::

    - select: {budget: 5000}                              # the first 5,000 distinct requests
    - select: {budget: 5000, score: quality_score}        # a numeric column ...
    - select: {budget: 5000, score: "length(output)"}     # ... or a DuckDB expression of the row
    - select: {budget: 5000, by: source, per_group: 2000, max_similarity: 0.9, diversity: 0.5}
    - select: {budget: 5000, balance: [clusters, category], max_similarity: 0.7}   # spread out

Greedy: rows are ranked by ``score`` descending (NULL and NaN last, ties in stream order; no
score: stream order) and taken one by one while fewer than ``budget`` are taken; a candidate is
skipped when its cosine to a row already taken reaches the threshold τ (``max_similarity``), or
when its group (``by``) already holds ``per_group`` rows. Each record's request (``fields``,
joined by newlines; a conversation's user turns) is embedded (:mod:`curate.lib.embed`) and
quantized to int8, so every cosine is exact and reproducible (a row with no text is at cosine 0
to every row). ``budget: null`` (the default: every stage must build without params) takes every
row the similarity and group checks let through.

``score`` is a numeric column or a DuckDB expression, evaluated per batch on a connection that
can read no file and load no extension. So that a row's score depends on that row only (and the
selection not on how the stream is split into batches), windows, subqueries, aggregates and
functions whose value changes between runs (``random()``, ``now()``) are refused.

Balance (``balance: [clusters, category]``): the rows are cut into cells, one per combination of
the keys, and the greedy takes them in rounds, each round the next best row (by ``score``) of
every cell, so a region of meaning that holds half the input (Alpaca's "rewrite this sentence") or
a common category cannot fill half the budget. ``clusters`` is a k-means of the embedded requests
(``clusters`` = k; every row is embedded; :func:`curate.lib.embed.cluster_labels`, exact integer
arithmetic, so the clusters never depend on the machine); any other key is a column (null is a
value of its own). The similarity and group checks apply as before; a budget reject's ``rank`` is
then the place in the rounds.

Diversity knob (``diversity`` = d in [0, 1]): the threshold used is
``τ_d = τ + (1 - d) · (1 - τ)``: d scales the margin ``1 - τ`` a candidate must keep from every
selected row. d = 1 is strict τ (the default); d = 0.5 at τ = 0.9 rejects only pairs at ≥ 0.95;
d = 0 makes no similarity check at all (pure top-score, nothing is embedded). Score and diversity
never mix into one number: the score only orders candidates, the knob only decides how close two
selected rows may be.

Scale: no n × n matrix. Each taken row's ``bands`` random-hyperplane keys (``rows`` bits each) go
into one dict per band (key -> taken rows); a candidate is compared, by its exact int8 cosine,
only with the taken rows that share a key with it in some band. A taken neighbour that shares no
key is missed: for a pair at exactly the threshold the chance to share one is
``p_candidate_at_threshold`` in the manifest; closer pairs are found more surely. By default
``rows`` is the most bits (up to 16) that keep that chance ≥ 0.99 with 40 bands: 14 bits at
τ = 0.9 (0.992), 16 at 0.95 (0.9997), 7 at 0.7 (0.996). A lower threshold means fewer bits, so
more taken rows share a key with each candidate and more cosines are computed. Rows are embedded
only when the greedy reaches them, a chunk at a time: with a budget far below the input most
rows are never embedded. Memory: the request texts, a few numbers per row, and 256 bytes of
vector plus ``bands`` keys per taken row.

Rejects: ``reason="not_selected"`` with a JSON ``detail``: ``{"nearest": id, "cosine": 0.93,
"threshold": 0.9}`` (too similar to the taken row ``nearest``, also in ``duplicate_of``),
``{"budget": 5000, "rank": 6012}`` (the budget was full when the row's turn came: ``rank`` is its
1-based place in score order) or ``{"by": "source", "group": "dolly", "per_group": 2000, "rank":
812}``. Kept rows get ``select_rank`` (1-based place in the order rows were taken). Once the
budget is full the remaining rows are budget rejects, whatever their similarity.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator, model_validator

from curate.errors import StageError
from curate.lib.embed import Embedder, cluster_labels, load_embedder, runs_on_gpu, simhash_bands
from curate.lib.embed.cache import VectorCache, embedding_function
from curate.stages.base import (
    Decision,
    GlobalStage,
    StageParams,
    StageResult,
    apply_decision,
    fitted_rows,
)
from curate.util.text import record_text

TextField = Literal["instruction", "input", "output", "messages"]
RANK_COLUMN = "select_rank"
REASON = "not_selected"
# A conversation's request: what its user says (a shared system prompt is no sign of sameness).
USER_ROLES = ("user",)
# Name the batch is registered under for a score expression, and the row number column added.
_TABLE = "batch"
_ROW = "__curate_select_row"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Default LSH bits per band: the most up to MAX_BITS whose chance to make a pair at the
# threshold a candidate is at least RECALL.
MAX_BITS = 16
RECALL = 0.99
# Rows embedded at a time (at most; at least _MIN_CHUNK).
_CHUNK = 4096
_MIN_CHUNK = 256

# The balance key that stands for the k-means clusters of the requests.
CLUSTERS = "clusters"
# Why a row was not taken (codes of the fitted state).
_TAKEN, _SIMILAR, _BUDGET, _GROUP = 0, 1, 2, 3


def _default_fields() -> list[TextField]:
    return ["instruction", "input"]


class Select(GlobalStage):
    """Keep up to ``budget`` rows, best score first, none at cosine ≥ the threshold of another."""

    name: ClassVar[str] = "select_v1"

    class Params(StageParams):
        budget: int | None = Field(
            None,
            ge=0,
            description="Rows to keep; null: no limit (only similarity and per_group reject).",
        )
        score: str | None = Field(
            None,
            min_length=1,
            description="A numeric column, or a DuckDB expression over the record's columns "
            "(length(output), quality_score * 2) evaluated row by row; higher is taken first, "
            "NULL and NaN last. Null: stream order.",
        )
        max_similarity: float = Field(
            0.9,
            gt=0.0,
            le=1.0,
            description="τ: a candidate is taken only if its cosine to every taken row is below "
            "τ (scaled by diversity).",
        )
        diversity: float = Field(
            1.0,
            ge=0.0,
            le=1.0,
            description="d, trades score for diversity: the threshold is τ + (1 - d)(1 - τ). "
            "1: strict τ; 0.5 at τ = 0.9: 0.95; 0: no similarity check (pure top score).",
        )
        fields: list[TextField] = Field(
            default_factory=_default_fields,
            min_length=1,
            description="Fields embedded, joined by newlines; messages = the user turns.",
        )
        embedder: str = Field(
            "static",
            description="static (a model shipped in the wordllama wheel, extra [embed]) or a "
            "local sentence-transformers model folder.",
        )
        by: str | None = Field(
            None, min_length=1, description="Column whose values get their own budget, per_group."
        )
        per_group: int | None = Field(
            None, ge=0, description="Rows kept at most per value of `by` (null counts as a value)."
        )
        balance: list[str] = Field(
            default_factory=list,
            description="Take rows in rounds over cells, the next best row of every cell each "
            "round: 'clusters' (k-means clusters of the embedded requests; every row is "
            "embedded) and/or column names (category, source); a cell is one combination. "
            "[]: score order only.",
        )
        clusters: int = Field(
            64, ge=1, le=4096, description="k of the k-means clusters balanced over."
        )
        bands: int = Field(40, ge=1, le=256, description="LSH bands (random-hyperplane keys).")
        rows: int | None = Field(
            None,
            ge=1,
            le=62,
            description="Bits per band; null: the most (up to 16) that still give a pair at the "
            "threshold a 0.99 chance to share a key in some band.",
        )
        seed: int = Field(1, ge=0, lt=2**32, description="Seed of the hyperplanes.")

        @field_validator("balance", mode="before")
        @classmethod
        def _one_key(cls, value: Any) -> Any:
            return [value] if isinstance(value, str) else value

        @model_validator(mode="after")
        def _groups(self) -> Select.Params:
            if (self.by is None) != (self.per_group is None):
                raise ValueError("by and per_group go together: give both or neither")
            return self

    params: Params

    def __init__(self, params: StageParams | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._cache_dir: Path | None = None
        self._reset()

    def use_cache_dir(self, folder: Path) -> None:
        self._cache_dir = folder / "embeddings"

    def warms_cache(self) -> bool:
        # Only balance over clusters embeds every row; otherwise rows are embedded as the greedy
        # reaches them, and most are never embedded.
        return self._cache_dir is not None and CLUSTERS in self.params.balance

    def uses_gpu(self) -> bool:
        return self.embeds and runs_on_gpu(self.params.embedder)

    def warm_cache(self, table: pa.Table) -> None:
        if self.warms_cache():
            assert self._cache_dir is not None
            VectorCache(self._cache_dir, load_embedder(self.params.embedder)).embed(
                self.text(table).to_pylist()
            )

    @property
    def threshold(self) -> float:
        """The cosine at which a candidate is too close to a taken row: τ + (1 - d)(1 - τ)
        (rounded to 12 decimals: 0.85, not 0.8500000000000001)."""
        p = self.params
        return round(p.max_similarity + (1.0 - p.diversity) * (1.0 - p.max_similarity), 12)

    @property
    def checks_similarity(self) -> bool:
        return self.params.diversity > 0

    @property
    def bits(self) -> int:
        """Bits per band: ``rows``, or the most up to 16 with recall ≥ 0.99 at the threshold."""
        p = self.params
        if p.rows is not None:
            return p.rows
        fitting = [
            r for r in range(1, MAX_BITS + 1) if _collision(self.threshold, p.bands, r) >= RECALL
        ]
        return max(fitting, default=1)

    @property
    def embeds(self) -> bool:
        return self.checks_similarity or CLUSTERS in self.params.balance

    def prepare(self) -> None:
        if self.embeds:  # diversity 0 without balance embeds nothing
            load_embedder(self.params.embedder)

    def check_recipe(self, sources: Sequence[str]) -> None:
        """A score expression must parse as one deterministic per-row expression."""
        if self.params.score is not None:
            with _connect() as con:
                _check_expression(con, self.params.score)

    def _reset(self) -> None:
        self._n = 0
        self._apply_offset = 0
        self._fitted = False
        self._ids = pa.chunked_array([], pa.string())
        self._cause = np.zeros(0, np.int8)
        self._select_rank = np.zeros(0, np.int64)
        self._score_rank = np.zeros(0, np.int64)
        self._nearest = np.zeros(0, np.int64)
        self._cosine = np.zeros(0, np.float64)
        self._group_names: list[str] = []
        self._group_of = np.zeros(0, np.int64)
        self._info: dict[str, Any] = {}

    def text(self, table: pa.Table) -> pa.Array:
        """The request embedded: ``fields`` joined by newlines, trimmed (an empty input adds
        nothing)."""
        joined = record_text(
            table, self.params.fields, separator="\n", roles=USER_ROLES, prefer_messages=True
        )
        return pc.utf8_trim_whitespace(pc.fill_null(joined, ""))

    def fit(self, batches: Iterable[pa.Table]) -> None:
        """Read ids, request texts, scores and groups of every batch (stream order), then take
        rows greedily, embedding them as their turn comes (rows never reached are not embedded)."""
        self._reset()
        p = self.params
        started = time.perf_counter()
        texts: list[pa.Array] = []
        scores: list[np.ndarray] = []
        groups: list[pa.Array] = []
        balance_columns: dict[str, list[pa.Array]] = {k: [] for k in p.balance if k != CLUSTERS}
        ids: list[pa.Array] = []
        with _connect() as con:
            if p.score is not None:
                _check_expression(con, p.score)
            for batch in batches:
                ids.append(batch.column("id").combine_chunks())
                if self.embeds:
                    texts.append(self.text(batch))
                if p.score is not None:
                    scores.append(_score(con, batch, p.score))
                if p.by is not None:
                    groups.append(_group_column(batch, p.by))
                for key in p.balance:
                    if key != CLUSTERS:
                        balance_columns[key].append(_group_column(batch, key, "balance"))
                self._n += batch.num_rows
        n = self._n
        self._ids = pa.chunked_array(ids, pa.string())
        score = np.concatenate(scores) if scores else np.zeros(n, np.float64)
        order = _score_order(score)
        group_of = np.zeros(n, np.int64)
        if p.by is not None:
            encoded = pc.dictionary_encode(
                pa.chunked_array(groups, pa.string()).combine_chunks()
                if groups
                else pa.array([], pa.string())
            )
            group_of = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
            self._group_names = [str(g) for g in encoded.dictionary.to_pylist()]
        self._group_of = group_of
        read = time.perf_counter()
        embedder = load_embedder(p.embedder) if self.embeds else None
        embed: Callable[[Sequence[str]], np.ndarray] | None = None
        cache: VectorCache | None = None
        if embedder is not None:
            embed, cache = embedding_function(embedder, self._cache_dir)
        request = pa.chunked_array(texts, pa.string()) if texts else None
        vectors: np.ndarray | None = None
        cluster_info: dict[str, Any] = {}
        if p.balance and n:
            cells = np.zeros(n, np.int64)
            for key in p.balance:
                if key == CLUSTERS:
                    assert embed is not None and embedder is not None and request is not None
                    vectors = _embed_all(embed, embedder.dimension, request)
                    labels = cluster_labels(vectors, p.clusters)
                    sizes = np.bincount(labels[labels >= 0], minlength=1)
                    cluster_info = {
                        "clusters": int((sizes > 0).sum()),
                        "largest_cluster": int(sizes.max()),
                    }
                else:
                    labels = _codes(pa.chunked_array(balance_columns[key], pa.string()))
                cells = np.unique(np.stack([cells, labels], axis=1), axis=0, return_inverse=True)[
                    1
                ].reshape(-1)
            order = _round_robin(order, cells)
            cluster_info["cells"] = int(cells.max()) + 1 if n else 0
        embedded_all = time.perf_counter() - read
        counts = self._greedy(
            order,
            group_of,
            embedder if self.checks_similarity else None,
            embed,
            request,
            vectors,
        )
        if vectors is not None:
            counts["embedded"] = n
            counts["seconds_embed"] += embedded_all
        selected = int((self._cause == _TAKEN).sum())
        self._info = {
            "budget": p.budget,
            "score": p.score,
            "score_null": int(np.isnan(score).sum()),
            "by": p.by,
            "per_group": p.per_group,
            "max_similarity": p.max_similarity,
            "diversity": p.diversity,
            "threshold": self.threshold if self.checks_similarity else None,
            "docs": n,
            "selected": selected,
            "rejected": {
                "similar": int((self._cause == _SIMILAR).sum()),
                "budget": int((self._cause == _BUDGET).sum()),
                "group_budget": int((self._cause == _GROUP).sum()),
            },
            "balance": p.balance,
            **cluster_info,
            "bands": p.bands,
            "rows": self.bits,
            "p_candidate_at_threshold": round(_collision(self.threshold, p.bands, self.bits), 4)
            if self.checks_similarity
            else None,
            "embedded": counts["embedded"],
            "cosines_computed": counts["compared"],
            "seconds_read": round(read - started, 3),
            "seconds_embed": round(counts["seconds_embed"], 3),
            "seconds_select": round(time.perf_counter() - read - counts["seconds_embed"], 3),
        }
        if cache is not None:
            self._info["embedding_cache"] = cache.info
        if embedder is not None:
            self._info.update(
                {
                    "embedder": embedder.name,
                    "model": embedder.model,
                    "dimension": embedder.dimension,
                    "package": embedder.package,
                }
            )
        else:
            self._info["embedder"] = None  # diversity 0: nothing embedded
        if p.by is not None:
            taken = np.bincount(
                group_of[self._cause == _TAKEN], minlength=len(self._group_names)
            ).tolist()
            self._info["groups"] = len(self._group_names)
            self._info["groups_full"] = sum(t >= (p.per_group or 0) for t in taken)
            if len(self._group_names) <= 100:
                self._info["selected_per_group"] = dict(
                    sorted(zip(self._group_names, taken, strict=True))
                )
        self._fitted = True

    def _greedy(
        self,
        order: np.ndarray,
        group_of: np.ndarray,
        embedder: Embedder | None,
        embed: Callable[[Sequence[str]], np.ndarray] | None,
        request: pa.ChunkedArray | None,
        embedded: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Take rows in ``order``, filling the per-row state. The rows are embedded a chunk at a
        time as the greedy reaches them (a row's vector does not depend on its chunk), and only
        the taken rows' vectors are kept, in the order they were taken."""
        p = self.params
        n = self._n
        budget = n if p.budget is None else min(p.budget, n)
        per_group = n if p.per_group is None else p.per_group
        threshold = self.threshold
        cause = np.full(n, _BUDGET, np.int8)
        select_rank = np.zeros(n, np.int64)
        score_rank = np.empty(n, np.int64)
        score_rank[order] = np.arange(1, n + 1)
        nearest = np.full(n, -1, np.int64)
        similarity = np.zeros(n, np.float64)
        group_taken = np.zeros(int(group_of.max()) + 1 if n else 0, np.int64)
        check = embedder is not None and request is not None
        dimension = embedder.dimension if embedder is not None else 0
        # Taken rows, in take order: row index, int8 vector, norm. Buckets hold take positions.
        taken_rows = np.zeros(budget, np.int64)
        taken_vectors = np.zeros((budget if check else 0, dimension), np.int8)
        taken_norms = np.zeros(budget, np.float64)
        buckets: list[dict[int, list[int]]] = [{} for _ in range(p.bands)]
        taken = 0
        counts: dict[str, Any] = {"embedded": 0, "compared": 0, "seconds_embed": 0.0}
        start = 0
        while start < n and taken < budget:
            # About as many rows as the budget still needs (more come if some are rejected).
            rows = order[start : start + min(_CHUNK, max(_MIN_CHUNK, budget - taken))]
            start += len(rows)
            # Rows of a group already full are not embedded.
            is_open = group_taken[group_of[rows]] < per_group
            open_rows = rows[is_open]
            slot = np.full(len(rows), -1, np.int64)
            if check and len(open_rows):
                assert embedder is not None and request is not None
                if embedded is not None:  # balance: every row was embedded to cluster it
                    vectors = embedded[open_rows]
                else:
                    embedding = time.perf_counter()
                    assert embed is not None
                    texts = request.take(pa.array(open_rows, pa.int64())).to_pylist()
                    vectors = embed(texts)
                    counts["seconds_embed"] += time.perf_counter() - embedding
                    counts["embedded"] += len(open_rows)
                norms = np.sqrt((vectors.astype(np.int32) ** 2).sum(axis=1).astype(np.float64))
                keys = simhash_bands(vectors, p.bands, self.bits, p.seed).T.tolist()
                slot[is_open] = np.arange(len(open_rows))
            for offset, row in enumerate(rows.tolist()):
                if taken >= budget:
                    break
                group = int(group_of[row])
                if group_taken[group] >= per_group:
                    cause[row] = _GROUP
                    continue
                if check and norms[int(slot[offset])] > 0:
                    # (A row with no text is at cosine 0 to every row: never checked.)
                    here = int(slot[offset])
                    band_keys = keys[here]
                    found: set[int] = set()
                    for band, key in enumerate(band_keys):
                        hit = buckets[band].get(key)
                        if hit is not None:
                            found.update(hit)
                    if found:
                        near = np.fromiter(found, np.int64, len(found))
                        counts["compared"] += len(near)
                        dots = (
                            taken_vectors[near].astype(np.int32) @ vectors[here].astype(np.int32)
                        ).astype(np.float64)
                        denominator = taken_norms[near] * norms[here]
                        cosines = np.divide(
                            dots, denominator, out=np.zeros_like(dots), where=denominator > 0
                        )
                        best = cosines.max()
                        if best >= threshold:
                            # The closest taken row; among equals, the one taken first.
                            cause[row] = _SIMILAR
                            nearest[row] = taken_rows[near[cosines == best].min()]
                            similarity[row] = best
                            continue
                    for band, key in enumerate(band_keys):
                        buckets[band].setdefault(key, []).append(taken)
                    taken_vectors[taken] = vectors[here]
                    taken_norms[taken] = norms[here]
                taken_rows[taken] = row
                taken += 1
                cause[row] = _TAKEN
                select_rank[row] = taken
                group_taken[group] += 1
        self._cause, self._select_rank, self._score_rank = cause, select_rank, score_rank
        self._nearest, self._cosine = nearest, similarity
        return counts

    def apply(self, table: pa.Table) -> StageResult:
        """Split a batch by the selection made in ``fit``; batches must come in fit order."""
        lo, hi = fitted_rows("select", self._fitted, table, self._ids, self._apply_offset)
        n = table.num_rows
        self._apply_offset = hi
        cause = self._cause[lo:hi]
        keep = cause == _TAKEN
        detail: list[str | None] = [None] * n
        duplicate_of: list[str | None] = [None] * n
        similar = np.flatnonzero(cause == _SIMILAR)
        if len(similar):
            nearest_ids = self._ids.take(pa.array(self._nearest[lo:hi][similar])).to_pylist()
            for index, nearest_id, cos in zip(
                similar.tolist(), nearest_ids, self._cosine[lo:hi][similar].tolist(), strict=True
            ):
                duplicate_of[index] = nearest_id
                detail[index] = _json(
                    {"nearest": nearest_id, "cosine": round(cos, 4), "threshold": self.threshold}
                )
        ranks = self._score_rank[lo:hi]
        for index in np.flatnonzero(cause == _BUDGET).tolist():
            detail[index] = _json({"budget": self.params.budget, "rank": int(ranks[index])})
        for index in np.flatnonzero(cause == _GROUP).tolist():
            detail[index] = _json(
                {
                    "by": self.params.by,
                    "group": self._group_names[int(self._group_of[lo + index])],
                    "per_group": self.params.per_group,
                    "rank": int(ranks[index]),
                }
            )
        keep_array = pa.array(keep, pa.bool_())
        decision = Decision(
            keep=keep_array,
            reason=pc.if_else(keep_array, pa.scalar(None, pa.string()), REASON),
            detail=pa.array(detail, pa.string()),
            duplicate_of=pa.array(duplicate_of, pa.string()),
            scores={RANK_COLUMN: pa.array(self._select_rank[lo:hi], pa.int64())},
        )
        return apply_decision(table, decision, self.name)

    def manifest_info(self) -> dict[str, Any]:
        return dict(self._info)


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _codes(values: pa.ChunkedArray) -> np.ndarray:
    """Integer codes of a column's values (null is a value of its own), in first-seen order."""
    encoded = pc.dictionary_encode(
        values.combine_chunks() if len(values) else pa.array([], pa.string())
    )
    codes = pc.fill_null(encoded.indices, -1)
    return np.asarray(codes.to_numpy(zero_copy_only=False), np.int64)


def _embed_all(
    embed: Callable[[Sequence[str]], np.ndarray], dimension: int, request: pa.ChunkedArray
) -> np.ndarray:
    """int8 vectors of every request, in stream order, embedded a chunk at a time."""
    n = len(request)
    vectors = np.zeros((n, dimension), np.int8)
    for start in range(0, n, _CHUNK):
        texts = request.slice(start, _CHUNK).to_pylist()
        vectors[start : start + len(texts)] = embed(texts)
    return vectors


def _round_robin(order: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``order`` (rows by score) rearranged into rounds: each round takes the next best row of
    every cluster, the rounds' rows in score order (rows without text, label -1, form one more
    cluster)."""
    place = np.empty(len(order), np.int64)
    place[order] = np.arange(len(order))
    cluster = labels[order]
    # Rank of each row within its cluster, in score order.
    by_cluster = np.lexsort((np.arange(len(order)), cluster))
    starts = np.r_[0, np.flatnonzero(np.diff(cluster[by_cluster])) + 1]
    sizes = np.diff(np.r_[starts, len(order)])
    within = np.arange(len(order)) - np.repeat(starts, sizes)
    round_of = np.empty(len(order), np.int64)
    round_of[by_cluster] = within
    return order[np.lexsort((place[order], round_of))]


def _score_order(score: np.ndarray) -> np.ndarray:
    """Row indices by score descending, NaN (NULL) last, ties in stream order."""
    missing = np.isnan(score)
    key = np.where(missing, 0.0, -score)
    return np.lexsort((np.arange(len(score)), key, missing))


def _group_column(batch: pa.Table, by: str, param: str = "by") -> pa.Array:
    if by not in batch.column_names:
        raise StageError(
            f"select: {param}: {by!r} is not a column of the data; columns: "
            f"{', '.join(batch.column_names)}"
        )
    column = batch.column(by).combine_chunks()
    try:
        text = column.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise StageError(f"select: {param}: column {by!r} cannot be read as text") from None
    return pc.fill_null(text, "(null)")


# --- the score: a column or a DuckDB expression ----------------------------------------------


class _Connection:
    """An in-memory DuckDB that can read no file, load no extension and change no setting."""

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        self.con = duckdb.connect()
        for statement in (
            "SET enable_external_access = false",
            "SET autoinstall_known_extensions = false",
            "SET autoload_known_extensions = false",
            "SET lock_configuration = true",
        ):
            self.con.execute(statement)
        return self.con

    def __exit__(self, *exc: object) -> None:
        self.con.close()


def _connect() -> _Connection:
    return _Connection()


def _statement(expression: str) -> str:
    return f"SELECT CAST(({expression}) AS DOUBLE) AS score, {_ROW} FROM {_TABLE}"


def _check_expression(con: duckdb.DuckDBPyConnection, expression: str) -> None:
    """Refuse what would make a score depend on the batch or the run: not one expression,
    windows, subqueries, aggregates, and functions whose value changes (random(), now())."""
    if _IDENTIFIER.fullmatch(expression):
        return  # a column name
    prefix = f"select: score {expression!r}"
    row = con.execute("SELECT json_serialize_sql($1)", [_statement(expression)]).fetchone()
    parsed = json.loads(str(row[0])) if row else {}
    if parsed.get("error"):
        raise StageError(f"{prefix} is not a DuckDB expression: {parsed.get('error_message')}")
    statements = parsed.get("statements", [])
    node = statements[0]["node"] if len(statements) == 1 else {}
    source = node.get("from_table") or {}
    if not (
        node.get("type") == "SELECT_NODE"
        and len(node.get("select_list", [])) == 2
        and source.get("type") == "BASE_TABLE"
        and source.get("table_name") == _TABLE
        and not node.get("modifiers")
        and not node.get("cte_map", {}).get("map")
        and node.get("where_clause") is None
        and not node.get("group_expressions")
        and node.get("having") is None
        and node.get("qualify") is None
        and node.get("sample") is None
    ):
        raise StageError(f"{prefix} must be one expression over the record's columns")
    aggregates, changing = _function_kinds(con)
    for item in _walk(node["select_list"][0]):
        kind = item.get("class")
        if kind in ("WINDOW", "SUBQUERY"):
            raise StageError(
                f"{prefix}: {'window functions' if kind == 'WINDOW' else 'subqueries'} are "
                "refused (a score is computed row by row, so that it does not depend on how the "
                "data is split into batches)"
            )
        name = str(item.get("function_name", "")).lower()
        if kind in ("FUNCTION", "AGGREGATE") and name in aggregates:
            raise StageError(f"{prefix}: aggregate {name}() is refused (a score is per row)")
        if kind == "FUNCTION" and name in changing:
            raise StageError(f"{prefix}: {name}() changes from run to run (select is reproducible)")


def _function_kinds(con: duckdb.DuckDBPyConnection) -> tuple[set[str], set[str]]:
    """(aggregate function names with no scalar form, scalar names with no stable form)."""
    rows = con.execute(
        "SELECT function_name, "
        "bool_or(function_type = 'aggregate') AND NOT bool_or(function_type = 'scalar'), "
        "bool_or(function_type = 'scalar') AND NOT bool_or(function_type = 'scalar' "
        "AND stability = 'CONSISTENT') "
        "FROM duckdb_functions() GROUP BY function_name"
    ).fetchall()
    aggregates = {str(name).lower() for name, aggregate, _ in rows if aggregate}
    changing = {str(name).lower() for name, _, volatile in rows if volatile}
    return aggregates, changing


def _walk(value: Any) -> Iterable[dict[str, Any]]:
    if isinstance(value, dict):
        if "class" in value:
            yield value
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def _score(con: duckdb.DuckDBPyConnection, batch: pa.Table, expression: str) -> np.ndarray:
    """float64 score per row, NaN where NULL: a numeric column, else the expression."""
    n = batch.num_rows
    if expression in batch.column_names:
        column = batch.column(expression).combine_chunks()
        if not (
            pa.types.is_integer(column.type)
            or pa.types.is_floating(column.type)
            or pa.types.is_decimal(column.type)
            or pa.types.is_boolean(column.type)
        ):
            raise StageError(
                f"select: score column {expression!r} is {column.type}, not numeric "
                "(write an expression, e.g. length(output))"
            )
        values = pc.cast(column, pa.float64())
        return np.asarray(pc.fill_null(values, float("nan")).to_numpy(zero_copy_only=False))
    out = np.full(n, np.nan, np.float64)
    if n == 0:
        return out
    con.register(_TABLE, batch.append_column(_ROW, pa.array(np.arange(n), pa.int64())))
    try:
        relation = con.sql(_statement(expression))
        # duckdb 2 renamed arrow() -> to_arrow_table().
        result = (getattr(relation, "to_arrow_table", None) or relation.arrow)()
        if isinstance(result, pa.RecordBatchReader):
            result = result.read_all()
    except duckdb.Error as exc:
        raise StageError(f"select: score {expression!r} failed: {exc}") from None
    finally:
        con.unregister(_TABLE)
    rows = result.column(_ROW).to_numpy()
    if result.num_rows != n or len(np.unique(rows)) != n:
        raise StageError(f"select: score {expression!r} must give one value per row")
    values = pc.fill_null(result.column("score"), float("nan")).to_numpy()
    out[rows] = values
    return out


def _collision(threshold: float, bands: int, rows: int) -> float:
    """Chance that a pair at cosine ``threshold`` shares a key in at least one band."""
    bit = 1 - math.acos(max(-1.0, min(1.0, threshold))) / math.pi
    return 1 - (1 - bit**rows) ** bands
