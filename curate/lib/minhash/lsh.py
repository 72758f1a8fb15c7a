"""LSH banding, candidate pairs, Jaccard verification and connected components, all in numpy.

Nothing here keeps a Python object per document: band keys are uint64 arrays grouped by sorting,
candidate pairs are ``uint64`` codes ``(u << 32) | v``, shingle sets are one sorted ``uint32``
array with offsets, and components come from vectorized label propagation.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from curate.errors import StageError
from curate.lib.minhash.signatures import MAX_HASH32, fmix64

_BAND_MUL = np.uint64(0x9E3779B97F4A7C15)
_GROUP_MUL = np.uint64(0xD6E8FEB86659FD93)
_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
# Pair codes hold two document numbers: (u << 32) | v.
MAX_DOC_BITS = 32
# Pairs are verified in groups of about this many set elements (bounded temporary memory).
_VERIFY_CHUNK = 1 << 22


def collision_probability(similarity: float, bands: int, rows: int) -> float:
    """Probability that two documents with this Jaccard similarity share at least one band."""
    return float(1.0 - (1.0 - similarity**rows) ** bands)


def choose_bands(threshold: float, num_perm: int, min_recall: float = 0.995) -> tuple[int, int]:
    """``(bands, rows)`` for a threshold: the most rows per band (fewest false candidates) that
    still makes a pair exactly at the threshold a candidate with probability >= ``min_recall``.

    datasketch's default split minimizes false positives and negatives equally and, at threshold
    0.8 with 128 permutations, misses about a quarter of the pairs that reach 0.8; here candidates
    are verified afterwards, so a false candidate costs a little time and a missed pair costs a
    duplicate in the output.
    """
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if bands < 1:
            break
        if collision_probability(threshold, bands, rows) >= min_recall:
            best = (bands, rows)
    return best


def band_keys(sig: np.ndarray, band: int, rows: int, group: np.ndarray | None = None) -> np.ndarray:
    """64-bit key of one band for every column of ``sig`` (shape ``(num_perm, n)``).

    ``group`` (int per document) is mixed in so that documents of different groups never share a
    bucket (used when dedup must not cross sources).
    """
    block = sig[band * rows : (band + 1) * rows]
    key = np.zeros(block.shape[1], np.uint64)
    for row in block:
        key *= _BAND_MUL
        key += row.astype(np.uint64)
    if group is not None:
        key ^= group.astype(np.uint64) * _BAND_MUL
    return fmix64(key)


def bucket_pairs(keys: np.ndarray, docs: np.ndarray, doc_bits: int | None = None) -> np.ndarray:
    """Candidate pairs from one band: documents whose keys are equal share a bucket.

    A bucket of k documents (in document order) links each member to the bucket's first member
    and to the member before it: 2(k - 1) pairs instead of k(k - 1)/2, so a bucket of a million
    near-identical rows stays linear. Returns sorted unique codes ``(u << 32) | v`` with ``u < v``.

    Keys and document numbers are packed into one uint64 (the key's top bits, the document in the
    low bits) so one value sort groups the buckets with members in document order; the few key
    bits given up only add false candidates, which verification removes. ``doc_bits`` (default:
    the bits of ``docs.max()``) must be the same for every part of one band when a band is
    grouped in parts (:func:`band_partition`), so that each part sees the same buckets.
    """
    if len(keys) < 2:
        return np.zeros(0, np.uint64)
    bits = np.uint64(doc_bits_for(int(docs.max())) if doc_bits is None else doc_bits)
    packed = ((keys >> bits) << bits) | docs.astype(np.uint64)
    packed.sort()
    bucket = packed >> bits
    sorted_docs = (packed & ((np.uint64(1) << bits) - np.uint64(1))).astype(np.int64)
    same = bucket[1:] == bucket[:-1]
    if not same.any():
        return np.zeros(0, np.uint64)
    position = np.arange(len(keys))
    run_start = np.where(np.concatenate([[True], ~same]), position, 0)
    np.maximum.accumulate(run_start, out=run_start)
    member = np.flatnonzero(same) + 1
    previous = sorted_docs[member - 1]
    first = sorted_docs[run_start[member]]
    current = sorted_docs[member]
    star = first != previous
    codes = np.concatenate([_codes(previous, current), _codes(first[star], current[star])])
    return np.unique(codes)


def has_shingles(sig: np.ndarray) -> np.ndarray:
    """Which columns of ``sig`` come from a document with shingles (empty text has none: its
    signature is all ``MAX_HASH32`` and it is never compared)."""
    return (sig != MAX_HASH32).any(axis=0)


def candidate_pairs(
    sigs: Sequence[np.ndarray], bands: int, rows: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs of the documents of signature chunks (global numbers in chunk order).

    Returns the sorted unique codes of :func:`bucket_pairs` over every band, and the documents
    that were compared (those with shingles). ``groups`` (int per document) keeps documents of
    different groups out of each other's buckets.
    """
    n = sum(s.shape[1] for s in sigs)
    valid = np.flatnonzero(
        np.concatenate([has_shingles(s) for s in sigs]) if n else np.zeros(0, bool)
    )
    group = None if groups is None else groups[valid]
    codes = np.zeros(0, np.uint64)
    for band in range(bands):
        keys = (
            np.concatenate([band_keys(s, band, rows) for s in sigs])
            if n
            else np.zeros(0, np.uint64)
        )
        codes = np.union1d(codes, bucket_pairs(_mix_group(keys[valid], group), valid))
    return codes, valid


def _mix_group(keys: np.ndarray, group: np.ndarray | None) -> np.ndarray:
    if group is None:
        return keys
    return keys ^ (group.astype(np.uint64) * _GROUP_MUL)


def doc_bits_for(max_doc: int) -> int:
    """Low bits :func:`bucket_pairs` gives the document numbers when the largest is ``max_doc``."""
    if not 0 <= max_doc < 1 << MAX_DOC_BITS:
        raise StageError(
            f"near-duplicate search handles at most 2**{MAX_DOC_BITS} documents in one run "
            f"(got document number {max_doc}): deduplicate the input in parts"
        )
    return max(1, max_doc.bit_length())


def band_partition(band: int, keys: np.ndarray, parts: int) -> np.ndarray:
    """Partition (``0 <= p < parts``, uint32) of each of one band's keys, for grouping buckets
    on several workers.

    It depends on the band and the key's top 32 bits only, and :func:`bucket_pairs` never keeps
    fewer than those (document numbers have at most 32 bits): every member of a bucket falls in
    the same partition, whatever ``doc_bits`` the band is grouped with.
    """
    salt = np.uint64(((band + 1) * int(_BAND_MUL)) & 0xFFFFFFFFFFFFFFFF)
    mixed = (keys >> _SHIFT32) ^ salt
    return (fmix64(mixed) % np.uint64(parts)).astype(np.uint32)


def band_bucket_pairs(
    band: np.ndarray, keys: np.ndarray, docs: np.ndarray, doc_bits: int
) -> np.ndarray:
    """:func:`bucket_pairs` of every band present in ``band`` (one value per row), united.

    Given every row of some partitions (:func:`band_partition`), this is exactly the part of the
    candidate pairs those partitions hold: sorted unique codes.
    """
    if len(band) < 2:
        return np.zeros(0, np.uint64)
    order = np.argsort(band, kind="stable")
    band, keys, docs = band[order], keys[order], docs[order]
    bounds = np.flatnonzero(np.concatenate([[True], band[1:] != band[:-1], [True]]))
    parts = [
        bucket_pairs(keys[lo:hi], docs[lo:hi], doc_bits)
        for lo, hi in itertools.pairwise(bounds.tolist())
    ]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.uint64)


def _codes(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    lo = np.minimum(u, v).astype(np.uint64)
    hi = np.maximum(u, v).astype(np.uint64)
    return (lo << _SHIFT32) | hi


def split_codes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(u, v)`` int64 arrays from pair codes."""
    return (codes >> _SHIFT32).astype(np.int64), (codes & _LOW32).astype(np.int64)


class SetIndex:
    """Sorted, de-duplicated shingle-hash sets of selected documents, for exact Jaccard.

    ``docs`` are global document numbers (sorted, unique); ``hashes`` holds their shingle hashes
    concatenated in that order, ``counts[i]`` for ``docs[i]`` (any order, duplicates allowed).
    """

    def __init__(self, docs: np.ndarray, hashes: np.ndarray, counts: np.ndarray) -> None:
        self.docs = docs
        counts = np.asarray(counts, np.int64)
        starts = np.zeros(len(docs) + 1, np.int64)
        np.cumsum(counts, out=starts[1:])
        values: list[np.ndarray] = []
        sizes = np.zeros(len(docs), np.int64)
        # Sorted in groups of documents: temporaries stay bounded however many documents.
        groups = np.searchsorted(
            starts, np.arange(0, int(starts[-1]) + _VERIFY_CHUNK, _VERIFY_CHUNK)
        )
        groups = np.unique(np.concatenate([[0], np.minimum(groups, len(docs)), [len(docs)]]))
        for lo, hi in itertools.pairwise(groups):
            local = np.repeat(np.arange(hi - lo, dtype=np.uint64), counts[lo:hi])
            keys = (local << _SHIFT32) | hashes[starts[lo] : starts[hi]].astype(np.uint64)
            keys.sort()
            if len(keys):
                keep = np.empty(len(keys), bool)
                keep[0] = True
                np.not_equal(keys[1:], keys[:-1], out=keep[1:])
                keys = keys[keep]
            values.append((keys & _LOW32).astype(np.uint32))
            sizes[lo:hi] = np.bincount((keys >> _SHIFT32).astype(np.int64), minlength=hi - lo)
        self.values = np.concatenate(values) if values else np.zeros(0, np.uint32)
        self.offsets = np.zeros(len(docs) + 1, np.int64)
        np.cumsum(sizes, out=self.offsets[1:])

    def local(self, doc: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.docs, doc)

    def sizes(self, doc: np.ndarray) -> np.ndarray:
        index = self.local(doc)
        return self.offsets[index + 1] - self.offsets[index]

    def jaccard(self, u: np.ndarray, v: np.ndarray, empty: float = 0.0) -> np.ndarray:
        """Exact Jaccard similarity of the sets of each pair ``(u[i], v[i])``.

        ``empty`` is the value for two empty sets.
        """
        out = np.zeros(len(u), np.float64)
        if len(u) == 0:
            return out
        lu, lv = self.local(u), self.local(v)
        size_u = self.offsets[lu + 1] - self.offsets[lu]
        size_v = self.offsets[lv + 1] - self.offsets[lv]
        work = np.cumsum(size_u + size_v)
        bounds = np.searchsorted(
            work, np.arange(0, int(work[-1]) + _VERIFY_CHUNK, _VERIFY_CHUNK), side="right"
        )
        bounds = np.unique(np.concatenate([[0], bounds, [len(u)]]))
        for lo, hi in itertools.pairwise(bounds):
            if hi > lo:
                out[lo:hi] = self._jaccard_chunk(
                    lu[lo:hi], lv[lo:hi], size_u[lo:hi], size_v[lo:hi], empty
                )
        return out

    def _jaccard_chunk(
        self,
        lu: np.ndarray,
        lv: np.ndarray,
        size_u: np.ndarray,
        size_v: np.ndarray,
        empty: float,
    ) -> np.ndarray:
        pair = np.arange(len(lu), dtype=np.uint64)
        # Each side's sets, tagged with the pair number.
        keys_u = (np.repeat(pair, size_u) << _SHIFT32) | self.values[
            concat_ranges(self.offsets[lu], size_u)
        ].astype(np.uint64)
        keys_v = (np.repeat(pair, size_v) << _SHIFT32) | self.values[
            concat_ranges(self.offsets[lv], size_v)
        ].astype(np.uint64)
        # Each set has no repeats, so a value seen twice for one pair is in both sets.
        both = np.concatenate([keys_u, keys_v])
        both.sort()
        twice = both[1:][both[1:] == both[:-1]]
        inter = np.bincount((twice >> _SHIFT32).astype(np.int64), minlength=len(lu))
        union = size_u + size_v - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, inter / np.maximum(union, 1), empty)


def concat_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for every ``(s, c)``, vectorized."""
    counts = np.asarray(counts, np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    ends = np.cumsum(counts)
    offsets = np.repeat(np.asarray(starts, np.int64) - (ends - counts), counts)
    return np.arange(total, dtype=np.int64) + offsets


def estimated_jaccard(
    sigs: Sequence[np.ndarray], chunk_starts: np.ndarray, u: np.ndarray, v: np.ndarray
) -> np.ndarray:
    """Fraction of equal signature values (datasketch's ``MinHash.jaccard``) for each pair."""
    out = np.zeros(len(u), np.float64)
    step = 1 << 16
    for lo in range(0, len(u), step):
        a = gather_columns(sigs, chunk_starts, u[lo : lo + step])
        b = gather_columns(sigs, chunk_starts, v[lo : lo + step])
        out[lo : lo + step] = (a == b).mean(axis=0)
    return out


def gather_columns(
    sigs: Sequence[np.ndarray], chunk_starts: np.ndarray, docs: np.ndarray
) -> np.ndarray:
    """Signature columns of global documents from a list of ``(num_perm, n_i)`` chunks."""
    num_perm = sigs[0].shape[0] if sigs else 0
    out = np.empty((num_perm, len(docs)), np.uint32)
    chunk = np.searchsorted(chunk_starts, docs, side="right") - 1
    for c in np.unique(chunk):
        mask = chunk == c
        out[:, mask] = sigs[c][:, docs[mask] - chunk_starts[c]]
    return out


def connected_components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Component label (the smallest member) of each of ``n`` nodes, given undirected edges."""
    label = np.arange(n, dtype=np.int64)
    if len(u) == 0:
        return label
    while True:
        low = np.minimum(label[u], label[v])
        changed = False
        for side in (u, v):
            before = label[side]
            np.minimum.at(label, side, low)
            changed |= bool((label[side] != before).any())
        # Pointer jumping: follow labels to their own labels until stable.
        while True:
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped
        if not changed:
            return label


__all__ = [
    "MAX_DOC_BITS",
    "SetIndex",
    "band_bucket_pairs",
    "band_keys",
    "band_partition",
    "bucket_pairs",
    "candidate_pairs",
    "choose_bands",
    "collision_probability",
    "concat_ranges",
    "connected_components",
    "doc_bits_for",
    "estimated_jaccard",
    "gather_columns",
    "has_shingles",
    "split_codes",
]
