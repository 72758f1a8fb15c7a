"""MinHash signatures bit-identical to ``datasketch.MinHash``, computed in vectorized batches.

A document is the configured fields joined with a newline and normalized like exact dedup
(:func:`curate.util.text.matching_text`: NFKC, lower case, punctuation/symbols/whitespace folded to one
space). Its shingles are word n-grams (``"w1 w2 w3 w4 w5"``) or character n-grams of that
normalized text; a document shorter than ``n`` is one shingle (the whole text), an empty one has
none. Each shingle's UTF-8 bytes are hashed with :func:`shingle_hash32`, and the signature is what
``datasketch.MinHash(num_perm, seed, hashfunc=shingle_hash32, scheme=scheme)`` gives after
``update_batch(shingles)``::

    from datasketch import MinHash
    m = MinHash(num_perm=128, seed=1, hashfunc=shingle_hash32, scheme="affine32")
    m.update_batch(reference_shingles(normalized_text))
    assert (m.hashvalues == MinHasher().signatures(texts)[:, i]).all()

The whole batch is computed with numpy: shingle hashes come from prefix sums of a polynomial
hash over the batch's bytes (no per-shingle Python code), and each permutation is one vectorized
multiply-add plus a segmented minimum over every shingle of the batch.

Permutation schemes (pinned, re-implemented here, proven equal to datasketch in the tests):
``"affine32"`` (datasketch >= 2.0 default: MurmurHash3 fmix32 pre-mix, then ``a*h + b mod 2**32``)
and ``"legacy"`` (datasketch < 2.0: ``(a*h + b) mod (2**61 - 1)`` truncated to 32 bits).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import StageError
from curate.util.text import (
    HAS_MEANINGFUL_SYMBOL,
    PROMPT_ROLES,
    matching_text,
    record_text,
    string_buffers,
)

Scheme = Literal["affine32", "legacy"]
ShingleKind = Literal["word", "char"]

MAX_HASH32 = np.uint32(0xFFFFFFFF)
_M64 = (1 << 64) - 1
_MERSENNE61 = np.uint64((1 << 61) - 1)
# Polynomial hash base (odd, so invertible mod 2**64) and its inverse.
_P = 0x9E3779B97F4A7C15
_Q = pow(_P, -1, 1 << 64)
_SPACE = np.uint64(32)
_SPACE_Q = np.uint64((32 * _Q) % (1 << 64))
_U64_33 = np.uint64(33)
_U64_32 = np.uint64(32)
_FMIX64_M1 = np.uint64(0xFF51AFD7ED558CCD)
_FMIX64_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_FMIX32 = (
    np.uint32(16),
    np.uint32(0x85EBCA6B),
    np.uint32(13),
    np.uint32(0xC2B2AE35),
    np.uint32(16),
)

# Work units: a chunk of documents is hashed and permuted together. ~256 KB of text keeps the
# byte-level arrays and the per-permutation temporaries in cache (measured: 256 KB is fastest).
_CHUNK_BYTES = 1 << 18
_CHUNK_DOCS = 8192
_PERM_BLOCK = 4  # permutations per vectorized step (measured: 4-8 is fastest)


# ---------------------------------------------------------------------------------------------
# Reference (pure Python) definitions: the contract the vectorized code is tested against.


def _fmix64_int(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _M64
    return h ^ (h >> 33)


def shingle_hash32(data: bytes) -> int:
    """The 32-bit shingle hash, usable as ``datasketch.MinHash(hashfunc=shingle_hash32)``.

    A polynomial hash of the bytes mod 2**64 (base 0x9E3779B97F4A7C15, Horner order), xor the
    byte length, MurmurHash3's 64-bit finalizer, top 32 bits. Chosen because the polynomial form
    lets a whole batch be hashed from prefix sums; this Python version is the specification.
    """
    h = 0
    for byte in data:
        h = (h * _P + byte) & _M64
    return _fmix64_int(h ^ len(data)) >> 32


def reference_shingles(normalized: str, kind: ShingleKind = "word", n: int = 5) -> list[bytes]:
    """The shingles of one already-normalized text (the output of ``matching_text``)."""
    if kind == "word":
        words = [w for w in normalized.split(" ") if w]
        if not words:
            return []
        if len(words) < n:
            return [" ".join(words).encode("utf-8")]
        return [" ".join(words[i : i + n]).encode("utf-8") for i in range(len(words) - n + 1)]
    if not normalized:
        return []
    if len(normalized) < n:
        return [normalized.encode("utf-8")]
    return [normalized[i : i + n].encode("utf-8") for i in range(len(normalized) - n + 1)]


def permutations(num_perm: int, seed: int, scheme: Scheme) -> tuple[np.ndarray, np.ndarray]:
    """The ``(a, b)`` permutation parameters datasketch draws for ``(num_perm, seed, scheme)``."""
    gen = np.random.RandomState(seed)
    if scheme == "legacy":
        pairs = np.array(
            [
                (
                    gen.randint(1, _MERSENNE61, dtype=np.uint64),
                    gen.randint(0, _MERSENNE61, dtype=np.uint64),
                )
                for _ in range(num_perm)
            ],
            dtype=np.uint64,
        ).T
        return pairs[0].copy(), pairs[1].copy()
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a.astype(np.uint32), b.astype(np.uint32)


# ---------------------------------------------------------------------------------------------
# Vectorized kernels.


def fmix64(h: np.ndarray) -> np.ndarray:
    h ^= h >> _U64_33
    h *= _FMIX64_M1
    h ^= h >> _U64_33
    h *= _FMIX64_M2
    h ^= h >> _U64_33
    return h


def _fmix32(h: np.ndarray) -> np.ndarray:
    s1, m1, s2, m2, s3 = _FMIX32
    h = h ^ (h >> s1)
    h *= m1
    h ^= h >> s2
    h *= m2
    h ^= h >> s3
    return h


class _Powers:
    """Cached ``P**i`` and ``Q**i`` (mod 2**64) tables, grown on demand."""

    def __init__(self) -> None:
        self.p = np.ones(1, np.uint64)
        self.q = np.ones(1, np.uint64)

    def ensure(self, n: int) -> None:
        if n <= len(self.p):
            return
        size = max(n, 2 * len(self.p), 1 << 16)
        for name, base in (("p", _P), ("q", _Q)):
            table = np.empty(size, np.uint64)
            table[0] = 1
            table[1:] = np.uint64(base)
            np.cumprod(table, out=table)  # wraps mod 2**64, as intended
            setattr(self, name, table)


_POWERS = _Powers()


def _prefix(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``out[0] = 0``, ``out[i+1] = sum(values[:i+1] * weights[:i+1])`` mod 2**64."""
    out = np.empty(len(values) + 1, np.uint64)
    out[0] = 0
    np.multiply(values, weights, out=out[1:], casting="unsafe")
    np.cumsum(out[1:], out=out[1:])
    return out


def _finish(poly: np.ndarray, length: np.ndarray) -> np.ndarray:
    poly ^= length.astype(np.uint64)
    return (fmix64(poly) >> _U64_32).astype(np.uint32)


def _word_spans(
    buf: np.ndarray, offsets: np.ndarray, ascii_fold: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Word [start, end) byte positions and the (lower-cased) bytes to hash.

    ``ascii_fold``: the documents are raw ASCII text whose only characters are letters, digits,
    punctuation/symbols and ``\\t\\n\\f\\r`` spaces; a word is a run of letters and digits, lower-cased
    (exactly the words of ``matching_text``). Otherwise the text is already normalized and words
    are separated by single spaces.
    """
    if ascii_fold:
        # ``| 32`` lower-cases letters and leaves digits alone; other bytes are never hashed.
        values = buf | np.uint8(32)
        is_word = ((values - np.uint8(97)) < np.uint8(26)) | ((buf - np.uint8(48)) < np.uint8(10))
    else:
        values = buf
        is_word = buf != np.uint8(32)
    padded = np.zeros(len(buf) + 2, bool)
    padded[1:-1] = is_word
    edges = np.flatnonzero(padded[1:] ^ padded[:-1])  # alternating word starts and ends
    starts = edges[0::2]
    ends = edges[1::2]
    # A word running into the next document's first word is two words.
    inner = np.unique(offsets[1:-1])
    inner = inner[(inner > 0) & (inner < len(buf))]
    cut = inner[is_word[inner - 1] & is_word[inner]]
    if len(cut):
        starts = np.insert(starts, np.searchsorted(starts, cut), cut)
        ends = np.insert(ends, np.searchsorted(ends, cut), cut)
    return starts, ends, values


def _word_shingle_hashes(
    buf: np.ndarray, offsets: np.ndarray, ascii_fold: bool, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes (uint32, grouped by document in order) and shingle counts per document."""
    starts, ends, values = _word_spans(buf, offsets, ascii_fold)
    n_docs = len(offsets) - 1
    first_word = np.searchsorted(starts, offsets).astype(np.int64)  # per doc, plus the end
    words_per_doc = np.diff(first_word)
    n_words = len(starts)
    if n_words == 0:
        return np.zeros(0, np.uint32), np.zeros(n_docs, np.int64)
    word_len = ends - starts
    _POWERS.ensure(max(len(buf), int(word_len.sum()) + n_words) + 1)
    q, p = _POWERS.q, _POWERS.p
    # Hash of every word from a prefix sum over the chunk's bytes.
    prefix = _prefix(values, q[: len(values)])
    word_hash = prefix[ends]
    word_hash -= prefix[starts]
    word_hash *= p[ends - 1]
    # Virtual normalized stream: words joined by one space; v_end is each word's end position.
    v_end = np.cumsum(word_len + 1)
    v_end -= 1
    # word_hash * Q^(v_end-1) + ' ' * Q^v_end, with Q^v_end = Q^(v_end-1) * Q.
    word_hash += _SPACE_Q
    contrib = word_hash * q[v_end - 1]
    word_prefix = np.empty(n_words + 1, np.uint64)
    word_prefix[0] = 0
    np.cumsum(contrib, out=word_prefix[1:])
    # A shingle starts at every word with n-1 words after it in its document; a document with
    # fewer than n words is one shingle.
    big = words_per_doc >= n
    small = (words_per_doc > 0) & ~big
    counts = np.where(big, words_per_doc - n + 1, small.astype(np.int64))
    is_first = np.ones(n_words, bool)
    doc_end = first_word[1:]
    big_end = doc_end[big]
    for j in range(1, n):
        is_first[big_end - j] = False
    if small.any():
        drop = np.zeros(n_words + 1, np.int64)
        np.add.at(drop, first_word[:-1][small] + 1, 1)
        np.add.at(drop, doc_end[small], -1)
        is_first &= np.cumsum(drop[:-1]) == 0
    first = np.flatnonzero(is_first)
    windows = n_words - n + 1
    if windows > 0:
        # Every window of exactly n consecutive words, with slices only (no gathers).
        last_end = v_end[n - 1 :]
        span = word_prefix[n:] - word_prefix[:windows]
        # Drop the space after the last word: ' ' * Q^last_end * P^(last_end-1) = ' ' * Q.
        span *= p[last_end - 1]
        span -= _SPACE_Q
        length = last_end - (v_end[:windows] - word_len[:windows])
        hashes = _finish(span, length)[np.minimum(first, windows - 1)]
    else:
        hashes = np.zeros(len(first), np.uint32)
    if small.any():
        # Documents shorter than n: one shingle from their first to their last word.
        lo = first_word[:-1][small]
        hi = doc_end[small] - 1
        span = word_prefix[hi + 1] - word_prefix[lo]
        span *= p[v_end[hi] - 1]
        span -= _SPACE_Q
        length = v_end[hi] - (v_end[lo] - word_len[lo])
        hashes[np.searchsorted(first, lo)] = _finish(span, length)
    return hashes, counts


def _char_shingle_hashes(
    buf: np.ndarray, offsets: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Character n-gram hashes of normalized text (UTF-8 aware)."""
    n_docs = len(offsets) - 1
    char_starts = np.flatnonzero((buf & np.uint8(0xC0)) != np.uint8(0x80))
    chars_per_doc = np.diff(np.searchsorted(char_starts, offsets)).astype(np.int64)
    if len(char_starts) == 0:
        return np.zeros(0, np.uint32), np.zeros(n_docs, np.int64)
    counts = np.where(chars_per_doc >= n, chars_per_doc - n + 1, np.minimum(chars_per_doc, 1))
    first_char = np.zeros(n_docs + 1, np.int64)
    np.cumsum(chars_per_doc, out=first_char[1:])
    doc_of_char = np.repeat(np.arange(n_docs), chars_per_doc)
    local = np.arange(len(char_starts)) - first_char[doc_of_char]
    first = np.flatnonzero(local < counts[doc_of_char])
    doc = doc_of_char[first]
    end_char = first + np.minimum(n, chars_per_doc[doc])
    bounds = np.append(char_starts, len(buf))
    start = char_starts[first]
    end = np.where(
        end_char < first_char[doc + 1],
        bounds[np.minimum(end_char, len(char_starts))],
        offsets[doc + 1],
    )
    _POWERS.ensure(len(buf) + 1)
    prefix = _prefix(buf, _POWERS.q[: len(buf)])
    poly = (prefix[end] - prefix[start]) * _POWERS.p[end - 1]
    return _finish(poly, end - start), counts


# Bytes that make a document take the exact (Arrow) normalization path: non-ASCII, and control
# characters other than \t \n \f \r (their handling by NFKC/trim is not a simple byte rule).
_SLOW_BYTE = np.zeros(256, bool)
_SLOW_BYTE[0x80:] = True
_SLOW_BYTE[:0x20] = True
_SLOW_BYTE[[0x09, 0x0A, 0x0C, 0x0D]] = False
_SLOW_BYTE[0x7F] = True


def _slow_docs(buf: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Boolean per document: needs the Arrow ``matching_text`` path."""
    # Cheap test first: most text is plain printable ASCII.
    suspicious = (buf >= np.uint8(0x7F)) | (buf < np.uint8(0x20))
    positions = np.flatnonzero(suspicious)
    slow = np.zeros(len(offsets) - 1, bool)
    if len(positions):
        positions = positions[_SLOW_BYTE[buf[positions]]]
        slow[np.searchsorted(offsets, positions, side="right") - 1] = True
    return slow


@dataclass
class SignatureBatch:
    """Signatures of a batch: ``sig[k, i]`` is permutation ``k`` of document ``i``.

    ``hashes`` holds every shingle hash (grouped by document, ``counts[i]`` per document) for exact
    Jaccard verification; documents without shingles have an all-``0xFFFFFFFF`` signature.
    """

    sig: np.ndarray
    hashes: np.ndarray = field(repr=False)
    counts: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class MinHasher:
    """Computes datasketch-identical MinHash signatures for whole Arrow batches."""

    num_perm: int = 128
    seed: int = 1
    scheme: Scheme = "affine32"
    shingle: ShingleKind = "word"
    ngram: int = 5

    def __post_init__(self) -> None:
        if self.num_perm < 1:
            raise StageError(f"num_perm must be at least 1 (got {self.num_perm})")
        if self.ngram < 1:
            raise StageError(f"ngram must be at least 1 (got {self.ngram})")
        a, b = permutations(self.num_perm, self.seed, self.scheme)
        object.__setattr__(self, "_a", a)
        object.__setattr__(self, "_b", b)

    def signatures(self, texts: pa.Array | pa.ChunkedArray) -> SignatureBatch:
        """Signatures of raw (not yet normalized) texts: ``(num_perm, len(texts))`` uint32."""
        if isinstance(texts, pa.ChunkedArray):
            texts = texts.combine_chunks()
        texts = pc.fill_null(texts, "")
        n_docs = len(texts)
        sig = np.full((self.num_perm, n_docs), MAX_HASH32, np.uint32)
        hash_parts: list[np.ndarray] = []
        counts = np.zeros(n_docs, np.int64)
        if n_docs == 0:
            return SignatureBatch(sig, np.zeros(0, np.uint32), counts)
        raw_offsets, _ = string_buffers(texts)
        doc_starts = _chunk_starts(raw_offsets)
        # Process in chunks (bounded memory, cache-sized temporaries); results land in doc order.
        for lo, hi in itertools.pairwise(doc_starts):
            chunk = texts.slice(int(lo), int(hi - lo))
            hashes, chunk_counts = self._chunk_shingle_hashes(chunk)
            counts[lo:hi] = chunk_counts
            self._permute(hashes, chunk_counts, sig[:, lo:hi])
            hash_parts.append(hashes)
        all_hashes = np.concatenate(hash_parts) if hash_parts else np.zeros(0, np.uint32)
        return SignatureBatch(sig, all_hashes, counts)

    def shingle_hashes(self, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Hashes of every shingle of every raw text (grouped by document) and counts per text.

        Hashed in chunks of about ``_CHUNK_BYTES`` of text: the rolling hash's temporaries (and its
        table of powers, which lives on) are sized by the text hashed at once."""
        if isinstance(texts, pa.ChunkedArray):
            texts = texts.combine_chunks()
        texts = pc.fill_null(texts, "")
        if len(texts) == 0:
            return np.zeros(0, np.uint32), np.zeros(0, np.int64)
        raw_offsets, _ = string_buffers(texts)
        doc_starts = _chunk_starts(raw_offsets)
        if len(doc_starts) <= 2:
            return self._chunk_shingle_hashes(texts)
        hash_parts: list[np.ndarray] = []
        count_parts: list[np.ndarray] = []
        for lo, hi in itertools.pairwise(doc_starts):
            hashes, counts = self._chunk_shingle_hashes(texts.slice(int(lo), int(hi - lo)))
            hash_parts.append(hashes)
            count_parts.append(counts)
        return np.concatenate(hash_parts), np.concatenate(count_parts)

    def _chunk_shingle_hashes(self, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`shingle_hashes` of one chunk."""
        n_docs = len(texts)
        if self.shingle == "char":
            offsets, buf = string_buffers(matching_text(texts))
            return _char_shingle_hashes(buf, offsets, self.ngram)
        offsets, buf = string_buffers(texts)
        slow = _slow_docs(buf, offsets)
        # "C++", "2+2": matching_text spells these symbols out; the byte-level path cannot.
        slow |= np.asarray(
            pc.fill_null(pc.match_substring_regex(texts, HAS_MEANINGFUL_SYMBOL), False)
        )
        if not slow.any():
            return _word_shingle_hashes(buf, offsets, True, self.ngram)
        # Non-ASCII documents (and those) go through Arrow's Unicode normalization; results are merged back.
        counts = np.zeros(n_docs, np.int64)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for mask, fast in ((~slow, True), (slow, False)):
            index = np.flatnonzero(mask)
            if len(index) == 0:
                continue
            subset = texts.take(pa.array(index))
            if fast:
                sub_off, sub_buf = string_buffers(subset)
            else:
                sub_off, sub_buf = string_buffers(matching_text(subset))
            hashes, sub_counts = _word_shingle_hashes(sub_buf, sub_off, fast, self.ngram)
            counts[index] = sub_counts
            parts.append((index, hashes, sub_counts))
        return _merge_by_doc(n_docs, counts, parts), counts

    def from_hashes(
        self, hashes: np.ndarray, counts: np.ndarray, perms: int | None = None
    ) -> np.ndarray:
        """Signatures from shingle hashes (as ``shingle_hashes`` returns them); only the first
        ``perms`` permutations when given (a cheap consistency check of stored signatures)."""
        perms = self.num_perm if perms is None else min(perms, self.num_perm)
        out = np.full((perms, len(counts)), MAX_HASH32, np.uint32)
        self._permute(hashes, np.asarray(counts, np.int64), out)
        return out

    def _permute(self, hashes: np.ndarray, counts: np.ndarray, out: np.ndarray) -> None:
        """Min over each document's shingles of the first ``len(out)`` permutations, into ``out``."""
        num_perm = out.shape[0]
        has = counts > 0
        if not has.any():
            return
        seg = np.zeros(int(has.sum()), np.int64)
        np.cumsum(counts[has][:-1], out=seg[1:])
        a, b = self._a, self._b  # type: ignore[attr-defined]
        cols = np.flatnonzero(has)
        contiguous = len(cols) == out.shape[1]
        tmp: np.ndarray
        if self.scheme == "legacy":
            hv = hashes.astype(np.uint64)
            tmp = np.empty(len(hv), np.uint64)
            mask = np.uint64(0xFFFFFFFF)
            for k in range(num_perm):
                np.multiply(hv, a[k], out=tmp)
                tmp += b[k]
                np.remainder(tmp, _MERSENNE61, out=tmp)
                tmp &= mask
                mins = np.minimum.reduceat(tmp, seg).astype(np.uint32)
                if contiguous:
                    out[k] = mins
                else:
                    out[k, cols] = mins
            return
        hv = _fmix32(hashes.copy())[None, :]
        # A few permutations per numpy call: fewer passes over Python, still cache-sized.
        block = np.empty((_PERM_BLOCK, hv.shape[1]), np.uint32)
        for k in range(0, num_perm, _PERM_BLOCK):
            rows = min(_PERM_BLOCK, num_perm - k)
            tmp = block[:rows]
            np.multiply(hv, a[k : k + rows, None], out=tmp)
            np.add(tmp, b[k : k + rows, None], out=tmp)
            mins = np.minimum.reduceat(tmp, seg, axis=1)
            if contiguous:
                out[k : k + rows] = mins
            else:
                out[k : k + rows, cols] = mins


def _chunk_starts(offsets: np.ndarray) -> np.ndarray:
    """Document indices where chunks of about ``_CHUNK_BYTES`` (and <= ``_CHUNK_DOCS``) start."""
    n_docs = len(offsets) - 1
    targets = np.arange(0, int(offsets[-1]) + _CHUNK_BYTES, _CHUNK_BYTES)
    by_bytes = np.searchsorted(offsets[:-1], targets, side="left")
    by_docs = np.arange(0, n_docs, _CHUNK_DOCS)
    starts = np.unique(np.concatenate([by_bytes, by_docs, [0, n_docs]]))
    return starts[starts <= n_docs]


def _merge_by_doc(
    n_docs: int, counts: np.ndarray, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> np.ndarray:
    """Scatter per-subset shingle hashes back into document order."""
    total = int(counts.sum())
    out = np.empty(total, np.uint32)
    doc_start = np.zeros(n_docs + 1, np.int64)
    np.cumsum(counts, out=doc_start[1:])
    for index, hashes, sub_counts in parts:
        if len(hashes) == 0:
            continue
        owner = np.repeat(index, sub_counts)
        sub_start = np.zeros(len(index) + 1, np.int64)
        np.cumsum(sub_counts, out=sub_start[1:])
        local = np.arange(len(hashes)) - np.repeat(sub_start[:-1], sub_counts)
        out[doc_start[owner] + local] = hashes
    return out


def document_text(table: pa.Table, fields: list[str]) -> pa.Array:
    """The raw text a record is compared on: its fields joined by a newline.

    ``messages`` means every system/user turn of a conversation, joined by a newline (as in exact
    dedup).
    """
    return record_text(table, fields, separator="\n", roles=PROMPT_ROLES, turn_separator="\n")


__all__ = [
    "MAX_HASH32",
    "MinHasher",
    "SignatureBatch",
    "document_text",
    "permutations",
    "reference_shingles",
    "shingle_hash32",
]
