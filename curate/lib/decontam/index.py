"""An in-memory index of benchmark test items: normalized questions and their word n-grams.

Built once from eval files read with curate's own readers (GSM8K jsonl, MMLU alpaca-style json,
MT-bench/Vicuna ``turns``…). A training batch is then checked with numpy only: its words are mapped
to benchmark word ids (a word no benchmark uses cannot be part of a match), every window of ``n``
in-vocabulary words is hashed, hashes are looked up with a binary search, and candidate matches are
verified word by word, so a hash collision can never reject a row.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.lib.decontam.ngrams import Words, hash_windows, split_words, window_starts
from curate.util.text import matching_text


@dataclass
class BenchmarkItem:
    benchmark: str  # display path of the eval file
    row: int  # source_row in that file
    id: str  # the item's curate record id
    question: str  # what was indexed (normalized)


@dataclass
class Match:
    """Per training row: matched item (or -1), how, and the matching text."""

    item: np.ndarray  # int64, -1 = clean
    ngram_hits: np.ndarray  # int64, matching windows
    exact: np.ndarray  # bool
    text: list[str | None] = field(default_factory=list)
    # Share of the matched item's words inside matched windows (1.0 for exact and edited copies).
    coverage: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # The row holds the whole item with one word replaced, dropped or added.
    edited: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


# An edited copy is found from an intact half of the question, looked up with one of these window
# sizes (few sizes: each is one pass over the training words): the largest at most half the item.
HALF_SIZES = (5, 8, 12)


def question_texts(records: pa.Table, min_template_repeats: int = 3) -> pa.Array:
    """What a benchmark item asks: instruction + input, minus instructions shared by many items.

    MMLU-style files repeat one instruction ("Please answer the following multiple-choice
    question…") over every item with the question in the input; that instruction is a template,
    not the item, so it is left out (it would match every training row that reuses it).
    """
    instruction = pc.fill_null(records.column("instruction").combine_chunks(), "")
    inputs = pc.fill_null(records.column("input").combine_chunks(), "")
    counts = Counter(instruction.to_pylist())
    templates = pa.array(
        [t for t, c in counts.items() if c >= min_template_repeats and t], pa.string()
    )
    is_template = pc.and_(pc.is_in(instruction, templates), pc.greater(pc.utf8_length(inputs), 0))
    instruction = pc.if_else(is_template, "", instruction)
    return pc.utf8_trim_whitespace(pc.binary_join_element_wise(instruction, inputs, "\n"))


class BenchmarkIndex:
    """Word n-grams and normalized questions of every benchmark item."""

    def __init__(
        self, ngram: int, min_short_words: int, min_exact_words: int, edited: bool = False
    ) -> None:
        self.ngram = ngram
        self.min_short_words = min_short_words
        self.min_exact_words = min_exact_words
        # Also find items copied with one word edited, where the edit can break every n-gram.
        self.edited = edited
        # h -> (hashes, item, side): the first (side 0) and last (side 1) h words of an item.
        self._halves: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._offsets = np.zeros(1, dtype=np.int64)
        self._lengths = np.zeros(0, dtype=np.int64)
        self.items: list[BenchmarkItem] = []
        self.files: list[dict[str, object]] = []
        self._questions: list[str] = []
        self.vocab = pa.array([], pa.string())
        self.lengths: list[int] = []  # distinct window lengths in the index
        self._tables: dict[
            int, tuple[np.ndarray, np.ndarray, np.ndarray]
        ] = {}  # n -> (hashes, item, start)
        self._ids = np.zeros(0, dtype=np.int64)  # flat benchmark word ids
        self._exact = pa.array([], pa.string())
        self._exact_item = np.zeros(0, dtype=np.int64)

    def add(self, records: pa.Table, display: str) -> None:
        questions = matching_text(question_texts(records)).to_pylist()
        ids = records.column("id").to_pylist()
        rows = records.column("source_row").to_pylist()
        for question, row_id, row in zip(questions, ids, rows, strict=True):
            self.items.append(BenchmarkItem(display, int(row), str(row_id), str(question)))
            self._questions.append(str(question))
        self.files.append({"path": display, "items": records.num_rows})

    def build(self) -> None:
        questions = pa.array(self._questions, pa.string())
        words = split_words(questions, normalize=False)  # already matching text
        encoded = pc.dictionary_encode(words.words)
        self.vocab = encoded.dictionary
        self._ids = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        lengths = words.lengths
        # Each item is indexed with n = ngram, or its whole length when shorter (but not too short).
        per_item_n = np.where(
            lengths >= self.ngram, self.ngram, np.where(lengths >= self.min_short_words, lengths, 0)
        )
        self.lengths = sorted({int(n) for n in per_item_n if n > 0})
        for n in self.lengths:
            items_n = np.flatnonzero(per_item_n == n)
            offsets = words.offsets
            # Windows of items that use this n only.
            sub_offsets = np.zeros(len(items_n) + 1, dtype=np.int64)
            sub_offsets[1:] = np.cumsum(lengths[items_n])
            rows, starts_local = window_starts(sub_offsets, n)
            starts = offsets[items_n][rows] + (starts_local - sub_offsets[rows])
            hashes = hash_windows(self._ids, starts, n)
            order = np.argsort(hashes, kind="stable")
            self._tables[n] = (hashes[order], items_n[rows][order], starts[order])
        self._offsets, self._lengths = words.offsets, lengths
        if self.edited:
            self._build_halves(words.offsets, lengths)
        exact_ok = lengths >= self.min_exact_words
        self._exact = pa.array(
            [q for q, ok in zip(self._questions, exact_ok, strict=True) if ok], pa.string()
        )
        self._exact_item = np.flatnonzero(exact_ok)

    def _build_halves(self, offsets: np.ndarray, lengths: np.ndarray) -> None:
        """Index both halves of the items one edit can hide from every n-gram.

        One word replaced, dropped or added at position i leaves words [0, i) and (i, L) intact; with
        h <= (L - 1) // 2 the first or the last h words always survive (h is at least the smallest
        of HALF_SIZES, so an edit in the middle of a short item can hide it). Items of at most 2n
        words (longer ones keep an intact n-gram) and at least ``min_short_words``.
        """
        sizes = np.array(HALF_SIZES)
        fits = np.searchsorted(sizes, (lengths - 1) // 2, side="right") - 1
        half = sizes[np.maximum(fits, 0)]
        eligible = (lengths >= self.min_short_words) & (lengths <= 2 * self.ngram)
        half = np.where(eligible, np.minimum(half, lengths), 0)
        for h in sorted({int(x) for x in half if x > 0}):
            items_h = np.flatnonzero(half == h)
            first = offsets[items_h]
            last = offsets[items_h] + lengths[items_h] - h
            starts = np.concatenate([first, last])
            items = np.concatenate([items_h, items_h])
            sides = np.concatenate(
                [np.zeros(len(items_h), np.int8), np.ones(len(items_h), np.int8)]
            )
            hashes = hash_windows(self._ids, starts, h)
            order = np.argsort(hashes, kind="stable")
            self._halves[h] = (hashes[order], items[order], sides[order])

    def _item_words(self, item: int) -> np.ndarray:
        start = int(self._offsets[item])
        return self._ids[start : start + int(self._lengths[item])]

    @property
    def num_ngrams(self) -> int:
        return sum(len(t[0]) for t in self._tables.values())

    def match(self, text: pa.Array, exact_candidates: list[pa.Array]) -> Match:
        """Check training texts (raw) for n-gram overlap, and candidate fields for exact questions."""
        n_rows = len(text)
        item = np.full(n_rows, -1, dtype=np.int64)
        hits = np.zeros(n_rows, dtype=np.int64)
        exact = np.zeros(n_rows, dtype=bool)
        coverage = np.zeros(n_rows)
        edited = np.zeros(n_rows, dtype=bool)
        shown: list[str | None] = [None] * n_rows
        if not self.items or n_rows == 0:
            return Match(item, hits, exact, shown, coverage, edited)
        # Exact normalized question (first candidate field that matches wins).
        for candidate in exact_candidates:
            position = pc.index_in(matching_text(candidate), value_set=self._exact).to_numpy(
                zero_copy_only=False
            )
            found = (
                ~np.isnan(position.astype(np.float64))
                if position.dtype.kind == "f"
                else position >= 0
            )
            if position.dtype.kind == "f":
                position = np.nan_to_num(position, nan=-1).astype(np.int64)
            new = found & ~exact
            item[new] = self._exact_item[position[new]]
            exact |= new
        coverage[exact] = 1.0
        for row in np.flatnonzero(exact):
            shown[row] = self.items[item[row]].question[:120]
        words = split_words(text)
        vocab_ids = pc.index_in(words.words, value_set=self.vocab)
        ids = pc.fill_null(vocab_ids, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        oov = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(ids < 0, out=oov[1:])
        for n in self.lengths:
            table_hashes, _, table_start = self._tables[n]
            rows, starts = window_starts(words.offsets, n)
            ok = (oov[starts + n] - oov[starts]) == 0
            rows, starts = rows[ok], starts[ok]
            if len(starts) == 0:
                continue
            hashes = hash_windows(ids, starts, n)
            pos = np.searchsorted(table_hashes, hashes)
            pos = np.minimum(pos, len(table_hashes) - 1)
            candidate = table_hashes[pos] == hashes
            rows, starts, pos = rows[candidate], starts[candidate], pos[candidate]
            if len(rows) == 0:
                continue
            # Verify word by word (a 64-bit hash collision must never reject a row).
            same = np.ones(len(rows), dtype=bool)
            for k in range(n):
                same &= ids[starts + k] == self._ids[table_start[pos] + k]
            rows, starts, pos = rows[same], starts[same], pos[same]
            np.add.at(hits, rows, 1)
            self._best_coverage(rows, starts, pos, n, words, item, coverage, exact, shown)
        if self._halves:
            self._match_edited(words, ids, oov, item, exact, edited, coverage, shown)
        return Match(item, hits, exact, shown, coverage, edited)

    def _best_coverage(
        self,
        rows: np.ndarray,
        starts: np.ndarray,
        pos: np.ndarray,
        n: int,
        words: Words,
        item: np.ndarray,
        coverage: np.ndarray,
        exact: np.ndarray,
        shown: list[str | None],
    ) -> None:
        """Per row, the item it covers most: the share of the item's words inside matched windows."""
        if len(rows) == 0:
            return
        table_item, table_start = self._tables[n][1], self._tables[n][2]
        items = table_item[pos]
        at = table_start[pos] - self._offsets[items]  # window start inside the item
        triples = np.unique(np.stack([rows, items, at]), axis=1)  # sorted by row, item, start
        same_group = (triples[0, 1:] == triples[0, :-1]) & (triples[1, 1:] == triples[1, :-1])
        # A window adds the words up to the next window's start (at most n), the group's last one n.
        added = np.full(triples.shape[1], n, dtype=np.int64)
        added[:-1] = np.where(same_group, np.minimum(np.diff(triples[2]), n), n)
        group_start = np.concatenate([[True], ~same_group])
        group_id = np.cumsum(group_start) - 1
        covered = np.bincount(group_id, weights=added)
        pair_keys = triples[:2, group_start]
        share = covered / np.maximum(self._lengths[pair_keys[1]], 1)
        first_start: dict[tuple[int, int], int] = {}
        for r, i, s in zip(rows.tolist(), items.tolist(), starts.tolist(), strict=True):
            first_start.setdefault((r, i), s)
        for (r, i), value in zip(pair_keys.T, share, strict=True):
            if exact[r] or value <= coverage[r]:
                continue
            coverage[r], item[r] = value, i
            s = first_start[(int(r), int(i))]
            shown[r] = " ".join(words.words[s : s + n].to_pylist())

    def _match_edited(
        self,
        words: Words,
        ids: np.ndarray,
        oov: np.ndarray,
        item: np.ndarray,
        exact: np.ndarray,
        edited: np.ndarray,
        coverage: np.ndarray,
        shown: list[str | None],
    ) -> None:
        """Rows holding a whole item with one word replaced, dropped or added (see _build_halves)."""
        for h, (table_hashes, table_item, table_side) in self._halves.items():
            rows, starts = window_starts(words.offsets, h)
            ok = (oov[starts + h] - oov[starts]) == 0
            rows, starts = rows[ok], starts[ok]
            if len(starts) == 0:
                continue
            hashes = hash_windows(ids, starts, h)
            lo = np.minimum(np.searchsorted(table_hashes, hashes), len(table_hashes) - 1)
            found = table_hashes[lo] == hashes
            rows, starts, lo = rows[found], starts[found], lo[found]
            hi = np.searchsorted(table_hashes, hashes[found], side="right")
            # Candidates are few (a whole half of a question); each is checked word by word.
            for r, s, a, b in zip(rows, starts, lo, hi, strict=True):
                r = int(r)
                if exact[r] or coverage[r] >= 1.0:
                    continue
                row_end = int(words.offsets[r + 1])
                row_start = int(words.offsets[r])
                for k in range(int(a), int(b)):
                    it = int(table_item[k])
                    question = self._item_words(it)
                    span = _one_edit_span(
                        question, ids, int(s), h, int(table_side[k]), row_start, row_end
                    )
                    if span is None:
                        continue
                    edited[r], item[r], coverage[r] = True, it, 1.0
                    shown[r] = " ".join(words.words[span[0] : span[1]].to_pylist())[:120]
                    break


def _one_edit_span(
    question: np.ndarray,
    ids: np.ndarray,
    start: int,
    h: int,
    side: int,
    row_start: int,
    row_end: int,
) -> tuple[int, int] | None:
    """Where the row holds ``question`` with exactly one word replaced, dropped or added, given
    that its first (side 0) or last (side 1) ``h`` words match at ``start``; None if it does not."""
    length = len(question)
    for size in (length, length - 1, length + 1):
        lo = start if side == 0 else start + h - size
        hi = lo + size
        if lo < row_start or hi > row_end:
            continue
        if _one_edit(question, ids[lo:hi]):
            return lo, hi
    return None


def _one_edit(question: np.ndarray, found: np.ndarray) -> bool:
    """``found`` is ``question`` with exactly one word replaced, dropped or added."""
    if len(found) == len(question):
        return int(np.count_nonzero(found != question)) == 1
    short, long = (found, question) if len(found) < len(question) else (question, found)
    if len(long) - len(short) != 1:
        return False
    differ = np.flatnonzero(long[: len(short)] != short)
    i = int(differ[0]) if len(differ) else len(short)
    return bool(np.array_equal(long[i + 1 :], short[i:]))


def load_index(
    paths: list[Path],
    displays: list[str],
    ngram: int,
    min_short_words: int,
    min_exact_words: int,
    fmt: str = "auto",
    edited: bool = False,
) -> BenchmarkIndex:
    """Read every eval file with curate's readers and index its items."""
    from curate.ingest import read_file

    index = BenchmarkIndex(ngram, min_short_words, min_exact_words, edited)
    for path, display in zip(paths, displays, strict=True):
        result = read_file(path, source="benchmark", display=display, format=fmt)
        index.add(result.records, display)
    index.build()
    return index
