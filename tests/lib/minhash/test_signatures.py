"""MinHash signatures (curate.lib.minhash.signatures) and the LSH helpers (curate.lib.minhash.lsh).

The central promise: signatures are bit-identical to ``datasketch.MinHash`` with the same
``num_perm``, seed, scheme and hash function, for any text.
"""

from __future__ import annotations

import inspect
import random

import numpy as np
import pyarrow as pa
import pytest
from datasketch import MinHash
from hypothesis import given, settings
from hypothesis import strategies as st

import curate.lib.minhash.signatures as minhash_module
from curate.lib.minhash.lsh import (
    SetIndex,
    bucket_pairs,
    choose_bands,
    collision_probability,
    connected_components,
    split_codes,
)
from curate.lib.minhash.signatures import (
    MAX_HASH32,
    MinHasher,
    permutations,
    reference_shingles,
    shingle_hash32,
)
from curate.util.text import matching_text

HAS_SCHEMES = "scheme" in inspect.signature(MinHash.__init__).parameters
needs_schemes = pytest.mark.skipif(
    not HAS_SCHEMES, reason="datasketch < 2.0 has only the legacy scheme"
)

_ALPHABET = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    + [" "] * 12
    + list(".,;:!?'\"-()[]{}<>/\\|@#$%^&*_+=~`\t\n\r\f")
    + [
        "é",
        "ß",
        "Ä",
        "日本",
        "\u00a0",
        "\u2028",
        "ﬁ",
        "\x0b",
        "\x1f",
        "\x7f",
        "İ",
        "😀",
        "—",
        "“",
        "”",
        "Ω",
        "ǅ",
    ]
)


def random_texts(count: int, seed: int) -> list[str]:
    """Random texts: plain ASCII words, punctuation-heavy, Unicode, control characters, empties."""
    rng = random.Random(seed)
    words = [
        "alpha",
        "Beta",
        "gamma",
        "DELTA",
        "x",
        "42",
        "don't",
        "e-mail",
        "naïve",
        "Straße",
        "東京",
    ]
    texts = [
        "",
        " ",
        "...",
        "a",
        "Hello, World!",
        "one two three four",
        "one two three four five six",
    ]
    while len(texts) < count:
        style = rng.randrange(4)
        if style == 0:  # ASCII sentences (the fast path)
            texts.append(
                " ".join(
                    rng.choice(words[:7]) + rng.choice(["", "", ",", "."])
                    for _ in range(rng.randrange(0, 60))
                )
            )
        elif style == 1:  # anything goes
            texts.append(
                "".join(rng.choice(_ALPHABET) for _ in range(rng.choice([0, 1, 3, 10, 40, 200])))
            )
        elif style == 2:  # mixed words
            texts.append(" ".join(rng.choice(words) for _ in range(rng.randrange(0, 30))))
        else:
            texts.append("")
    rng.shuffle(texts)
    return texts


def datasketch_signature(
    normalized: str, kind: str, n: int, num_perm: int, seed: int, scheme: str
) -> np.ndarray:
    kwargs = {"scheme": scheme} if HAS_SCHEMES else {}
    m = MinHash(num_perm=num_perm, seed=seed, hashfunc=shingle_hash32, **kwargs)
    m.update_batch(reference_shingles(normalized, kind, n))  # type: ignore[arg-type]
    return np.asarray(m.hashvalues).astype(np.uint64)


CONFIGS = [
    pytest.param("affine32", "word", 5, 128, 1, marks=needs_schemes, id="affine32-word5"),
    pytest.param("affine32", "word", 1, 64, 7, marks=needs_schemes, id="affine32-word1"),
    pytest.param("affine32", "word", 3, 32, 42, marks=needs_schemes, id="affine32-word3"),
    pytest.param("affine32", "char", 5, 64, 3, marks=needs_schemes, id="affine32-char5"),
    pytest.param("legacy", "word", 5, 64, 1, id="legacy-word5"),
    pytest.param("legacy", "char", 3, 32, 11, id="legacy-char3"),
]


@pytest.mark.parametrize(("scheme", "kind", "n", "num_perm", "seed"), CONFIGS)
def test_signatures_equal_datasketch(
    scheme: str, kind: str, n: int, num_perm: int, seed: int
) -> None:
    texts = random_texts(160, seed=num_perm + seed)
    batch = MinHasher(
        num_perm=num_perm, seed=seed, scheme=scheme, shingle=kind, ngram=n
    ).signatures(pa.array(texts))  # type: ignore[arg-type]
    assert batch.sig.dtype == np.uint32
    assert batch.sig.shape == (num_perm, len(texts))
    normalized = matching_text(pa.array(texts)).to_pylist()
    for i, text in enumerate(normalized):
        expected = datasketch_signature(text, kind, n, num_perm, seed, scheme)
        assert np.array_equal(batch.sig[:, i].astype(np.uint64), expected), (texts[i], text)
        assert batch.counts[i] == len(reference_shingles(text, kind, n))


@pytest.mark.parametrize("scheme", [pytest.param("affine32", marks=needs_schemes), "legacy"])
def test_permutations_are_datasketchs(scheme: str) -> None:
    a, b = permutations(128, 5, scheme)  # type: ignore[arg-type]
    kwargs = {"scheme": scheme} if HAS_SCHEMES else {}
    ds_a, ds_b = MinHash(num_perm=128, seed=5, **kwargs).permutations
    assert np.array_equal(a.astype(np.uint64), np.asarray(ds_a).astype(np.uint64))
    assert np.array_equal(b.astype(np.uint64), np.asarray(ds_b).astype(np.uint64))


@pytest.mark.parametrize(("kind", "n"), [("word", 5), ("word", 2), ("char", 4)])
def test_vectorized_shingle_hashes_match_reference(kind: str, n: int) -> None:
    texts = random_texts(200, seed=n)
    hashes, counts = MinHasher(shingle=kind, ngram=n).shingle_hashes(pa.array(texts))  # type: ignore[arg-type]
    expected = [
        shingle_hash32(s)
        for t in matching_text(pa.array(texts)).to_pylist()
        for s in reference_shingles(t, kind, n)
    ]  # type: ignore[arg-type]
    assert hashes.tolist() == expected
    assert int(counts.sum()) == len(expected)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(_ALPHABET), max_size=40).map("".join),
        max_size=12,
    )
)
def test_fast_ascii_path_equals_arrow_normalization(texts: list[str]) -> None:
    # Plain-ASCII rows take a numpy path, the others Arrow's matching_text: same shingles.
    hashes, counts = MinHasher(ngram=2).shingle_hashes(pa.array(texts, pa.string()))
    normalized = matching_text(pa.array(texts, pa.string())).to_pylist()
    expected = [[shingle_hash32(s) for s in reference_shingles(t, "word", 2)] for t in normalized]
    assert counts.tolist() == [len(e) for e in expected]
    assert hashes.tolist() == [h for e in expected for h in e]


def test_shingles_follow_exact_dedup_normalization() -> None:
    assert reference_shingles("a b c", "word", 5) == [b"a b c"]
    assert reference_shingles("", "word", 5) == []
    assert reference_shingles("a b c d e f", "word", 5) == [b"a b c d e", b"b c d e f"]
    assert reference_shingles("abcd", "char", 3) == [b"abc", b"bcd"]
    # Case, punctuation and spacing changes give the same signature.
    sig = (
        MinHasher(num_perm=16)
        .signatures(
            pa.array(
                [
                    "Hello,   World! How are you today?",
                    "hello world how are you today",
                    "HELLO WORLD — how are you; today",
                ]
            )
        )
        .sig
    )
    assert (sig[:, 0] == sig[:, 1]).all() and (sig[:, 0] == sig[:, 2]).all()


def test_signatures_from_stored_shingle_hashes() -> None:
    texts = pa.array(random_texts(80, seed=12))
    hasher = MinHasher(num_perm=64, seed=3)
    batch = hasher.signatures(texts)
    assert np.array_equal(hasher.from_hashes(batch.hashes, batch.counts), batch.sig)
    assert np.array_equal(hasher.from_hashes(batch.hashes, batch.counts, 4), batch.sig[:4])


def test_empty_documents_have_the_empty_signature() -> None:
    batch = MinHasher(num_perm=8).signatures(pa.array(["", None, "!!!", "word"]))
    assert (batch.sig[:, :3] == MAX_HASH32).all()
    assert batch.counts.tolist() == [0, 0, 0, 1]
    assert not (batch.sig[:, 3] == MAX_HASH32).all()


def test_signatures_do_not_depend_on_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = pa.array(random_texts(300, seed=9))
    whole = MinHasher(num_perm=32).signatures(texts)
    monkeypatch.setattr(minhash_module, "_CHUNK_BYTES", 64)
    monkeypatch.setattr(minhash_module, "_CHUNK_DOCS", 3)
    chunked = MinHasher(num_perm=32).signatures(texts)
    assert np.array_equal(whole.sig, chunked.sig)
    assert np.array_equal(whole.hashes, chunked.hashes)
    sliced = MinHasher(num_perm=32).signatures(texts.slice(100, 50))
    assert np.array_equal(sliced.sig, whole.sig[:, 100:150])


def test_large_and_chunked_string_arrays() -> None:
    texts = random_texts(50, seed=4)
    plain = MinHasher(num_perm=16).signatures(pa.array(texts)).sig
    large = MinHasher(num_perm=16).signatures(pa.array(texts, pa.large_string())).sig
    chunked = MinHasher(num_perm=16).signatures(pa.chunked_array([texts[:20], texts[20:]])).sig
    assert np.array_equal(plain, large) and np.array_equal(plain, chunked)


# ------------------------------------------------------------------------------------- LSH


def test_choose_bands_keeps_pairs_at_the_threshold() -> None:
    assert choose_bands(0.8, 128) == (21, 6)
    assert choose_bands(0.7, 128) == (32, 4)
    for threshold in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
        bands, rows = choose_bands(threshold, 128)
        assert bands * rows <= 128
        assert collision_probability(threshold, bands, rows) >= 0.995
        # One more row per band would drop below the recall target.
        more = rows + 1
        assert collision_probability(threshold, 128 // more, more) < 0.995
    # datasketch's default split at 0.8 (b=9, r=13) is far below.
    assert collision_probability(0.8, 9, 13) < 0.5


def test_bucket_pairs_are_linear_per_bucket() -> None:
    # Band keys are 64-bit hashes: spread small labels over the high bits.
    keys = np.array([5, 1, 5, 2, 5, 1, 9, 5], np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    docs = np.arange(len(keys)) * 10
    u, v = split_codes(bucket_pairs(keys, docs))
    pairs = set(zip(u.tolist(), v.tolist(), strict=True))
    # Bucket 5 = docs 0, 20, 40, 70: chain + star; bucket 1 = docs 10, 50.
    assert pairs == {(0, 20), (20, 40), (40, 70), (0, 40), (0, 70), (10, 50)}
    big = bucket_pairs(np.zeros(1000, np.uint64), np.arange(1000))
    assert len(big) == 2 * 999 - 1  # chain + star share the first edge


def test_set_index_jaccard_is_exact() -> None:
    rng = np.random.default_rng(0)
    sets = [
        np.unique(rng.integers(0, 60, rng.integers(0, 40))).astype(np.uint32) for _ in range(30)
    ]
    docs = np.arange(100, 130)
    with_dups = [np.concatenate([s, s[: len(s) // 2]]) for s in sets]  # duplicates are ignored
    index = SetIndex(docs, np.concatenate(with_dups), np.array([len(s) for s in with_dups]))
    u = rng.integers(0, 30, 200)
    v = rng.integers(0, 30, 200)
    got = index.jaccard(docs[u], docs[v])
    for k in range(200):
        a, b = set(sets[u[k]].tolist()), set(sets[v[k]].tolist())
        want = len(a & b) / len(a | b) if a | b else 0.0
        assert got[k] == pytest.approx(want)


def test_connected_components_label_by_smallest_member() -> None:
    u = np.array([5, 1, 2, 8, 7])
    v = np.array([6, 2, 3, 7, 9])
    labels = connected_components(10, u, v)
    assert labels.tolist() == [0, 1, 1, 1, 4, 5, 5, 7, 7, 7]
    # A long chain in reverse order still converges to one label.
    n = 500
    chain = connected_components(n, np.arange(n - 1)[::-1], np.arange(1, n)[::-1])
    assert (chain == 0).all()
