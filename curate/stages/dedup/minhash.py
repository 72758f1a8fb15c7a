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

Executors: ``fit`` can also run as three steps with the same result (``band_rows`` per shard,
``band_pairs`` per group of band partitions, ``fit_pairs`` once; see "fit in steps" below); the
Ray engine spreads the first two over its workers. ``reference``, ``cross_source: false`` and
``store_signatures`` need ``fit`` (``split_fallback()`` says why).
"""

from __future__ import annotations

import glob
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from curate.errors import StageError
from curate.lib.minhash.lsh import (
    SetIndex,
    band_bucket_pairs,
    band_keys,
    band_partition,
    bucket_pairs,
    choose_bands,
    collision_probability,
    concat_ranges,
    connected_components,
    doc_bits_for,
    estimated_jaccard,
    gather_columns,
    split_codes,
)
from curate.lib.minhash.signatures import MinHasher, Scheme, ShingleKind, document_text
from curate.stages.base import Decision, SplitFitStage, StageParams, StageResult, apply_decision
from curate.stages.dedup.exact import KeyField

KeepRule = Literal["source", "quality", "longer_output", "shorter_output", "first", "smallest_id"]

SIGNATURE_COLUMN = "minhash"
CLUSTER_SIZE_COLUMN = "dup_cluster_size"
HASH_NAME = "curate.lib.minhash.signatures.shingle_hash32"
# Rows of fit's first step (see MinHashDedup.band_rows): group them by ``part`` to find buckets.
BAND_ROWS_SCHEMA = pa.schema(
    [("band", pa.uint16()), ("key", pa.uint64()), ("doc", pa.int64()), ("part", pa.uint32())]
)
# Distinct ``part`` values: many more than any executor has groups, so groups stay balanced.
BAND_PARTITIONS = 1 << 16
_EMPTY_SIGNATURE = np.uint32(0xFFFFFFFF)


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
        p = self.params
        return {
            "num_perm": str(p.num_perm),
            "seed": str(p.seed),
            "scheme": p.scheme,
            "shingle": p.shingle,
            "ngram": str(p.ngram),
            "fields": ",".join(self._text_fields()),
            "hash": HASH_NAME,
        }

    # ------------------------------------------------------------------ fit

    def _reset(self) -> None:
        # Per document, in stream order (reference rows first): signature chunks and rank keys.
        self._sigs: list[np.ndarray] = []
        self._chunk_starts = np.zeros(1, np.int64)
        # fit_pairs keeps the signatures of candidate documents only: these, in ``_sigs`` order.
        self._sig_docs: np.ndarray | None = None
        self._shingles = _HashStore()  # for exact Jaccard
        self._field_words: dict[str, _HashStore] = {}  # per field_thresholds field: word sets
        self._ids: list[pa.Array] = []
        self._source_rank: list[np.ndarray] = []
        self._source_code: list[np.ndarray] = []
        self._quality: list[np.ndarray] = []
        self._output_len: list[np.ndarray] = []
        self._sources: dict[str, int] = {}
        self._n_ref = 0
        self._n = 0
        # Decisions, filled by _cluster.
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

    def band_rows(self, batch: pa.Table, offset: int) -> pa.Table:
        """Step 1 for one batch whose first row is document ``offset``: rows of BAND_ROWS_SCHEMA."""
        self._require_split("band_rows")
        sig = self.hasher().signatures(document_text(batch, self._text_fields())).sig
        valid = np.flatnonzero((sig != _EMPTY_SIGNATURE).any(axis=0))
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
        else:
            self._add_candidates(batch, hasher, candidates)
        self._ids.append(_as_array(batch.column("id")))
        sources = (
            _as_array(batch.column("source"))
            if "source" in batch.column_names
            else pa.array([""] * n, pa.string())
        )
        code, rank = self._source_codes(sources)
        self._source_code.append(code)
        self._source_rank.append(rank)
        self._quality.append(self._quality_scores(batch))
        if "output" in batch.column_names:
            lengths = pc.fill_null(pc.utf8_length(_as_array(batch.column("output"))), 0)
            self._output_len.append(lengths.to_numpy(zero_copy_only=False).astype(np.int64))
        else:
            self._output_len.append(np.zeros(n, np.int64))
        self._n += n

    def _add_candidates(self, batch: pa.Table, hasher: MinHasher, candidates: np.ndarray) -> None:
        """Shingle sets / signatures / field word sets of the batch's candidate documents."""
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

    def _add_field_words(
        self, batch: pa.Table, rows: np.ndarray | None = None, n: int | None = None
    ) -> None:
        """Word sets (normalized unigrams) of each field that has its own threshold.

        With ``rows``, ``batch`` holds only those rows of a batch of ``n`` rows.
        """
        words = MinHasher(num_perm=1, shingle="word", ngram=1)
        size = batch.num_rows if n is None else n
        for name in self.params.field_thresholds:
            store = self._field_words.setdefault(name, _HashStore())
            if name not in batch.column_names:
                store.add_missing(size)
                continue
            hashes, counts = words.shingle_hashes(document_text(batch, [name]))
            if rows is None:
                store.add(hashes, counts)
            else:
                store.add(hashes, _scatter(counts, rows, size), _scatter(True, rows, size))

    def _quality_scores(self, batch: pa.Table) -> np.ndarray:
        column = self.params.quality_column
        if column in batch.column_names:
            kind = batch.schema.field(column).type
            if pa.types.is_floating(kind) or pa.types.is_integer(kind):
                values = _as_array(batch.column(column)).cast(pa.float64())
                return pc.fill_null(values, np.nan).to_numpy(zero_copy_only=False).astype(float)
        return np.full(batch.num_rows, np.nan)

    def _source_codes(self, sources: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        if len(sources) == 0:
            return np.zeros(0, np.int32), np.zeros(0, np.int32)
        encoded = pc.dictionary_encode(pc.fill_null(sources, ""))
        names = encoded.dictionary.to_pylist()
        priority = {name: i for i, name in enumerate(self.params.source_priority)}
        codes = np.array(
            [self._sources.setdefault(name, len(self._sources)) for name in names], np.int32
        )
        ranks = np.array([priority.get(name, len(priority)) for name in names], np.int32)
        index = encoded.indices.to_numpy(zero_copy_only=False)
        return codes[index], ranks[index]

    def _add_reference(self) -> None:
        """Signatures of an earlier run: they rank before every new row and are never output."""
        import pyarrow.parquet as pq

        files: list[str] = []
        for spec in self.params.reference:
            files.extend(sorted(glob.glob(spec)) if any(ch in spec for ch in "*?[") else [spec])
        if not files:
            raise StageError(f"minhash_dedup reference: no files match {self.params.reference}")
        for path in files:
            if not Path(path).exists():
                raise StageError(f"minhash_dedup reference: {path} does not exist")
            table = pq.read_table(path)
            if SIGNATURE_COLUMN not in table.column_names or "id" not in table.column_names:
                raise StageError(
                    f"minhash_dedup reference {path}: needs columns 'id' and '{SIGNATURE_COLUMN}' "
                    "(write them with `minhash_dedup: {store_signatures: true}` in the earlier run)"
                )
            self._check_reference_params(table.schema.field(SIGNATURE_COLUMN), path)
            sig = _signature_matrix(table.column(SIGNATURE_COLUMN), self.params.num_perm, path)
            n = table.num_rows
            self._sigs.append(sig)
            fields = self._text_fields()
            if self.params.verify == "jaccard" and all(f in table.column_names for f in fields):
                # The earlier run's text is there: verify exactly, for rows whose text still gives
                # their stored signature (a later stage, e.g. template expansion, may have
                # rewritten it; those rows fall back to the signature estimate).
                hasher = self.hasher()
                hashes, counts = hasher.shingle_hashes(document_text(table, fields))
                same_text = (hasher.from_hashes(hashes, counts) == sig).all(axis=0)
                self._shingles.add(hashes, counts, same_text)
            else:
                self._shingles.add_missing(n)
            self._add_field_words(table)
            self._ids.append(_as_array(table.column("id")))
            self._source_code.append(np.full(n, -1, np.int32))
            self._source_rank.append(np.full(n, -1, np.int32))
            self._quality.append(np.full(n, np.nan))
            self._output_len.append(np.zeros(n, np.int64))
            self._n += n
        self._n_ref = self._n

    def _check_reference_params(self, field: pa.Field, path: str) -> None:
        meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
        if not meta:
            return
        wrong = {
            k: (meta.get(k), v) for k, v in self._signature_metadata().items() if meta.get(k) != v
        }
        if wrong:
            detail = ", ".join(
                f"{k}: file has {a!r}, this stage {b!r}" for k, (a, b) in sorted(wrong.items())
            )
            raise StageError(
                f"minhash_dedup reference {path}: signatures were made with other parameters "
                f"({detail})"
            )

    # ------------------------------------------------------------------ clustering

    def _cluster(self, clock: _Clock) -> None:
        """Candidates from every band's buckets, then :meth:`_decide`."""
        p = self.params
        n = self._n
        source_code = np.concatenate(self._source_code) if n else np.zeros(0, np.int32)
        # Documents without any shingle (empty text) have the empty signature: never compared.
        valid = np.flatnonzero(
            np.concatenate([(s != _EMPTY_SIGNATURE).any(axis=0) for s in self._sigs])
            if n
            else np.zeros(0, bool)
        )
        bands, rows = self.banding()
        group = None if p.cross_source else source_code[valid]
        codes = np.zeros(0, np.uint64)
        for band in range(bands):
            keys = (
                np.concatenate([band_keys(s, band, rows) for s in self._sigs])
                if n
                else np.zeros(0, np.uint64)
            )
            codes = np.union1d(codes, bucket_pairs(_mix_group(keys[valid], group), valid))
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
            source_code = np.concatenate(self._source_code) if n else np.zeros(0, np.int32)
            same = source_code[u] == source_code[v]
            u, v = u[same], v[same]
        # Two reference rows are never compared: the earlier run already deduplicated them.
        new = v >= self._n_ref
        u, v = u[new], v[new]
        clock.lap("candidates")
        docs = np.union1d(u, v)
        self._shingle_sets = self._shingles.index(docs)
        self._field_sets = {name: store.index(docs) for name, store in self._field_words.items()}
        verified, _, _, _ = self._match(u, v)
        clock.lap("verify")
        labels = connected_components(n, u[verified], v[verified])
        self._assign(labels)
        self._shingle_sets, self._field_sets = None, {}
        removed = self._dup_of >= 0
        self._cluster_size = np.ones(n, np.int64) + np.bincount(self._dup_of[removed], minlength=n)
        # apply() needs only the decisions (and the signatures, when they are written out).
        self._shingles, self._field_words = _HashStore(), {}
        self._quality, self._output_len, self._source_rank, self._source_code = [], [], [], []
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

    def _match(
        self, u: np.ndarray, v: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """For pairs: (duplicate?, similarity, measured exactly?, per-field word similarity).

        Similarity is exact Jaccard of the shingle sets when both are known, else the signature
        estimate (``verify: estimate``, or reference rows stored without their text).
        """
        sim = np.empty(len(u), np.float64)
        exact = np.zeros(len(u), bool)
        if self._shingle_sets is not None:
            exact = _known(self._shingle_sets, u) & _known(self._shingle_sets, v)
            sim[exact] = self._shingle_sets.jaccard(u[exact], v[exact])
        if (~exact).any():
            su, sv = u[~exact], v[~exact]
            if self._sig_docs is not None:  # fit_pairs: signatures of candidate documents only
                su, sv = np.searchsorted(self._sig_docs, su), np.searchsorted(self._sig_docs, sv)
            sim[~exact] = estimated_jaccard(self._sigs, self._chunk_starts, su, sv)
        ok = sim >= self.params.threshold
        fields: dict[str, np.ndarray] = {}
        for name, sets in self._field_sets.items():
            words = np.full(len(u), np.nan)
            if sets is not None:
                known = _known(sets, u) & _known(sets, v)
                # Two empty fields are the same field.
                words[known] = sets.jaccard(u[known], v[known], empty=1.0)
                ok &= ~known | (words >= self.params.field_thresholds[name])  # type: ignore[index]
            fields[name] = words
        return ok, sim, exact, fields

    def _rank_order(self, members: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``members`` sorted by component, then by the keeper rule (best first)."""
        source_rank = np.concatenate(self._source_rank)[members]
        quality = np.concatenate(self._quality)[members]
        output_len = np.concatenate(self._output_len)[members]
        rule_keys: list[np.ndarray] = []
        for rule in self.params.keep:
            if rule == "source":
                rule_keys.append(source_rank)
            elif rule == "quality":
                rule_keys.append(np.where(np.isnan(quality), np.inf, -quality))
            elif rule == "longer_output":
                rule_keys.append(-output_len)
            elif rule == "shorter_output":
                rule_keys.append(output_len)
            elif rule == "first":
                rule_keys.append(members)
            elif rule == "smallest_id":
                ids = np.array(self._id_column.take(pa.array(members)).to_pylist(), dtype=str)
                id_rank = np.empty(len(members), np.int64)
                id_rank[np.argsort(ids, kind="stable")] = np.arange(len(members))
                rule_keys.append(id_rank)
        # np.lexsort: last key is primary. Component, then reference rows first (they are
        # already published), then the rule, then stream order.
        is_new = (members >= self._n_ref).astype(np.int8)
        keys = [members, *reversed(rule_keys), is_new, labels[members]]
        return members[np.lexsort(keys)]

    def _assign(self, labels: np.ndarray) -> None:
        """Keepers and removals per component (see the module docstring)."""
        n = len(labels)
        self._dup_of = np.full(n, -1, np.int64)
        self._similarity = np.full(n, np.nan)
        self._field_similarity = {name: np.full(n, np.nan) for name in self.params.field_thresholds}
        self._exactly = np.zeros(n, bool)
        sizes = np.bincount(labels, minlength=n)
        members = np.flatnonzero(sizes[labels] > 1)
        remaining = self._rank_order(members, labels) if len(members) else members
        while len(remaining):
            group = labels[remaining]
            first = np.concatenate([[True], group[1:] != group[:-1]])
            keeper = remaining[np.maximum.accumulate(np.where(first, np.arange(len(remaining)), 0))]
            others = ~first
            if not others.any():
                break
            u, v = keeper[others], remaining[others]
            ok, sim, exact, fields = self._match(u, v)
            if self.params.clusters == "connected":
                ok = np.ones(len(v), bool)
            ok &= v >= self._n_ref  # reference rows all stay keepers
            hit = v[ok]
            self._dup_of[hit] = u[ok]
            self._similarity[hit] = sim[ok]
            for name, words in fields.items():
                self._field_similarity[name][hit] = words[ok]
            self._exactly[hit] = exact[ok]
            remaining = v[~ok]

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
            scores[SIGNATURE_COLUMN] = self._signature_column(lo, hi)
        decision = Decision(
            keep=keep_array,
            reason=pc.if_else(keep_array, pa.scalar(None, pa.string()), "near_duplicate"),
            detail=pa.array(detail, pa.string()),
            duplicate_of=pa.array(duplicate_of, pa.string()),
            scores=scores,
        )
        result = apply_decision(table, decision, self.name)
        if self.params.store_signatures:
            result.kept = _with_field_metadata(
                result.kept, SIGNATURE_COLUMN, self._signature_metadata()
            )
        return result

    def _signature_column(self, lo: int, hi: int) -> pa.Array:
        sig = gather_columns(self._sigs, self._chunk_starts, np.arange(lo, hi))
        flat = pa.array(np.ascontiguousarray(sig.T).reshape(-1), pa.uint32())
        return pa.FixedSizeListArray.from_arrays(flat, self.params.num_perm)

    def manifest_info(self) -> dict[str, Any]:
        """LSH configuration, cluster counts and phase timings for ``manifest.json``."""
        return dict(self._info)


class _HashStore:
    """Per-document hash sets of a stream, chunk by chunk (some documents may lack them)."""

    def __init__(self) -> None:
        self.hashes: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []
        self.known: list[np.ndarray] = []

    def add(self, hashes: np.ndarray, counts: np.ndarray, known: np.ndarray | None = None) -> None:
        self.hashes.append(hashes)
        self.counts.append(np.asarray(counts, np.int64))
        self.known.append(np.ones(len(counts), bool) if known is None else np.asarray(known, bool))

    def add_missing(self, n: int) -> None:
        self.hashes.append(np.zeros(0, np.uint32))
        self.counts.append(np.zeros(n, np.int64))
        self.known.append(np.zeros(n, bool))

    def index(self, docs: np.ndarray) -> SetIndex | None:
        """Sorted sets of ``docs`` (sorted global numbers) that have them; None if none do."""
        if not any(k.any() for k in self.known):
            return None
        sizes = np.array([len(c) for c in self.counts], np.int64)
        chunk_starts = np.concatenate([[0], np.cumsum(sizes)])
        docs = docs[np.concatenate(self.known)[docs]] if len(docs) else docs
        chunk = np.searchsorted(chunk_starts, docs, side="right") - 1
        parts: list[np.ndarray] = []
        counts: list[np.ndarray] = []
        for c in np.unique(chunk):
            local = docs[chunk == c] - chunk_starts[c]
            starts = np.concatenate([[0], np.cumsum(self.counts[c])])[local]
            sizes_c = self.counts[c][local]
            parts.append(self.hashes[c][concat_ranges(starts, sizes_c)])
            counts.append(sizes_c)
        hashes = np.concatenate(parts) if parts else np.zeros(0, np.uint32)
        count = np.concatenate(counts) if counts else np.zeros(0, np.int64)
        return SetIndex(docs, hashes, count)


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


def _known(sets: SetIndex, docs: np.ndarray) -> np.ndarray:
    """Which documents have a set in ``sets``."""
    if len(sets.docs) == 0:
        return np.zeros(len(docs), bool)
    at = np.minimum(np.searchsorted(sets.docs, docs), len(sets.docs) - 1)
    return np.asarray(sets.docs[at] == docs)


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


def _mix_group(keys: np.ndarray, group: np.ndarray | None) -> np.ndarray:
    if group is None:
        return keys
    return keys ^ (group.astype(np.uint64) * np.uint64(0xD6E8FEB86659FD93))


def _signature_matrix(column: pa.ChunkedArray, num_perm: int, path: str) -> np.ndarray:
    values = column.combine_chunks()
    if not (pa.types.is_fixed_size_list(values.type) or pa.types.is_list(values.type)):
        raise StageError(
            f"minhash_dedup reference {path}: column '{SIGNATURE_COLUMN}' is {values.type}, "
            "expected a list of uint32"
        )
    flat = values.flatten().cast(pa.uint32()).to_numpy(zero_copy_only=False)
    if len(flat) != len(values) * num_perm:
        raise StageError(
            f"minhash_dedup reference {path}: signatures are not {num_perm} values long "
            "(made with another num_perm?)"
        )
    return np.ascontiguousarray(flat.reshape(len(values), num_perm).T)


def _with_field_metadata(table: pa.Table, column: str, metadata: dict[str, str]) -> pa.Table:
    index = table.column_names.index(column)
    field = table.schema.field(index).with_metadata(metadata)
    return table.set_column(index, field, table.column(index))
