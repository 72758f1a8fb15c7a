"""The echo rule's similarity: exact bigram keys give what the 64-bit hashed bigrams give, and the
Jaccard values are the ones the definition says (bigrams, one-word rows by their word)."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.lib.decontam.ngrams import split_words
from curate.stages.filters.quality.rules.echo import (
    _hashed_bigram_jaccard,
    bigram_jaccard,
    bigram_jaccards,
)


def hashed(left: pa.Array, right: pa.Array) -> np.ndarray:
    both = pc.utf8_normalize(pa.concat_arrays([left, right]), "NFKC")
    words = split_words(both, normalize=False)
    ids = pc.dictionary_encode(words.words).indices.to_numpy(zero_copy_only=False)
    return _hashed_bigram_jaccard(words, ids.astype(np.int64), len(left))


def test_known_values() -> None:
    left = pa.array(["a b c", "a b c", "word", "word", "", "x y", "Ｆｕｌｌ width", " a  b "])
    right = pa.array(["a b c", "c b a", "word", "other", "", "y", "Full width", "a b"])
    # a b c vs c b a: {ab, bc} and {cb, ba} share nothing; "x y" vs "y": {xy} vs {y}.
    expected = [1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    assert bigram_jaccard(left, right).tolist() == expected
    assert bigram_jaccard(pa.array(["a b c d"]), pa.array(["a b c e"])).tolist() == [0.5]


def test_exact_keys_equal_the_hashed_bigrams_on_random_texts() -> None:
    rng = random.Random(7)
    vocabulary = ["the", "a", "cat", "Cat", "sat", "on", "mat.", "é", "日本", "x", "\u3000"]

    def text() -> str | None:
        if rng.random() < 0.05:
            return None
        words = [rng.choice(vocabulary) for _ in range(rng.choice([0, 1, 1, 2, 3, 8, 30]))]
        return rng.choice([" ", "  ", "\n"]).join(words) + rng.choice(["", " "])

    left = pa.array([text() for _ in range(3000)], pa.string())
    right = pa.array([text() for _ in range(3000)], pa.string())
    left, right = pc.fill_null(left, ""), pc.fill_null(right, "")
    exact = bigram_jaccard(left, right)
    assert np.array_equal(exact, hashed(left, right))
    assert 0 < (exact == 1.0).sum() < len(exact)
    assert ((exact > 0) & (exact < 1)).sum() > 100


def test_one_anchor_against_several_columns_is_each_pair_on_its_own() -> None:
    rng = random.Random(11)
    vocabulary = ["the", "cat", "Cat", "sat", "mat.", "é", "ﬁ", "fi", "日本", "\u3000"]

    def column() -> pa.Array:
        return pa.array(
            [" ".join(rng.choices(vocabulary, k=rng.choice([0, 1, 2, 5, 12]))) for _ in range(2000)]
        )

    anchor, first, second = column(), column(), column()
    together = bigram_jaccards(anchor, [first, second])
    assert np.array_equal(together[0], bigram_jaccard(anchor, first))
    assert np.array_equal(together[1], bigram_jaccard(anchor, second))
    assert np.array_equal(together[1], hashed(anchor, second))
    assert bigram_jaccards(pa.array([], pa.string()), [pa.array([], pa.string())])[0].tolist() == []
