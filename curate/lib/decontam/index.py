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

from curate.lib.decontam.ngrams import hash_windows, split_words, window_starts
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

    def __init__(self, ngram: int, min_short_words: int, min_exact_words: int) -> None:
        self.ngram = ngram
        self.min_short_words = min_short_words
        self.min_exact_words = min_exact_words
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
        exact_ok = lengths >= self.min_exact_words
        self._exact = pa.array(
            [q for q, ok in zip(self._questions, exact_ok, strict=True) if ok], pa.string()
        )
        self._exact_item = np.flatnonzero(exact_ok)

    @property
    def num_ngrams(self) -> int:
        return sum(len(t[0]) for t in self._tables.values())

    def match(self, text: pa.Array, exact_candidates: list[pa.Array]) -> Match:
        """Check training texts (raw) for n-gram overlap, and candidate fields for exact questions."""
        n_rows = len(text)
        item = np.full(n_rows, -1, dtype=np.int64)
        hits = np.zeros(n_rows, dtype=np.int64)
        exact = np.zeros(n_rows, dtype=bool)
        shown: list[str | None] = [None] * n_rows
        if not self.items or n_rows == 0:
            return Match(item, hits, exact, shown)
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
        for row in np.flatnonzero(exact):
            shown[row] = self.items[item[row]].question[:120]
        words = split_words(text)
        vocab_ids = pc.index_in(words.words, value_set=self.vocab)
        ids = pc.fill_null(vocab_ids, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        oov = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(ids < 0, out=oov[1:])
        for n in self.lengths:
            table_hashes, table_item, table_start = self._tables[n]
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
            words_list = words.words
            for r, s, p in zip(rows, starts, pos, strict=True):
                if item[r] < 0:
                    item[r] = table_item[p]
                    shown[r] = " ".join(words_list[int(s) : int(s) + n].to_pylist())
        return Match(item, hits, exact, shown)


def load_index(
    paths: list[Path],
    displays: list[str],
    ngram: int,
    min_short_words: int,
    min_exact_words: int,
    fmt: str = "auto",
) -> BenchmarkIndex:
    """Read every eval file with curate's readers and index its items."""
    from curate.ingest import read_file

    index = BenchmarkIndex(ngram, min_short_words, min_exact_words)
    for path, display in zip(paths, displays, strict=True):
        result = read_file(path, source="benchmark", display=display, format=fmt)
        index.add(result.records, display)
    index.build()
    return index
