"""Near-duplicate removal: MinHash signatures, LSH candidates, verified pairs, one keeper per cluster.

    signatures -> LSH band buckets -> candidate pairs -> verified pairs (similarity >= threshold)
    -> connected components -> keeper assignment -> kept rows + rejects

Signatures are bit-identical to ``datasketch.MinHash`` (see :mod:`curate.lib.minhash.signatures`). Bands and rows
are chosen for the threshold so that a pair exactly at the threshold becomes a candidate with
probability >= 0.995 (override with ``bands``/``rows``). Candidates are verified before they are
merged — exact Jaccard of the two shingle sets by default (``verify: estimate`` uses the
signatures instead and keeps no shingles) — so a chain of false matches cannot join unrelated
records.

Clusters (``clusters: keeper``, the default): within a connected component of verified pairs the
best record by the ``keep`` rule is a keeper and removes every member whose similarity *to it*
reaches the threshold; the best remaining member becomes the next keeper, and so on. So every
removed row is a near duplicate of its ``duplicate_of`` row, and no two kept rows are. In a chain
A~B~C where A and C are below the threshold, A (if it ranks first) removes B and C stays.
``clusters: connected`` removes every member of a component except its keeper (transitive: C is
removed too, and its ``detail`` shows its own, lower, similarity to A).

The similarity is over the joined ``fields``, so a long shared part dominates it: Dolly questions
about one passage, or NIv2 instances of one task definition, reach 0.8 with different questions
or inputs. ``field_thresholds: {instruction: 0.5, input: 0.5}`` also requires each field alone to
share that fraction of its words, which keeps those apart.

Incremental runs: ``store_signatures: true`` writes each kept row's signature (uint32 list column
``minhash``, parameters in the field metadata); ``reference: [earlier/data/*.parquet]`` in a later
run drops new rows that near-duplicate those rows (verified exactly when the earlier text is in the
file and still gives the stored signature, else by the signature estimate).

The algorithms live in :mod:`curate.lib.minhash` (``signatures``, ``lsh``, ``store``, ``verify``,
``keeper``, ``reference``); this module is the stage: its parameters, ``fit``/``apply`` and the
steps below.

Executors: ``fit`` can also run as three steps with the same result (``band_rows`` per shard,
``band_pairs`` per group of band partitions, ``fit_pairs`` once; see "fit in steps" below); the
Ray engine spreads the first two over its workers. ``reference``, ``cross_source: false`` and
``store_signatures`` need ``fit`` (``split_fallback()`` says why).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from curate.errors import StageError
from curate.lib.minhash.keeper import KeeperKeys, KeepRule, choose_keepers
from curate.lib.minhash.lsh import (
    band_bucket_pairs,
    band_keys,
    band_partition,
    candidate_pairs,
    choose_bands,
    collision_probability,
    connected_components,
    doc_bits_for,
    has_shingles,
    split_codes,
)
from curate.lib.minhash.reference import (
    HASH_NAME,
    SIGNATURE_COLUMN,
    read_reference,
    reference_files,
    signature_column,
    signature_metadata,
    with_field_metadata,
)
from curate.lib.minhash.signatures import MinHasher, Scheme, ShingleKind, document_text
from curate.lib.minhash.store import HashStore
from curate.lib.minhash.verify import Match, PairVerifier
from curate.stages.base import Decision, SplitFitStage, StageParams, StageResult, apply_decision
from curate.stages.dedup.exact import KeyField
from curate.util.minimal_pairs import contrast, contrast_with_material

CLUSTER_SIZE_COLUMN = "dup_cluster_size"
# Rows of fit's first step (see MinHashDedup.band_rows): group them by ``part`` to find buckets.
BAND_ROWS_SCHEMA = pa.schema(
    [("band", pa.uint16()), ("key", pa.uint64()), ("doc", pa.int64()), ("part", pa.uint32())]
)
# Distinct ``part`` values: many more than any executor has groups, so groups stay balanced.
BAND_PARTITIONS = 1 << 16


def _default_fields() -> list[KeyField]:
    return ["instruction", "input"]


def _default_keep() -> list[KeepRule]:
    return ["source", "quality", "longer_output", "smallest_id"]


class MinHashDedup(SplitFitStage):
    """Drop near duplicates (MinHash + LSH, verified); keep one record per cluster.

    Rejects: ``reason="near_duplicate"``, ``duplicate_of`` = the keeper's id, ``detail`` = JSON
    with the similarity to the keeper. Kept rows get ``dup_cluster_size`` (1 + rows removed as
    their duplicates).
    """

    name: ClassVar[str] = "minhash_dedup_v1"

    class Params(StageParams):
        threshold: float = Field(
            0.8, gt=0.0, le=1.0, description="Jaccard similarity that makes two records duplicates."
        )
        num_perm: int = Field(128, ge=2, le=1024, description="MinHash permutations.")
        seed: int = Field(1, ge=0, lt=2**32, description="Permutation seed (datasketch's `seed`).")
        scheme: Scheme = Field(
            "affine32", description="datasketch permutation scheme: affine32 (>= 2.0) or legacy."
        )
        shingle: ShingleKind = Field("word", description="Word or character n-grams.")
        ngram: int = Field(5, ge=1, le=64, description="Shingle size in words or characters.")
        fields: list[KeyField] = Field(
            default_factory=_default_fields,
            min_length=1,
            description="Fields the compared text is built from, joined by newlines; messages = every system/user turn.",
        )
        include_conversation: bool = Field(
            True, description="Multi-turn rows also compare every user turn (as exact_dedup)."
        )
        bands: int | None = Field(None, ge=1, description="LSH bands (default: for the threshold).")
        rows: int | None = Field(None, ge=1, description="Rows per band (default: for threshold).")
        verify: Literal["jaccard", "estimate"] = Field(
            "jaccard", description="Exact Jaccard of the shingle sets, or the signature estimate."
        )
        field_thresholds: dict[KeyField, float] = Field(
            default_factory=dict,
            description="Also require each listed field alone to reach this word-set Jaccard "
            "(e.g. {instruction: 0.5, input: 0.5} keeps different questions about one passage, "
            "or one task definition with different inputs, apart). Off by default.",
        )
        clusters: Literal["keeper", "connected"] = Field(
            "keeper", description="Remove only rows similar to their keeper, or whole components."
        )
        keep: list[KeepRule] = Field(
            default_factory=_default_keep,
            description="Keeper rule, in order; ties end in stream order.",
        )
        source_priority: list[str] = Field(
            default_factory=list,
            description="Sources listed first win the 'source' rule; unlisted ones tie after.",
        )
        quality_column: str = Field(
            "quality_score", description="Numeric column for the 'quality' rule (higher wins)."
        )
        cross_source: bool = Field(
            True, description="Records of different sources can be duplicates of each other."
        )
        store_signatures: bool = Field(
            False, description=f"Write kept rows' signatures as a uint32 list '{SIGNATURE_COLUMN}'."
        )
        reference: list[str] = Field(
            default_factory=list,
            description=f"Parquet files/globs with 'id' and '{SIGNATURE_COLUMN}' from an earlier "
            "run (store_signatures: true): rows near-duplicating them are dropped.",
        )

        @model_validator(mode="after")
        def _check_bands(self) -> MinHashDedup.Params:
            for name, value in self.field_thresholds.items():
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"field_thresholds.{name} must be in [0, 1] (got {value})")
            used = (self.bands or 1) * (self.rows or 1)
            if used > self.num_perm:
                raise ValueError(
                    f"bands * rows must be <= num_perm ({self.bands} * {self.rows} > {self.num_perm})"
                )
            return self

    params: Params

    def __init__(self, params: StageParams | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._reset()

    # ------------------------------------------------------------------ configuration

    def hasher(self) -> MinHasher:
        p = self.params
        return MinHasher(
            num_perm=p.num_perm, seed=p.seed, scheme=p.scheme, shingle=p.shingle, ngram=p.ngram
        )

    def banding(self) -> tuple[int, int]:
        """``(bands, rows)`` used for LSH."""
        p = self.params
        if p.bands is not None and p.rows is not None:
            return p.bands, p.rows
        if p.rows is not None:
            return p.num_perm // p.rows, p.rows
        if p.bands is not None:
            return p.bands, p.num_perm // p.bands
        return choose_bands(p.threshold, p.num_perm)

    def _text_fields(self) -> list[str]:
        fields: list[str] = list(self.params.fields)
        if self.params.include_conversation and "messages" not in fields:
            fields.append("messages")
        return fields

    def _signature_metadata(self) -> dict[str, str]:
        return signature_metadata(self.hasher(), self._text_fields())

    # ------------------------------------------------------------------ fit

    def _reset(self) -> None:
        # Per document, in stream order (reference rows first): signature chunks and rank keys.
        self._sigs: list[np.ndarray] = []
        self._chunk_starts = np.zeros(1, np.int64)
        # fit_pairs keeps the signatures of candidate documents only: these, in ``_sigs`` order.
        self._sig_docs: np.ndarray | None = None
        self._shingles = HashStore()  # for exact Jaccard
        self._field_words: dict[str, HashStore] = {}  # per field_thresholds field: word sets
        self._ids: list[pa.Array] = []
        self._keys = self._keeper_keys()  # what the keep rules compare
        self._n_ref = 0
        self._n = 0
        # Decisions, filled by _decide.
        self._apply_offset = 0
        self._fitted = False
        self._dup_of = np.zeros(0, np.int64)
        self._similarity = np.zeros(0, np.float64)
        self._field_similarity: dict[str, np.ndarray] = {}
        self._exactly = np.zeros(0, bool)
        self._cluster_size = np.zeros(0, np.int64)
        self._id_column = pa.chunked_array([], pa.string())
        self._info: dict[str, Any] = {}

    def fit(self, batches: Iterable[pa.Table]) -> None:
        """Signatures of every batch (stream order), then candidates, verification and clusters."""
        self._reset()
        clock = _Clock()
        if self.params.reference:
            self._add_reference()
        hasher = self.hasher()
        for batch in batches:
            self._add_batch(batch, hasher)
        clock.lap("signatures")
        self._cluster(clock)
        self._fitted = True

    # ------------------------------------------------------------------ fit in steps
    #
    # ``fit`` split into steps an executor can spread over workers (the Ray engine does; no step
    # knows who runs it). The decisions are those of ``fit`` on the same batches, bit for bit:
    #
    # 1. ``band_rows(batch, offset)``, per shard: signatures -> one row per (band, document with
    #    shingles): band, key, doc (global number = offset + row) and part (a hash of the band and
    #    the key's top bits).
    # 2. ``band_pairs(rows, max_doc)``, per group of parts: candidate pairs from the rows sharing
    #    a bucket. A group must hold *every* row of each part it holds; ``max_doc`` is the largest
    #    doc of all rows (it fixes the bucket width, as in fit).
    # 3. ``fit_pairs(batches, pairs, band_rows)``, once: the union of all groups' pairs ->
    #    verification (shingle sets of candidate documents only) -> clusters -> keepers.
    #
    # ``split_fallback()`` names the settings the steps do not cover (then call ``fit``).

    def check_recipe(self, sources: Sequence[str]) -> None:
        unknown = [name for name in self.params.source_priority if name not in sources]
        if unknown:
            raise StageError(
                f"source_priority names {', '.join(map(repr, unknown))}, which the recipe has no "
                f"source of; sources: {', '.join(sources)}"
            )

    def split_fallback(self) -> str | None:
        """Why this configuration cannot be fitted in steps (None when it can)."""
        p = self.params
        if p.reference:
            return "reference (earlier runs' signatures are read in one place)"
        if not p.cross_source:
            return "cross_source: false (band keys are mixed with stream-ordered source codes)"
        if p.store_signatures:
            return "store_signatures: true (apply writes every row's signature)"
        return None

    def band_rows_per_document(self) -> int:
        return self.banding()[0]

    def band_rows(self, batch: pa.Table, offset: int) -> pa.Table:
        """Step 1 for one batch whose first row is document ``offset``: rows of BAND_ROWS_SCHEMA."""
        self._require_split("band_rows")
        sig = self.hasher().signatures(document_text(batch, self._text_fields())).sig
        valid = np.flatnonzero(has_shingles(sig))
        docs = valid.astype(np.int64) + offset
        if len(docs):
            doc_bits_for(int(docs[-1]))  # beyond 2**32 documents: fail here, not after the shuffle
        bands, rows = self.banding()
        keys = [band_keys(sig, band, rows)[valid] for band in range(bands)]
        parts = [band_partition(band, k, BAND_PARTITIONS) for band, k in enumerate(keys)]
        return pa.table(
            {
                "band": pa.array(np.repeat(np.arange(bands, dtype=np.uint16), len(valid))),
                "key": pa.array(np.concatenate(keys) if keys else np.zeros(0, np.uint64)),
                "doc": pa.array(np.tile(docs, bands)),
                "part": pa.array(np.concatenate(parts) if parts else np.zeros(0, np.uint32)),
            },
            schema=BAND_ROWS_SCHEMA,
        )

    def band_pairs(self, rows: pa.Table, max_doc: int) -> np.ndarray:
        """Step 2: sorted unique pair codes ``(u << 32) | v`` of whole parts of the band rows."""
        return band_bucket_pairs(
            _as_array(rows.column("band")).to_numpy(zero_copy_only=False),
            _as_array(rows.column("key")).to_numpy(zero_copy_only=False),
            _as_array(rows.column("doc")).to_numpy(zero_copy_only=False),
            doc_bits_for(max_doc),
        )

    def fit_pairs(self, batches: Iterable[pa.Table], pairs: np.ndarray, band_rows: int) -> None:
        """Step 3: ``fit`` given the union of every group's pairs and the number of band rows.

        ``batches`` are fit's batches again (read once more: only candidate documents are
        hashed, and only their shingle sets are kept).
        """
        self._require_split("fit_pairs")
        self._reset()
        clock = _Clock()
        pairs = np.unique(np.asarray(pairs, np.uint64))
        u, v = split_codes(pairs)
        candidates = np.union1d(u, v)
        hasher = self.hasher()
        for batch in batches:
            self._add_batch(batch, hasher, candidates)
        if len(candidates) and candidates[-1] >= self._n:
            raise StageError(
                f"minhash_dedup: fit_pairs() got {self._n} rows but pairs name document "
                f"{candidates[-1]} (give it the batches band_rows() numbered, in order)"
            )
        if self.params.verify == "estimate":
            self._sig_docs = candidates
        clock.lap("shingles")
        bands, _ = self.banding()
        self._decide(pairs, band_rows // bands, clock)
        self._fitted = True

    def _require_split(self, step: str) -> None:
        reason = self.split_fallback()
        if reason is not None:
            raise StageError(f"minhash_dedup: {step}() does not support {reason}; use fit()")

    def _add_batch(
        self, batch: pa.Table, hasher: MinHasher, candidates: np.ndarray | None = None
    ) -> None:
        """Collect one batch. With ``candidates`` (global document numbers, sorted), only those
        documents get shingle sets (and signatures, for ``verify: estimate``): fit_pairs."""
        n = batch.num_rows
        if candidates is None:
            result = hasher.signatures(document_text(batch, self._text_fields()))
            self._sigs.append(result.sig)
            if self.params.verify == "jaccard":
                self._shingles.add(result.hashes, result.counts)
            else:
                self._shingles.add_missing(n)
            self._add_field_words(batch)
            self.collect_requests(batch)
        else:
            self._add_candidates(batch, hasher, candidates)
        self._ids.append(_as_array(batch.column("id")))
        self._keys.add_batch(batch)
        self._n += n

    def collect_requests(self, batch: pa.Table, docs: np.ndarray | None = None) -> None:
        """Hook for a version that checks pairs on the requests' text (v3); default: nothing.
        ``docs``: the global numbers of ``batch``'s rows when it holds only some documents
        (fit_pairs: the candidates); None: ``batch`` is every document of the next batch."""

    def pair_guard(self, u: np.ndarray, v: np.ndarray) -> np.ndarray | None:
        """Which verified pairs (u[i], v[i]) may stay duplicates; None: all of them."""
        return None

    def _add_candidates(self, batch: pa.Table, hasher: MinHasher, candidates: np.ndarray) -> None:
        """Shingle sets / signatures / field word sets / requests of the batch's candidate
        documents (``self._n``: the global number of the batch's first row)."""
        n = batch.num_rows
        lo, hi = np.searchsorted(candidates, [self._n, self._n + n])
        rows = candidates[lo:hi] - self._n
        subset = batch.take(pa.array(rows))
        hashes, counts = hasher.shingle_hashes(_text_array(subset, self._text_fields()))
        if self.params.verify == "jaccard":
            self._shingles.add(hashes, _scatter(counts, rows, n), _scatter(True, rows, n))
        else:
            self._shingles.add_missing(n)
            self._sigs.append(hasher.from_hashes(hashes, counts))
        self._add_field_words(subset, rows, n)
        self.collect_requests(subset, rows + self._n)

    def _add_field_words(
        self, batch: pa.Table, rows: np.ndarray | None = None, n: int | None = None
    ) -> None:
        """Word sets (normalized unigrams) of each field that has its own threshold.

        With ``rows``, ``batch`` holds only those rows of a batch of ``n`` rows.
        """
        words = MinHasher(num_perm=1, shingle="word", ngram=1)
        size = batch.num_rows if n is None else n
        for name in self.field_checks():
            store = self._field_words.setdefault(name, HashStore())
            text = self.field_text(batch, name)
            if text is None:
                store.add_missing(size)
                continue
            hashes, counts = words.shingle_hashes(text)
            if rows is None:
                store.add(hashes, counts)
            else:
                store.add(hashes, _scatter(counts, rows, size), _scatter(True, rows, size))

    def field_checks(self) -> dict[str, float]:
        """Word-set Jaccard each named part of a pair must reach too (``field_thresholds``)."""
        return {str(name): value for name, value in self.params.field_thresholds.items()}

    def field_text(self, batch: pa.Table, name: str) -> pa.Array | None:
        """The text of one :meth:`field_checks` part (None: the batch lacks it)."""
        return document_text(batch, [name]) if name in batch.column_names else None

    def _keeper_keys(self) -> KeeperKeys:
        return KeeperKeys(self.params.source_priority, self.params.quality_column)

    def _add_reference(self) -> None:
        """Signatures of an earlier run: they rank before every new row and are never output."""
        hasher = self.hasher()
        fields = self._text_fields()
        for path in reference_files(self.params.reference):
            ref = read_reference(path, hasher, fields, exact=self.params.verify == "jaccard")
            n = ref.table.num_rows
            self._sigs.append(ref.sig)
            if ref.shingles is not None:
                self._shingles.add(*ref.shingles)
            else:
                self._shingles.add_missing(n)
            self._add_field_words(ref.table)
            self._ids.append(_as_array(ref.table.column("id")))
            self._keys.add_reference(n)
            self._n += n
        self._n_ref = self._n

    # ------------------------------------------------------------------ clustering

    def _cluster(self, clock: _Clock) -> None:
        """Candidates from every band's buckets, then :meth:`_decide`."""
        p = self.params
        n = self._n
        groups = None
        if not p.cross_source:
            groups = self._keys.source_codes() if n else np.zeros(0, np.int32)
        bands, rows = self.banding()
        codes, valid = candidate_pairs(self._sigs, bands, rows, groups)
        self._decide(codes, int(np.count_nonzero(valid >= self._n_ref)), clock)

    def _decide(self, codes: np.ndarray, with_shingles: int, clock: _Clock) -> None:
        """Candidate pairs (codes) -> verified pairs -> components -> keepers and removals.

        ``with_shingles``: how many of the run's (not reference) documents have shingles.
        """
        p = self.params
        n = self._n
        sizes = [s.shape[1] for s in self._sigs]
        self._chunk_starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._id_column = pa.chunked_array(self._ids, pa.string())
        bands, rows = self.banding()
        u, v = split_codes(codes)
        if not p.cross_source:
            source_code = self._keys.source_codes() if n else np.zeros(0, np.int32)
            same = source_code[u] == source_code[v]
            u, v = u[same], v[same]
        # Two reference rows are never compared: the earlier run already deduplicated them.
        new = v >= self._n_ref
        u, v = u[new], v[new]
        clock.lap("candidates")
        docs = np.union1d(u, v)
        verifier = PairVerifier(
            p.threshold,
            self._shingles.index(docs),
            self._sigs,
            self._chunk_starts,
            sig_docs=self._sig_docs,  # fit_pairs: signatures of candidate documents only
            field_sets={name: store.index(docs) for name, store in self._field_words.items()},
            field_thresholds=self.field_checks(),
        )

        def match(a: np.ndarray, b: np.ndarray) -> Match:
            ok, similarity, exact, fields = verifier.match(a, b)
            if ok.any():
                allowed = self.pair_guard(a[ok], b[ok])
                if allowed is not None:
                    ok[ok] = allowed
            return ok, similarity, exact, fields

        verified, _, _, _ = match(u, v)
        clock.lap("verify")
        labels = connected_components(n, u[verified], v[verified])
        keepers = choose_keepers(
            labels,
            self._rank_order,
            match,
            self._n_ref,
            field_names=self.field_checks(),
            transitive=p.clusters == "connected",
        )
        self._dup_of, self._similarity = keepers.dup_of, keepers.similarity
        self._field_similarity, self._exactly = keepers.field_similarity, keepers.exactly
        removed = self._dup_of >= 0
        self._cluster_size = np.ones(n, np.int64) + np.bincount(self._dup_of[removed], minlength=n)
        # apply() needs only the decisions (and the signatures, when they are written out).
        self._shingles, self._field_words = HashStore(), {}
        self._keys = self._keeper_keys()
        if not p.store_signatures:
            self._sigs, self._sig_docs = [], None
        clock.lap("clusters")
        run = slice(self._n_ref, n)
        self._info = {
            "bands": bands,
            "rows": rows,
            "p_candidate_at_threshold": round(collision_probability(p.threshold, bands, rows), 6),
            "hash": HASH_NAME,
            "docs": n - self._n_ref,
            "reference_docs": self._n_ref,
            "docs_without_shingles": n - self._n_ref - with_shingles,
            "candidate_pairs": len(u),
            "verified_pairs": int(verified.sum()),
            "clusters": int(((~removed[run]) & (self._cluster_size[run] > 1)).sum()),
            "largest_cluster": int(self._cluster_size[run].max()) if n > self._n_ref else 0,
            "removed": int(removed[run].sum()),
            "removed_as_reference_duplicates": int(
                (removed[run] & (self._dup_of[run] < self._n_ref)).sum()
            ),
            "seconds": clock.wall,
            "cpu_seconds": clock.cpu,
        }

    def _rank_order(self, members: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``members`` sorted by component, then by the ``keep`` rule (best first)."""
        return self._keys.rank_order(
            members, labels, self.params.keep, self._id_column, self._n_ref
        )

    # ------------------------------------------------------------------ apply

    def apply(self, table: pa.Table) -> StageResult:
        """Split a batch by the clusters found in ``fit``; batches must come in fit order."""
        if not self._fitted:
            raise StageError("minhash_dedup: apply() called before fit()")
        n = table.num_rows
        lo = self._n_ref + self._apply_offset
        hi = lo + n
        if hi > self._n:
            raise StageError(
                f"minhash_dedup: apply() got more rows than fit() saw "
                f"({hi - self._n_ref} > {self._n - self._n_ref})"
            )
        if n and not _as_array(table.column("id")).equals(
            self._id_column.slice(lo, n).combine_chunks()
        ):
            raise StageError(
                "minhash_dedup: apply() got batches that differ from fit() "
                "(give apply the same batches, in the same order)"
            )
        self._apply_offset += n
        dup_of = self._dup_of[lo:hi]
        keep = dup_of < 0
        drop = np.flatnonzero(~keep)
        duplicate_of: list[str | None] = [None] * n
        detail: list[str | None] = [None] * n
        if len(drop):
            keepers = dup_of[drop]
            keeper_ids = self._id_column.take(pa.array(keepers)).to_pylist()
            per_field = [
                [(name, w) for w in values[lo:hi][drop].tolist()]
                for name, values in self._field_similarity.items()
            ]
            rows = zip(
                drop.tolist(),
                keeper_ids,
                self._similarity[lo:hi][drop].tolist(),
                self._exactly[lo:hi][drop].tolist(),
                (keepers < self._n_ref).tolist(),
                zip(*per_field, strict=True) if per_field else [()] * len(drop),
                strict=True,
            )
            for index, keeper_id, sim, exactly, reference, field_sims in rows:
                duplicate_of[index] = keeper_id
                measure = "jaccard" if exactly else "estimate"
                extra = "".join(
                    f',"{name}_similarity":{w:.4f}' for name, w in field_sims if not np.isnan(w)
                )
                keeper = "reference" if reference else "run"
                detail[index] = (
                    f'{{"similarity":{sim:.4f},"measure":"{measure}"{extra},"keeper":"{keeper}"}}'
                )
        keep_array = pa.array(keep, pa.bool_())
        scores: dict[str, pa.Array] = {
            CLUSTER_SIZE_COLUMN: pa.array(self._cluster_size[lo:hi], pa.int64())
        }
        if self.params.store_signatures:
            scores[SIGNATURE_COLUMN] = signature_column(
                self._sigs, self._chunk_starts, np.arange(lo, hi), self.params.num_perm
            )
        decision = Decision(
            keep=keep_array,
            reason=pc.if_else(keep_array, pa.scalar(None, pa.string()), "near_duplicate"),
            detail=pa.array(detail, pa.string()),
            duplicate_of=pa.array(duplicate_of, pa.string()),
            scores=scores,
        )
        result = apply_decision(table, decision, self.name)
        if self.params.store_signatures:
            result.kept = with_field_metadata(
                result.kept, SIGNATURE_COLUMN, self._signature_metadata()
            )
        return result

    def manifest_info(self) -> dict[str, Any]:
        """LSH configuration, cluster counts and phase timings for ``manifest.json``."""
        return dict(self._info)


class _Clock:
    """Wall and CPU seconds per phase, for the manifest."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._wall = time.perf_counter()
        self._cpu = time.process_time()

    def lap(self, name: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.wall[name] = round(wall - self._wall, 3)
        self.cpu[name] = round(cpu - self._cpu, 3)
        self._wall, self._cpu = wall, cpu


def _as_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _scatter(values: np.ndarray | bool, rows: np.ndarray, n: int) -> np.ndarray:
    """A length-``n`` array with ``values`` at ``rows`` and zeros (False) elsewhere."""
    out = np.zeros(n, bool if isinstance(values, bool) else np.int64)
    out[rows] = values
    return out


def _text_array(table: pa.Table, fields: list[str]) -> pa.Array:
    """``document_text`` as one array without nulls (as ``MinHasher.signatures`` reads it)."""
    text = document_text(table, fields)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    return pc.fill_null(text, "")


def _default_field_thresholds() -> dict[KeyField, float]:
    return {"instruction": 0.9, "input": 0.5}


class MinHashDedupV2(MinHashDedup):
    """``minhash_dedup_v1`` with defaults from a hand-labeled audit of its drops on Alpaca + Dolly
    (``bench/audit/``): ``field_thresholds: {instruction: 0.9, input: 0.5}`` and ``same_names``.

    Exact dedup has already removed identical requests, so what near dedup finds in instruction
    data is mostly *minimal pairs*: one passage with different questions (v1's defaults: 37 of 40
    sampled extra drops wrong), one template with another name ("founder of House Frey?" /
    "House Arryn?") or one flipped word ("melting" / "boiling point", "official" / "unofficial")
    — with ``{instruction: 0.5, input: 0.5}`` 45 of 50 sampled drops were wrong. Requiring nearly
    the same instruction words and the same names and numbers keeps those apart; paraphrases that
    share few words are left to semantic dedup. ``field_thresholds: {}`` and ``same_names: false``
    restore v1.
    """

    name: ClassVar[str] = "minhash_dedup_v2"

    class Params(MinHashDedup.Params):
        same_names: bool = Field(
            True,
            description="Also require the instructions' names and numbers (capitalized words "
            "after the first, digits) to be the same: 'founder of House Frey?' is not 'founder of "
            "House Arryn?', 'list 5' is not 'list 10'.",
        )
        field_thresholds: dict[KeyField, float] = Field(
            default_factory=_default_field_thresholds,
            description="Also require each listed field alone to reach this word-set Jaccard, so "
            "different questions about one passage, or one template with one word changed, stay "
            "apart; {} turns it off (v1's default).",
        )

    params: Params

    def field_checks(self) -> dict[str, float]:
        checks = super().field_checks()
        if self.params.same_names:
            checks[NAMES_CHECK] = 1.0
        return checks

    def field_text(self, batch: pa.Table, name: str) -> pa.Array | None:
        if name != NAMES_CHECK:
            return super().field_text(batch, name)
        if "instruction" not in batch.column_names:
            return None
        return names_and_numbers(batch.column("instruction"))


class MinHashDedupV3(MinHashDedupV2):
    """``minhash_dedup_v2`` that also keeps minimal pairs apart (``minimal_pairs``): two requests
    that differ in a negation, a word and its opposite ("official" / "unofficial"), an added
    condition ("as a coach" / "as a player and coach"), or that ask another question about the
    same list, are not duplicates however many words they share (``curate.util.minimal_pairs``;
    from the near-duplicate audit's wrong drops, ``bench/audit/``)."""

    name: ClassVar[str] = "minhash_dedup_v3"

    class Params(MinHashDedupV2.Params):
        minimal_pairs: bool = Field(
            True,
            description="Keep minimal pairs apart: requests that differ in a negation, an "
            "opposite, an added condition, or ask another question about the same list.",
        )

    params: Params

    def _reset(self) -> None:
        super()._reset()
        self._requests: list[pa.Array] = []
        # The documents whose requests are kept, when only candidates' are (fit_pairs: at 10M
        # rows every instruction and input would be gigabytes); None: every document's.
        self._request_docs: list[np.ndarray] | None = None

    def collect_requests(self, batch: pa.Table, docs: np.ndarray | None = None) -> None:
        if not self.params.minimal_pairs:
            return
        if docs is not None:
            if self._request_docs is None:
                self._request_docs = []
            self._request_docs.append(docs)
        self._requests.append(_text_column(batch, "instruction"))

    def request_rows(self, docs: np.ndarray) -> pa.Array:
        """Where the requests of ``docs`` (global numbers, not references) are kept."""
        if self._request_docs is None:
            return pa.array(np.maximum(docs - self._n_ref, 0))
        kept = np.concatenate(self._request_docs)
        return pa.array(np.minimum(np.searchsorted(kept, docs), max(len(kept) - 1, 0)))

    def pair_guard(self, u: np.ndarray, v: np.ndarray) -> np.ndarray | None:
        if not self.params.minimal_pairs or not self._requests:
            return None
        requests = pa.chunked_array(self._requests, pa.string())
        n_ref = self._n_ref
        first = requests.take(self.request_rows(u)).to_pylist()
        second = requests.take(self.request_rows(v)).to_pylist()
        return np.array(
            [
                a < n_ref or b < n_ref or contrast(x, y) is None
                for a, b, x, y in zip(u.tolist(), v.tolist(), first, second, strict=True)
            ],
            dtype=bool,
        )


class MinHashDedupV4(MinHashDedupV3):
    """``minhash_dedup_v3`` whose minimal pairs also see the record's ``input``: two requests about
    one passage or list given in ``input`` must ask the same question (v3 looked at the
    instruction only, so "Extract the names of the groups of islands ..." and "Extract the
    names of the islands ..." over one Azores passage were duplicates), and two long requests
    that end in another ask ("... involves voluntary donation." / "... involves manipulated,
    coerced donation.") are kept apart (``curate.util.minimal_pairs.contrast_with_material``;
    the two wrong drops of v3 in ``bench/audit/near_duplicate.jsonl``)."""

    name: ClassVar[str] = "minhash_dedup_v4"

    def _reset(self) -> None:
        super()._reset()
        self._materials: list[pa.Array] = []

    def collect_requests(self, batch: pa.Table, docs: np.ndarray | None = None) -> None:
        super().collect_requests(batch, docs)
        if self.params.minimal_pairs:
            self._materials.append(_text_column(batch, "input"))

    def pair_guard(self, u: np.ndarray, v: np.ndarray) -> np.ndarray | None:
        if not self.params.minimal_pairs or not self._requests:
            return None
        n_ref = self._n_ref
        at_u, at_v = self.request_rows(u), self.request_rows(v)
        requests = pa.chunked_array(self._requests, pa.string())
        materials = pa.chunked_array(self._materials, pa.string())
        return np.array(
            [
                a < n_ref or b < n_ref or contrast_with_material(x, y, mx, my) is None
                for a, b, x, y, mx, my in zip(
                    u.tolist(),
                    v.tolist(),
                    requests.take(at_u).to_pylist(),
                    requests.take(at_v).to_pylist(),
                    materials.take(at_u).to_pylist(),
                    materials.take(at_v).to_pylist(),
                    strict=True,
                )
            ],
            dtype=bool,
        )


def _text_column(batch: pa.Table, name: str) -> pa.Array:
    """A string column with nulls as "" (all "" when the batch lacks it)."""
    if name not in batch.column_names:
        return pa.array([""] * batch.num_rows, pa.string())
    return pc.fill_null(_as_array(batch.column(name)), "")


NAMES_CHECK = "instruction:names"


def names_and_numbers(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Capitalized words (not the first of a sentence) and numbers of each text, space-separated:
    what tells one templated question from another ("House Frey" / "House Arryn")."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    text = pc.fill_null(values, "")
    # The first word of the text and of each sentence is capitalized anyway.
    text = pc.replace_substring_regex(text, r"^[^\pL\pN]*\pL+", " ")
    text = pc.replace_substring_regex(text, r"([.?!:]\s+)\pL+", "\\1 ")
    # Lower-case words say what is asked, not about whom.
    return pc.replace_substring_regex(text, r"(?:^|[^\pL\pN])\p{Ll}[\pL\pM'’-]*", " ")
