"""The ``semantic_dedup`` stage: drop requests that mean the same thing in other words.

Recipe::

    - semantic_dedup: {}                                  # instructions at cosine >= 0.95
    - semantic_dedup: {threshold: 0.95, input_threshold: null, same_names: false}

"How can I be a good geologist?" and "What should I do to be a great geologist?" share no 5-gram,
so MinHash cannot see them; their embeddings can. Each record's text (``fields``, joined by
newlines) is embedded (:mod:`curate.lib.embed`: a static model shipped in a wheel by default,
nothing downloaded), quantized to int8 so every similarity is exactly reproducible, and hashed
into ``bands`` random-hyperplane LSH keys of ``rows`` bits: records sharing a key in any band are
candidates, and every candidate pair is verified by its cosine. Pairs at or above ``threshold``
form clusters; the ``keep`` rules of ``minhash_dedup`` pick the keeper, which removes the members
that are duplicates *of it* (the next best remaining member keeps the rest). Memory: 256 bytes of
int8 vector plus ``bands`` keys per record, never an n × n matrix.

Rejects: ``reason="semantic_duplicate"``, ``duplicate_of`` = the keeper's id, ``detail`` = JSON with
the cosine. Kept rows get ``semantic_cluster_size``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.lib.embed import (
    band_pairs,
    cosine,
    load_embedder,
    runs_on_gpu,
    simhash_bands,
    vector_norms,
)
from curate.lib.embed.cache import VectorCache, embedding_function
from curate.lib.minhash.keeper import KeeperKeys, KeepRule, choose_keepers
from curate.lib.minhash.lsh import connected_components
from curate.lib.minhash.verify import Match
from curate.stages.base import (
    Decision,
    GlobalStage,
    StageParams,
    StageResult,
    apply_decision,
    fitted_rows,
)
from curate.stages.dedup.minhash import names_and_numbers
from curate.util.minimal_pairs import contrast, same_question
from curate.util.text import PROMPT_ROLES, record_text

KeyField = Literal["instruction", "output", "messages"]
CLUSTER_SIZE_COLUMN = "semantic_cluster_size"


def _default_fields() -> list[KeyField]:
    return ["instruction"]


def _default_keep() -> list[KeepRule]:
    return ["source", "quality", "longer_output", "smallest_id"]


class SemanticDedup(GlobalStage):
    """Drop records whose embedding's cosine to a kept record reaches ``threshold``."""

    name: ClassVar[str] = "semantic_dedup_v1"

    class Params(StageParams):
        threshold: float = Field(
            0.95, gt=0.0, le=1.0, description="Cosine similarity that makes two records duplicates."
        )
        fields: list[KeyField] = Field(
            default_factory=_default_fields,
            min_length=1,
            description="Fields of the request embedded and compared, joined by newlines; "
            "messages = the system/user turns.",
        )
        input_threshold: float | None = Field(
            0.9,
            gt=0.0,
            le=1.0,
            description="Also require the inputs to reach this cosine, or both to be empty: "
            "different questions about one passage, or one question about two passages, stay "
            "apart; null ignores the input.",
        )
        minimal_pairs: bool = Field(
            True,
            description="Keep minimal pairs apart: instructions that differ in their numbers, a "
            "negation, a word and its opposite (graduate / undergraduate), a scope word (before, "
            "only, ...), the question (how many) or only in word order.",
        )
        same_names: bool = Field(
            True,
            description="Also require the same names and numbers in the instructions "
            "(capitalized words after the first, digits): 'What is GitHub?' is not 'What is "
            "GitHub Actions?', 'Convert 3 hours' is not 'Convert 120 minutes'.",
        )
        embedder: str = Field(
            "static",
            description="static (a model shipped in the wordllama wheel, extra [embed]) or a "
            "local sentence-transformers model folder.",
        )
        bands: int = Field(40, ge=1, le=256, description="LSH bands (random-hyperplane keys).")
        rows: int = Field(16, ge=1, le=62, description="Bits per band.")
        seed: int = Field(1, ge=0, lt=2**32, description="Seed of the hyperplanes.")
        keep: list[KeepRule] = Field(
            default_factory=_default_keep,
            min_length=1,
            description="Which member of a cluster stays (as minhash_dedup).",
        )
        source_priority: list[str] = Field(
            default_factory=list, description="Sources ranked first by the `source` keep rule."
        )
        quality_column: str = Field(
            "quality_score", description="Numeric column the `quality` keep rule ranks by."
        )
        cross_source: bool = Field(True, description="Compare records of different sources.")
        min_chars: int = Field(
            1, ge=0, description="Records with less text than this are never duplicates."
        )

    params: Params

    def __init__(self, params: StageParams | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._cache_dir: Path | None = None
        self._reset()

    def prepare(self) -> None:
        load_embedder(self.params.embedder)

    def _reset(self) -> None:
        self._vectors: list[np.ndarray] = []
        self._has_text: list[np.ndarray] = []
        self._ids: list[pa.Array] = []
        self._keys = KeeperKeys(self.params.source_priority, self.params.quality_column)
        self._n = 0
        self._apply_offset = 0
        self._fitted = False
        self._dup_of = np.zeros(0, np.int64)
        self._similarity = np.zeros(0, np.float64)
        self._cluster_size = np.zeros(0, np.int64)
        self._id_column = pa.chunked_array([], pa.string())
        self._info: dict[str, Any] = {}

    def text(self, table: pa.Table) -> pa.Array:
        return record_text(
            table, self.params.fields, separator="\n", roles=PROMPT_ROLES, prefer_messages=True
        )

    def fit(self, batches: Iterable[pa.Table]) -> None:
        """Embed every batch (stream order), then candidates, verification, clusters, keepers."""
        self._reset()
        p = self.params
        embedder = load_embedder(p.embedder)
        embed, cache = embedding_function(embedder, self._cache_dir)
        started = time.perf_counter()
        inputs: list[np.ndarray] = []
        input_rows: list[np.ndarray] = []
        names: list[pa.Array] = []
        requests: list[pa.Array] = []
        for batch in batches:
            texts = pc.fill_null(self.text(batch), "")
            lengths = pc.utf8_length(pc.utf8_trim_whitespace(texts)).to_numpy(zero_copy_only=False)
            self._vectors.append(embed(texts.to_pylist()))
            self._has_text.append(lengths >= max(p.min_chars, 1))
            if p.input_threshold is not None and "input" in batch.column_names:
                given = pc.fill_null(batch.column("input").combine_chunks(), "")
                present = np.flatnonzero(
                    pc.utf8_length(pc.utf8_trim_whitespace(given)).to_numpy(zero_copy_only=False)
                )
                inputs.append(embed(given.take(present).to_pylist()))
                input_rows.append(present + self._n)
            if p.same_names:
                names.append(_names_key(batch))
            if p.minimal_pairs:
                requests.append(texts)
            self._ids.append(batch.column("id").combine_chunks())
            self._keys.add_batch(batch)
            self._n += batch.num_rows
        vectors = (
            np.concatenate(self._vectors)
            if self._vectors
            else np.zeros((0, embedder.dimension), np.int8)
        )
        has_text = np.concatenate(self._has_text) if self._has_text else np.zeros(0, bool)
        self._vectors, self._has_text = [], []
        self._id_column = pa.chunked_array(self._ids, pa.string())
        embedded = time.perf_counter() - started
        checks = _PairChecks(self._n, embedder.dimension)
        if p.input_threshold is not None:
            checks.add_inputs(inputs, input_rows, p.input_threshold)
        if p.same_names:
            checks.add_names(names)
        if p.minimal_pairs:
            checks.texts = pa.chunked_array(requests, pa.string()) if requests else None
        self._decide(vectors, has_text, checks)
        self._info.update(
            {
                "seconds_embed": round(embedded, 3),
                "embedder": embedder.name,
                "model": embedder.model,
                "dimension": embedder.dimension,
                "package": embedder.package,
            }
        )
        if cache is not None:
            self._info["embedding_cache"] = cache.info
        self._fitted = True

    def use_cache_dir(self, folder: Path) -> None:
        self._cache_dir = folder / "embeddings"

    def warms_cache(self) -> bool:
        return self._cache_dir is not None

    def uses_gpu(self) -> bool:
        return runs_on_gpu(self.params.embedder)

    def warm_cache(self, table: pa.Table) -> None:
        """Embed one shard's requests (and inputs, with ``input_threshold``) into the cache."""
        if self._cache_dir is None:
            return
        cache = VectorCache(self._cache_dir, load_embedder(self.params.embedder))
        cache.embed(pc.fill_null(self.text(table), "").to_pylist())
        if self.params.input_threshold is not None and "input" in table.column_names:
            given = pc.fill_null(table.column("input").combine_chunks(), "")
            present = np.flatnonzero(
                pc.utf8_length(pc.utf8_trim_whitespace(given)).to_numpy(zero_copy_only=False)
            )
            cache.embed(given.take(present).to_pylist())

    def _decide(self, vectors: np.ndarray, has_text: np.ndarray, checks: _PairChecks) -> None:
        p = self.params
        n = self._n
        started = time.perf_counter()
        docs = np.flatnonzero(has_text)
        keys = simhash_bands(vectors[docs], p.bands, p.rows, p.seed)
        norms = vector_norms(vectors)
        hashed = time.perf_counter()
        source = self._keys.source_codes() if not p.cross_source else None
        # One band at a time: its candidates are verified by their cosine and only the pairs at
        # the threshold are kept, so memory is one band's candidates, never all of them.
        candidates = 0
        found_u: list[np.ndarray] = []
        found_v: list[np.ndarray] = []
        for band_u, band_v in band_pairs(keys):
            a, b = docs[band_u], docs[band_v]
            if source is not None:
                same = source[a] == source[b]
                a, b = a[same], b[same]
            candidates += len(a)
            close = cosine(vectors, a, b, norms=norms) >= p.threshold
            found_u.append(a[close])
            found_v.append(b[close])
        codes = np.unique(
            np.concatenate([np.zeros(0, np.int64), *found_u]) * (n + 1)
            + np.concatenate([np.zeros(0, np.int64), *found_v])
        )
        u, v = codes // (n + 1), codes % (n + 1)
        agree = checks.agree(u, v) if len(u) else np.zeros(0, bool)
        labels = connected_components(n, u[agree], v[agree])
        checked = time.perf_counter()

        def match(a: np.ndarray, b: np.ndarray) -> Match:
            sims = cosine(vectors, a, b, norms=norms)
            ok = sims >= p.threshold
            ok[ok] = checks.agree(a[ok], b[ok])
            return ok, sims, np.ones(len(a), bool), {}

        def rank_order(members: np.ndarray, member_labels: np.ndarray) -> np.ndarray:
            return self._keys.rank_order(members, member_labels, p.keep, self._id_column, 0)

        keepers = choose_keepers(labels, rank_order, match, 0)
        self._dup_of, self._similarity = keepers.dup_of, keepers.similarity
        removed = self._dup_of >= 0
        self._cluster_size = np.ones(n, np.int64) + np.bincount(self._dup_of[removed], minlength=n)
        self._info = {
            "threshold": p.threshold,
            "bands": p.bands,
            "rows": p.rows,
            "p_candidate_at_threshold": round(_collision(p.threshold, p.bands, p.rows), 4),
            "docs": n,
            "docs_without_text": int(n - len(docs)),
            # Pairs compared, summed over bands (a pair found in several bands counts in each).
            "candidate_pairs": candidates,
            "verified_pairs": int(agree.sum()),
            "clusters": int(((~removed) & (self._cluster_size > 1)).sum()),
            "largest_cluster": int(self._cluster_size.max()) if n else 0,
            "removed": int(removed.sum()),
            "seconds_lsh": round(hashed - started, 3),
            "seconds_verify": round(checked - hashed, 3),
            "seconds_keepers": round(time.perf_counter() - checked, 3),
        }

    def apply(self, table: pa.Table) -> StageResult:
        """Split a batch by the clusters found in ``fit``; batches must come in fit order."""
        lo, hi = fitted_rows(
            "semantic_dedup", self._fitted, table, self._id_column, self._apply_offset
        )
        n = table.num_rows
        self._apply_offset = hi
        dup_of = self._dup_of[lo:hi]
        keep = dup_of < 0
        drop = np.flatnonzero(~keep)
        duplicate_of: list[str | None] = [None] * n
        detail: list[str | None] = [None] * n
        if len(drop):
            keeper_ids = self._id_column.take(pa.array(dup_of[drop])).to_pylist()
            for index, keeper_id, sim in zip(
                drop.tolist(), keeper_ids, self._similarity[lo:hi][drop].tolist(), strict=True
            ):
                duplicate_of[index] = keeper_id
                detail[index] = f'{{"cosine":{sim:.4f},"threshold":{self.params.threshold}}}'
        keep_array = pa.array(keep, pa.bool_())
        decision = Decision(
            keep=keep_array,
            reason=pc.if_else(keep_array, pa.scalar(None, pa.string()), "semantic_duplicate"),
            detail=pa.array(detail, pa.string()),
            duplicate_of=pa.array(duplicate_of, pa.string()),
            scores={CLUSTER_SIZE_COLUMN: pa.array(self._cluster_size[lo:hi], pa.int64())},
        )
        return apply_decision(table, decision, self.name)

    def manifest_info(self) -> dict[str, Any]:
        return dict(self._info)


class _PairChecks:
    """What else two records must share to be duplicates: similar inputs (or none), and the
    same names and numbers."""

    def __init__(self, n: int, dimension: int) -> None:
        self.n = n
        self.input_of = np.full(n, -1, np.int64)  # row of the record's input vector; -1: none
        self.inputs = np.zeros((0, dimension), np.int8)
        self.input_threshold: float | None = None
        self.names: np.ndarray | None = None
        self.texts: pa.ChunkedArray | None = None

    def add_inputs(
        self, vectors: list[np.ndarray], rows: list[np.ndarray], threshold: float
    ) -> None:
        if vectors:
            self.inputs = np.concatenate(vectors)
            present = np.concatenate(rows)
            self.input_of[present] = np.arange(len(present))
        self.input_threshold = threshold

    def add_names(self, keys: list[pa.Array]) -> None:
        joined = (
            pa.chunked_array(keys, pa.string()).combine_chunks()
            if keys
            else pa.array([], pa.string())
        )
        self.names = pc.dictionary_encode(joined).indices.to_numpy(zero_copy_only=False)

    def agree(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        ok = np.ones(len(u), bool)
        if self.names is not None and len(self.names) == self.n:
            ok &= self.names[u] == self.names[v]
        if self.input_threshold is not None:
            a, b = self.input_of[u], self.input_of[v]
            both = (a >= 0) & (b >= 0)
            ok &= (a >= 0) == (b >= 0)
            if both.any():
                sims = cosine(self.inputs, a[both], b[both])
                ok[both] &= sims >= self.input_threshold
                # One passage, two requests: the passage dominates the similarity of the whole,
                # so the requests must ask with the same words.
                if self.texts is not None and ok[both].any():
                    rows = np.flatnonzero(both & ok)
                    first = self.texts.take(pa.array(u[rows])).to_pylist()
                    second = self.texts.take(pa.array(v[rows])).to_pylist()
                    ok[rows] = [same_question(x, y) for x, y in zip(first, second, strict=True)]
        if self.texts is not None and ok.any():
            rows = np.flatnonzero(ok)
            first = self.texts.take(pa.array(u[rows])).to_pylist()
            second = self.texts.take(pa.array(v[rows])).to_pylist()
            ok[rows] = [contrast(x, y) is None for x, y in zip(first, second, strict=True)]
        return ok


def _names_key(batch: pa.Table) -> pa.Array:
    """The sorted set of an instruction's names and numbers, and of its input's numbers, one
    string per row ("convert 0101" is not "convert 110111")."""
    if "instruction" not in batch.column_names:
        return pa.array([""] * batch.num_rows, pa.string())
    words = pc.split_pattern_regex(
        pc.utf8_trim_whitespace(names_and_numbers(batch.column("instruction"))), r"\s+"
    ).to_pylist()
    if "input" in batch.column_names:
        given = pc.fill_null(batch.column("input").combine_chunks(), "")
        numbers = pc.extract_regex(given, r"(?P<n>\d[\d.,]*)")  # the first number is enough
        for row, found in enumerate(numbers.to_pylist()):
            if found and found["n"]:
                words[row] = [*words[row], "#" + found["n"]]
    return pa.array([" ".join(sorted(set(w) - {""})) for w in words], pa.string())


def _collision(threshold: float, bands: int, rows: int) -> float:
    """Chance that a pair at cosine ``threshold`` shares a key in at least one band."""
    bit = 1 - math.acos(max(-1.0, min(1.0, threshold))) / math.pi
    return 1 - (1 - bit**rows) ** bands
