"""Degenerate repetition in long outputs: repeated lines and repeated word n-grams."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.lib.decontam.ngrams import repeated_ngram_ratio, split_words
from curate.stages.filters.quality.rules import Rule, RuleParams, RuleResult, TextView, detail_where


def repeated_line_ratio(values: pa.Array, min_line_chars: int) -> np.ndarray:
    """Per row: share of its lines (of at least ``min_line_chars``) that repeat an earlier line."""
    lines = pc.split_pattern(values, "\n")
    flat = pc.utf8_trim_whitespace(pc.list_flatten(lines))
    rows = pc.list_parent_indices(lines)
    keep = pc.greater_equal(pc.utf8_length(flat), min_line_chars)
    table = pa.table({"row": rows, "line": flat}).filter(keep)
    n = len(values)
    if table.num_rows == 0:
        return np.zeros(n)
    total = np.bincount(table.column("row").to_numpy(), minlength=n)
    distinct_rows = table.group_by(["row", "line"]).aggregate([]).column("row").to_numpy()
    distinct = np.bincount(distinct_rows, minlength=n)
    return np.where(total > 0, 1.0 - distinct / np.maximum(total, 1), 0.0)


class Repetition(Rule):
    """Long outputs (``min_words`` or more) that loop: many repeated lines or repeated word n-grams.

    Scores (0 for outputs under ``min_words``): ``quality_repeated_lines`` (share of lines of at least
    ``min_line_chars`` characters that repeat an earlier line) and ``quality_repeated_ngrams`` (share
    of word ``ngram``-grams that repeat an earlier one). Lists and tables keep their structure but
    not their wording, so natural answers stay far under the defaults.
    """

    name: ClassVar[str] = "repetition"
    order: ClassVar[int] = 90
    description: ClassVar[str] = (
        "Rejects long outputs with many repeated lines or word n-grams (repetition)."
    )

    class Params(RuleParams):
        min_words: int = Field(
            50, ge=1, description="Outputs with fewer words are not judged (scores 0)."
        )
        max_repeated_lines: float = Field(
            0.6,
            ge=0,
            le=1,
            description="Reject when the share of lines repeating an earlier line is above this.",
        )
        min_line_chars: int = Field(
            12,
            ge=1,
            description="Lines shorter than this many characters (trimmed) are not counted.",
        )
        ngram: int = Field(
            3, ge=1, le=10, description="Word n-gram size for the repeated n-gram share."
        )
        max_repeated_ngrams: float = Field(
            0.7,
            ge=0,
            le=1,
            description="Reject when the share of word n-grams repeating an earlier one is above this.",
        )

    params: Params

    def check(self, view: TextView) -> RuleResult:
        p = self.params
        n = view.num_rows
        lines_score = np.zeros(n)
        ngram_score = np.zeros(n)
        long_mask = pc.greater_equal(view.output_words, p.min_words).to_numpy(zero_copy_only=False)
        if long_mask.any():
            index = np.flatnonzero(long_mask)
            outputs = view.assistant.take(pa.array(index))
            lines_score[index] = repeated_line_ratio(outputs, p.min_line_chars)
            ngram_score[index] = repeated_ngram_ratio(split_words(outputs), p.ngram)
        lines_score = np.round(lines_score, 4)
        ngram_score = np.round(ngram_score, 4)
        too_many_lines = lines_score > p.max_repeated_lines
        too_many_ngrams = ngram_score > p.max_repeated_ngrams
        fail = pa.array(too_many_lines | too_many_ngrams)
        text = [
            f"repeated lines {a:.2f} > {p.max_repeated_lines}"
            if la
            else f"repeated {p.ngram}-grams {b:.2f} > {p.max_repeated_ngrams}"
            for a, b, la in zip(
                lines_score[fail.to_numpy(zero_copy_only=False)],
                ngram_score[fail.to_numpy(zero_copy_only=False)],
                too_many_lines[fail.to_numpy(zero_copy_only=False)],
                strict=True,
            )
        ]
        detail = np.full(n, None, dtype=object)
        detail[fail.to_numpy(zero_copy_only=False)] = text
        scores = {
            "quality_repeated_lines": pa.array(lines_score),
            "quality_repeated_ngrams": pa.array(ngram_score),
        }
        return RuleResult(fail, scores, detail_where(fail, pa.array(detail, pa.string())))
