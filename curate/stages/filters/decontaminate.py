"""The ``decontaminate`` stage: drop training records that overlap benchmark test items.

Recipe::

    - decontaminate:
        benchmarks: [../shared/data/eval/gsm8k/test.jsonl.gz, ../shared/data/eval/*_bench/question.jsonl]
        ngram: 13

A record is contaminated when it shares an ``ngram``-word window (on normalized words: NFKC,
lower case, punctuation folded) with a benchmark question, or when its instruction, input or
instruction + input *is* a benchmark question once normalized. Questions shorter than ``ngram``
words but at least ``min_short_words`` long must appear whole. Embedded: the index is built in memory
from the eval files, read with curate's own readers (any format they know), on first use.

It is a filter, not a global stage: the index comes from the benchmarks, not from the training
stream, so batches are checked independently (and in parallel when the executor wants).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.errors import CurateError, StageError
from curate.ingest.files import expand_paths
from curate.lib.decontam.index import BenchmarkIndex, load_index
from curate.stages.base import Decision, FilterStage, StageParams
from curate.util.text import PROMPT_ROLES, record_text

_NULL = pa.scalar(None, pa.string())


class Decontaminate(FilterStage):
    """Reject rows that contain a benchmark question (n-gram overlap or exact normalized match).

    Reasons: ``benchmark_exact`` (the instruction/input is a benchmark question) and
    ``benchmark_ngram`` (shares an n-gram with one). ``duplicate_of`` is the benchmark item's record
    id; ``detail`` names the eval file, its row and the matching words. Score column on every row:
    ``decontam_ngram_hits`` (matching windows). With no ``benchmarks`` the stage keeps everything.
    """

    name: ClassVar[str] = "decontaminate_v1"

    class Params(StageParams):
        benchmarks: list[str] = Field(
            default_factory=list, description="Eval files: paths, globs or directories."
        )
        ngram: int = Field(
            13,
            ge=3,
            le=50,
            description="Window size in normalized words shared with a benchmark question.",
        )
        min_short_words: int = Field(
            8, ge=3, description="Shorter questions (but this long) must appear whole."
        )
        min_exact_words: int = Field(
            4, ge=1, description="Exact-match questions of at least this many words."
        )
        min_ngram_hits: int = Field(1, ge=1, description="Matching windows needed to reject.")
        format: str = Field("auto", description="Reader format for the eval files.")

    params: Params

    def __init__(self, params: StageParams | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._index: BenchmarkIndex | None = None
        self._files: list[tuple[Path, str]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Ship params only to worker processes; each builds its index on first use.
        state = dict(self.__dict__)
        state["_index"] = None
        return state

    def benchmark_files(self) -> list[tuple[Path, str]]:
        """(path, display name) of every eval file, sorted; missing paths raise a StageError."""
        if self._files is None:
            files: list[tuple[Path, str]] = []
            for spec in self.params.benchmarks:
                try:
                    found, _ = expand_paths(spec)
                except Exception as error:
                    raise StageError(f"decontaminate.benchmarks: {error}") from None
                files.extend((path, path.as_posix()) for path in found)
            self._files = sorted(set(files))
        return self._files

    def prepare(self) -> None:
        # Reading the benchmarks up front: a missing or unreadable eval file fails before ingest.
        if not self.params.benchmarks:
            return
        try:
            self.index()
        except StageError:
            raise
        except CurateError as error:
            raise StageError(
                f"decontaminate.benchmarks: {error} (for benchmark files, the stage's own "
                "`format:` param sets the format)"
            ) from None

    def index(self) -> BenchmarkIndex:
        if self._index is None:
            files = self.benchmark_files()
            p = self.params
            self._index = load_index(
                [f[0] for f in files],
                [f[1] for f in files],
                p.ngram,
                p.min_short_words,
                p.min_exact_words,
                p.format,
                edited=self.find_edited(),
            )
        return self._index

    def find_edited(self) -> bool:
        return False

    def min_coverage(self) -> float:
        return 0.0

    def decide(self, table: pa.Table) -> Decision:
        n = table.num_rows
        if not self.params.benchmarks or n == 0:
            zero = pa.array(np.zeros(n, dtype=np.int64))
            return Decision(
                keep=pa.array(np.ones(n, dtype=bool)),
                reason=pa.nulls(n, pa.string()),
                scores={"decontam_ngram_hits": zero},
            )
        index = self.index()
        # The whole record (every turn of a conversation instead of its last exchange) for n-grams;
        # the instruction, input, both, or every system/user turn for exact matches.
        text = record_text(
            table,
            ["instruction", "input", "output", "messages"],
            separator="\n",
            roles=None,
            prefer_messages=True,
        )
        candidates = [
            record_text(table, ["instruction"], separator="\n"),
            record_text(table, ["input"], separator="\n"),
            record_text(table, ["instruction", "input"], separator="\n"),
            record_text(table, ["messages"], separator="\n\n", roles=PROMPT_ROLES),
        ]
        match = index.match(text, candidates)
        ngram = (match.ngram_hits >= self.params.min_ngram_hits) & (
            match.coverage >= self.min_coverage()
        )
        hit = match.exact | ngram | match.edited
        reasons: list[str | None] = [None] * n
        details: list[str | None] = [None] * n
        duplicate_of: list[str | None] = [None] * n
        for row in np.flatnonzero(hit):
            item = index.items[int(match.item[row])]
            if match.exact[row]:
                how, what = "benchmark_exact", "same question"
            elif ngram[row]:
                how = "benchmark_ngram"
                what = f"{match.ngram_hits[row]} shared {self.params.ngram}-gram window(s)"
                if self.min_coverage():
                    what += f", {match.coverage[row]:.0%} of the item"
            else:
                how, what = "benchmark_edited", "the question with one word edited"
            reasons[row] = how
            details[row] = f"{item.benchmark} row {item.row}: {what}: {match.text[row]!r}"
            duplicate_of[row] = item.id
        return Decision(
            keep=pa.array(~hit),
            reason=pa.array(reasons, pa.string()),
            detail=pa.array(details, pa.string()),
            duplicate_of=pa.array(duplicate_of, pa.string()),
            scores={"decontam_ngram_hits": pa.array(match.ngram_hits)},
        )

    def manifest_info(self) -> dict[str, Any]:
        if not self.params.benchmarks:
            return {"benchmarks": []}
        index = self.index()
        files = []
        for (path, display), entry in zip(self.benchmark_files(), index.files, strict=True):
            files.append(
                {**entry, "path": display, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
            )
        return {
            "benchmarks": files,
            "items": len(index.items),
            "ngrams": index.num_ngrams,
            "window_lengths": index.lengths,
        }

    def merge_manifest_info(self, infos: list[Any]) -> Any:
        """The benchmark index is the same for every shard: its counts are said once (summed,
        a run of two shards said twice as many items and n-grams)."""
        infos = [info for info in infos if info is not None]
        return infos[0] if infos else None


class DecontaminateV2(Decontaminate):
    """``decontaminate_v1`` that also finds questions copied with one word edited, and that needs a
    row to hold most of a benchmark item, not one famous sentence of it.

    - ``edited: true``: a whole benchmark question with one word replaced, dropped or added is
      rejected as ``benchmark_edited``. Only items of at most ``2 * ngram`` words need it (a longer
      one keeps an intact window): their first or last half is looked up, the rest checked word by
      word. Planted one-word edits of GSM8K/MMLU/MT-bench/Vicuna questions: 66 % caught by v1,
      see ``bench/decontam.py`` for v2.
    - ``min_coverage: 0.5``: an n-gram match must cover at least half of the item's words. The two
      ``benchmark_ngram`` drops v1 made on Alpaca + Dolly were both wrong (``bench/audit/``): the
      rows quote "It was the best of times, it was the worst of times" from a 255-word MMLU item
      about Dickens and Wordsworth, 23 % of it. A training row that holds an item holds most of it.
    """

    name: ClassVar[str] = "decontaminate_v2"

    class Params(Decontaminate.Params):
        edited: bool = Field(
            True,
            description="Also reject whole questions with one word replaced, dropped or added.",
        )
        min_coverage: float = Field(
            0.5,
            ge=0,
            le=1,
            description="Share of a benchmark item's words an n-gram match must cover (0: any "
            "shared window, v1).",
        )

    params: Params

    def find_edited(self) -> bool:
        return self.params.edited

    def min_coverage(self) -> float:
        return self.params.min_coverage
