"""Outputs that just echo the instruction or the input."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.lib.decontam.ngrams import Words, ngram_windows, split_words, window_starts
from curate.stages.filters.quality.rules import (
    Rule,
    RuleParams,
    RuleResult,
    TextView,
    detail_where,
    true_where,
)
from curate.util.text import count_words, nfkc


def bigram_jaccard(left: pa.Array, right: pa.Array) -> np.ndarray:
    """Per row: Jaccard similarity of the word-bigram sets of two texts (1.0 when both match exactly).

    Words are whitespace-separated tokens with their case and punctuation (NFKC only): fixing
    "Print(x" to "print(x)" or adding a comma is an edit, not an echo. Word order matters (a
    rearranged sentence is not an echo); one-word texts compare their word.
    """
    return bigram_jaccards(left, [right])[0]


def bigram_jaccards(anchor: pa.Array, others: list[pa.Array]) -> list[np.ndarray]:
    """:func:`bigram_jaccard` of ``anchor`` with each of ``others``, row by row: every text is
    normalized, split and given word ids once (the anchor is not redone for each other column)."""
    n = len(anchor)
    words, ids = _numbered_words(pa.concat_arrays([anchor, *others]))
    # A bigram is its two word ids, exactly: first * vocab + second; a one-word row's word is
    # (vocab - 1) * vocab + id, which no bigram is (no word has id vocab - 1). With the row
    # number in the bits above, one sort per column gives each row's distinct bigrams.
    vocab = int(ids.max()) + 2 if len(ids) else 2
    bits = (vocab * vocab).bit_length()
    if (n << bits) >= (1 << 63):
        return [_hashed_pair(anchor, other) for other in others]
    rows, starts = window_starts(words.offsets, 2)
    single = np.flatnonzero(words.lengths == 1)
    rows = np.concatenate([rows, single])
    grams = np.concatenate(
        [ids[starts] * vocab + ids[starts + 1], (vocab - 1) * vocab + ids[words.offsets[single]]]
    )
    column, row = np.divmod(rows, n) if n else (rows, rows)
    keys = (row << bits) | grams
    anchor_keys = _distinct(keys[column == 0])
    anchor_sizes = np.bincount(anchor_keys >> bits, minlength=n)
    similarities = []
    for index in range(1, len(others) + 1):
        other_keys = _distinct(keys[column == index])
        both_sides = np.sort(np.concatenate([anchor_keys, other_keys]))
        shared = both_sides[1:][both_sides[1:] == both_sides[:-1]]
        similarities.append(
            _jaccard(
                anchor_sizes,
                np.bincount(other_keys >> bits, minlength=n),
                np.bincount(shared >> bits, minlength=n),
            )
        )
    return similarities


def _numbered_words(texts: pa.Array) -> tuple[Words, np.ndarray]:
    """The words of each text (NFKC, split on whitespace) and an id per distinct word."""
    words = split_words(nfkc(texts), normalize=False)
    ids = pc.dictionary_encode(words.words).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return words, ids


def _hashed_pair(left: pa.Array, right: pa.Array) -> np.ndarray:
    words, ids = _numbered_words(pa.concat_arrays([left, right]))
    return _hashed_bigram_jaccard(words, ids, len(left))


def _distinct(values: np.ndarray) -> np.ndarray:
    # np.sort and a mask: np.unique is several times slower on large int64 keys.
    values = np.sort(values)
    first = np.ones(len(values), dtype=bool)
    first[1:] = values[1:] != values[:-1]
    return values[first]


def _jaccard(size_left: np.ndarray, size_right: np.ndarray, shared: np.ndarray) -> np.ndarray:
    union = size_left + size_right - shared
    return np.where(union > 0, shared / np.maximum(union, 1), 0.0)


def _hashed_bigram_jaccard(words: Words, ids: np.ndarray, n: int) -> np.ndarray:
    """:func:`bigram_jaccard` through 64-bit bigram hashes, for batches whose rows and
    vocabulary do not fit exact keys in 63 bits."""
    bigrams = ngram_windows(words, 2, ids)
    unigrams = ngram_windows(words, 1, ids)
    use_uni = words.lengths[unigrams.rows] == 1
    rows = np.concatenate([bigrams.rows, unigrams.rows[use_uni]])
    hashes = np.concatenate([bigrams.hashes, unigrams.hashes[use_uni]])
    side = rows >= n
    pair = np.where(side, rows - n, rows)
    # Distinct (pair, side, hash) triples, then count hashes present on both sides of a pair.
    order = np.lexsort((side, hashes, pair))
    pair, side, hashes = pair[order], side[order], hashes[order]
    new = np.ones(len(pair), dtype=bool)
    new[1:] = (pair[1:] != pair[:-1]) | (hashes[1:] != hashes[:-1]) | (side[1:] != side[:-1])
    pair, side, hashes = pair[new], side[new], hashes[new]
    shared = np.zeros(n, dtype=np.int64)
    if len(pair) > 1:
        same = (pair[1:] == pair[:-1]) & (hashes[1:] == hashes[:-1])
        shared = np.bincount(pair[1:][same], minlength=n)
    return _jaccard(
        np.bincount(pair[~side], minlength=n), np.bincount(pair[side], minlength=n), shared
    )


class Echo(Rule):
    """The output repeats the instruction or the input instead of answering.

    Score: ``quality_echo`` = the higher word-bigram Jaccard similarity of the output with the
    instruction and with the input (1.0 = the same tokens in the same order; case and punctuation
    count, so corrections are not echoes). Fails at ``max_similarity`` or above, for outputs of at
    least ``min_words`` words; shorter outputs are scored but never rejected.
    """

    name: ClassVar[str] = "echo"
    order: ClassVar[int] = 80
    description: ClassVar[str] = "Rejects outputs that repeat the instruction or input (echo)."

    class Params(RuleParams):
        max_similarity: float = Field(
            0.95,
            ge=0,
            le=1,
            description="Reject at this word-bigram Jaccard with the instruction or input, or above.",
        )
        min_words: int = Field(
            1, ge=1, description="Outputs with fewer words than this are not judged."
        )
        judge_input: bool = Field(
            True,
            description="Also reject outputs that repeat the input (off in quality_v2: copying "
            "the input is often the answer, e.g. transcribe, an already sorted list, a passage "
            "that answers the question).",
        )

    params: Params

    def check(self, view: TextView) -> RuleResult:
        if self.params.judge_input:
            with_inst, with_input = bigram_jaccards(view.output, [view.instruction, view.input])
        else:
            (with_inst,) = bigram_jaccards(view.output, [view.instruction])
            with_input = np.zeros(view.num_rows)
        score = np.round(np.maximum(with_inst, with_input), 4)
        similar = score >= self.params.max_similarity
        # Words are counted on the similar outputs only.
        long_enough = true_where(
            pa.array(similar),
            lambda output: pc.greater_equal(count_words(output), self.params.min_words),
            view.output,
        )
        fail_np = similar & long_enough.to_numpy(zero_copy_only=False)
        which = np.where(with_inst >= with_input, "instruction", "input")
        detail = np.full(view.num_rows, None, dtype=object)
        detail[fail_np] = [
            f"output echoes the {w} (similarity {s:.2f})"
            for w, s in zip(which[fail_np], score[fail_np], strict=True)
        ]
        fail = pa.array(fail_np)
        return RuleResult(
            fail,
            {"quality_echo": pa.array(score)},
            detail_where(fail, pa.array(detail, pa.string())),
        )
