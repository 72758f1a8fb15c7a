"""Rules that are off by default: output/prompt length ratio, character-class ratios, custom regex."""

from __future__ import annotations

from typing import ClassVar, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from curate.stages.filters.quality.rules import (
    OffByDefault,
    Rule,
    RuleResult,
    TextView,
    detail_where,
    first_match,
)

TextField = Literal["instruction", "input", "output"]
_OUTPUT: tuple[TextField, ...] = ("output",)


class LengthRatio(Rule):
    """Output length relative to the prompt (instruction + input), in words.

    Score: ``quality_length_ratio`` = output words / max(prompt words, 1). Fails outside
    [``min_ratio``, ``max_ratio``]; rows whose prompt has fewer than ``min_prompt_words`` words are
    not judged (a one-line instruction may rightly get a long essay).
    """

    name: ClassVar[str] = "length_ratio"
    order: ClassVar[int] = 100
    description: ClassVar[str] = (
        "Off by default: rejects outputs too short or long for the prompt, in words (length_ratio)."
    )

    class Params(OffByDefault):
        min_ratio: float = Field(
            0.0, ge=0, description="Reject when output words / prompt words is below this."
        )
        max_ratio: float = Field(
            50.0, gt=0, description="Reject when output words / prompt words is above this."
        )
        min_prompt_words: int = Field(
            20, ge=0, description="Prompts (instruction + input) with fewer words are not judged."
        )

    params: Params

    def check(self, view: TextView) -> RuleResult:
        prompt = pc.add(view.words("instruction"), view.words("input"))
        ratio = pc.round(
            pc.divide(
                pc.cast(view.output_words, pa.float64()),
                pc.cast(pc.max_element_wise(prompt, 1), pa.float64()),
            ),
            4,
        )
        judged = pc.greater_equal(prompt, self.params.min_prompt_words)
        outside = pc.or_(
            pc.less(ratio, self.params.min_ratio), pc.greater(ratio, self.params.max_ratio)
        )
        fail = pc.and_(judged, outside)
        detail = pc.binary_join_element_wise(
            "output/prompt word ratio ", pc.cast(ratio, pa.string()), ""
        )
        return RuleResult(fail, {"quality_length_ratio": ratio}, detail_where(fail, detail))


class CharRatio(Rule):
    """Character-class shares of the output (non-whitespace characters).

    Scores: ``quality_alpha_ratio`` (letters), ``quality_digit_ratio``, ``quality_symbol_ratio``
    (punctuation and symbols). Fails when letters are under ``min_alpha`` or digits/symbols over their
    maximum; outputs shorter than ``min_chars`` are not judged ("42" is a fine answer).
    """

    name: ClassVar[str] = "char_ratio"
    order: ClassVar[int] = 110
    description: ClassVar[str] = (
        "Off by default: rejects outputs with too few letters or too many digits/symbols (char_ratio)."
    )

    class Params(OffByDefault):
        min_alpha: float = Field(
            0.5,
            ge=0,
            le=1,
            description="Reject when letters are below this share of non-whitespace characters.",
        )
        max_digit: float = Field(
            0.5,
            ge=0,
            le=1,
            description="Reject when digits are above this share of non-whitespace characters.",
        )
        max_symbol: float = Field(
            0.3,
            ge=0,
            le=1,
            description="Reject when punctuation and symbols are above this share of non-whitespace characters.",
        )
        min_chars: int = Field(
            20, ge=0, description="Outputs with fewer non-whitespace characters are not judged."
        )

    params: Params

    def check(self, view: TextView) -> RuleResult:
        text = view.output
        chars = pc.count_substring_regex(text, r"\S")
        denominator = pc.cast(pc.max_element_wise(chars, 1), pa.float64())

        def share(pattern: str) -> pa.Array:
            return pc.round(
                pc.divide(
                    pc.cast(pc.count_substring_regex(text, pattern), pa.float64()), denominator
                ),
                4,
            )

        alpha, digit, symbol = share(r"\pL"), share(r"\pN"), share(r"[\pP\pS]")
        judged = pc.greater_equal(chars, self.params.min_chars)
        bad_alpha = pc.less(alpha, self.params.min_alpha)
        bad_digit = pc.greater(digit, self.params.max_digit)
        bad_symbol = pc.greater(symbol, self.params.max_symbol)
        fail = pc.and_(judged, pc.or_(bad_alpha, pc.or_(bad_digit, bad_symbol)))
        detail = pc.if_else(
            bad_alpha,
            pc.binary_join_element_wise("letter share ", pc.cast(alpha, pa.string()), ""),
            pc.if_else(
                bad_digit,
                pc.binary_join_element_wise("digit share ", pc.cast(digit, pa.string()), ""),
                pc.binary_join_element_wise("symbol share ", pc.cast(symbol, pa.string()), ""),
            ),
        )
        scores = {
            "quality_alpha_ratio": alpha,
            "quality_digit_ratio": digit,
            "quality_symbol_ratio": symbol,
        }
        return RuleResult(fail, scores, detail_where(fail, detail))


class CustomRegex(Rule):
    """Drop rows where any of ``patterns`` (RE2 syntax, case-insensitive unless ``case_sensitive``)
    matches one of ``fields``. Score: ``quality_regex_matches``."""

    name: ClassVar[str] = "regex"
    order: ClassVar[int] = 120
    description: ClassVar[str] = (
        "Off by default: rejects rows where a custom RE2 pattern matches (regex)."
    )

    class Params(OffByDefault):
        patterns: list[str] = Field(
            default_factory=list,
            description="RE2 patterns; a row is rejected when any matches. Empty: nothing is.",
        )
        fields: list[TextField] = Field(
            default_factory=lambda: list(_OUTPUT),
            min_length=1,
            description="Fields the patterns are matched against (joined by newlines).",
        )
        case_sensitive: bool = Field(False, description="Match case; default: case-insensitive.")

        @field_validator("patterns")
        @classmethod
        def _compiles(cls, patterns: list[str]) -> list[str]:
            for pattern in patterns:
                try:
                    pc.match_substring_regex(pa.array([""]), pattern)
                except pa.ArrowInvalid as error:
                    raise ValueError(
                        f"pattern {pattern!r} is not valid RE2 syntax: {error}"
                    ) from None
            return patterns

    params: Params

    def check(self, view: TextView) -> RuleResult:
        if not self.params.patterns:
            zero = pa.array([0] * view.num_rows, pa.int64())
            return RuleResult(pa.array([False] * view.num_rows), {"quality_regex_matches": zero})
        flags = "" if self.params.case_sensitive else "(?i)"
        pattern = flags + "(?P<m>" + "|".join(f"(?:{p})" for p in self.params.patterns) + ")"
        text = pc.binary_join_element_wise(*[view.column(f) for f in self.params.fields], "\n")
        count = pc.count_substring_regex(text, pattern)
        fail = pc.greater(count, 0)
        detail = pc.binary_join_element_wise(
            "matched custom pattern: ", pc.fill_null(first_match(text, pattern), ""), ""
        )
        return RuleResult(fail, {"quality_regex_matches": count}, detail_where(fail, detail))
