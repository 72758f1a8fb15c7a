"""Missing or token outputs: empty output, placeholder output, too-short instruction or output."""

from __future__ import annotations

from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.stages.filters.quality.rules import (
    Rule,
    RuleParams,
    RuleResult,
    TextView,
    clip,
    detail_on,
    detail_where,
    true_where,
)
from curate.util.text import matching_text, matching_text_within

# Compared on matching text (lower-cased, punctuation folded): "<No Output>" -> "no output".
DEFAULT_PLACEHOLDERS = [
    "<nooutput>",
    "<no output>",
    "no output",
    "nooutput",
    "no output required",
    "no response",
    "<noinput>",
    "n/a",
    "<n/a>",
    "not applicable",
    "none required",
    "output not available",
    "[output]",
    "<output>",
    "...",
    "-",
]
# Outputs that start with a ``<nooutput>`` tag are placeholders even with text after it
# ("<nooutput> This type of instruction cannot be fulfilled by a GPT model."). A leading
# ``<noinput>`` followed by a real answer is left alone.
_LEADING_TAG = r"(?i)^\s*<\s*no\s*_?(output|answer|response)\s*>"


class EmptyOutput(Rule):
    """Empty or whitespace-only output. Score: ``quality_output_chars`` (stripped length)."""

    name: ClassVar[str] = "empty_output"
    order: ClassVar[int] = 10
    description: ClassVar[str] = "Rejects empty or whitespace-only outputs (empty_output)."

    class Params(RuleParams):
        pass

    def check(self, view: TextView) -> RuleResult:
        chars = pc.utf8_length(view.output_stripped)
        fail = pc.equal(chars, 0)
        return RuleResult(
            fail, {"quality_output_chars": chars}, detail_where(fail, "output is empty")
        )


class PlaceholderOutput(Rule):
    """The output is a placeholder (``<nooutput>``, "N/A", "No output"…), not an answer.

    Score: ``quality_placeholder`` (true when the output is one of ``phrases`` after folding case and
    punctuation, or starts with a ``<nooutput>``-style tag).
    """

    name: ClassVar[str] = "placeholder_output"
    order: ClassVar[int] = 20
    description: ClassVar[str] = (
        "Rejects outputs that are a placeholder such as <nooutput> or N/A (placeholder_output)."
    )

    class Params(RuleParams):
        phrases: list[str] = Field(
            default_factory=lambda: list(DEFAULT_PLACEHOLDERS),
            description="Whole outputs that are placeholders, compared with case and punctuation folded; replaces the default list.",
        )

    params: Params

    def check(self, view: TextView) -> RuleResult:
        phrases = pa.array(self.params.phrases, pa.string())
        folded_phrases = matching_text(phrases)
        folded = pc.unique(pc.filter(folded_phrases, pc.greater(pc.utf8_length(folded_phrases), 0)))
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(phrases))
        # Folded comparison ("<No Output>" == "no output"), and exact comparison for phrases that are
        # only punctuation ("-", "..."), which fold to nothing. Only outputs short enough to equal
        # a phrase are folded or lower-cased (utf8_lower maps each character to one character).
        longest_folded = _max(pc.binary_length(folded))
        is_folded_phrase = pc.is_in(matching_text_within(view.output, longest_folded), folded)
        short = pc.less_equal(pc.utf8_length(view.output_stripped), _max(pc.utf8_length(lowered)))
        is_phrase = true_where(
            short, lambda text: pc.is_in(pc.utf8_lower(text), lowered), view.output_stripped
        )
        whole = pc.or_(pc.fill_null(is_folded_phrase, False), is_phrase)
        tagged = pc.match_substring_regex(view.output, _LEADING_TAG)
        fail = pc.or_(whole, tagged)
        detail = detail_on(
            fail,
            lambda text: pc.binary_join_element_wise(
                "output is a placeholder: ", clip(text, 40), ""
            ),
            view.output_stripped,
        )
        return RuleResult(fail, {"quality_placeholder": fail}, detail)


class MinLength(Rule):
    """Instruction or output shorter than a minimum (characters, whitespace stripped).

    The defaults are deliberately small: one-word answers ("Telegram", "4", "Yes") are valid
    instruction data. Reasons: ``instruction_too_short`` / ``output_too_short``. Scores:
    ``quality_instruction_chars`` and ``quality_output_chars``.
    """

    name: ClassVar[str] = "min_length"
    order: ClassVar[int] = 30
    description: ClassVar[str] = (
        "Rejects too-short instructions or outputs (instruction_too_short, output_too_short)."
    )

    class Params(RuleParams):
        instruction_chars: int = Field(
            6,
            ge=0,
            description="Instructions with fewer characters (whitespace stripped) are rejected.",
        )
        output_chars: int = Field(
            1, ge=0, description="Outputs with fewer characters (whitespace stripped) are rejected."
        )

    params: Params

    def check(self, view: TextView) -> RuleResult:
        inst_chars = pc.utf8_length(pc.utf8_trim_whitespace(view.instruction))
        out_chars = pc.utf8_length(view.output_stripped)
        short_inst = pc.less(inst_chars, self.params.instruction_chars)
        short_out = pc.less(out_chars, self.params.output_chars)
        fail = pc.or_(short_inst, short_out)
        reason = pc.if_else(short_inst, "instruction_too_short", "output_too_short")
        detail = pc.if_else(
            short_inst,
            detail_on(
                short_inst,
                lambda text: pc.binary_join_element_wise(
                    f"instruction shorter than {self.params.instruction_chars} chars: ",
                    clip(text, 40),
                    "",
                ),
                view.instruction,
            ),
            pa.scalar(f"output shorter than {self.params.output_chars} chars"),
        )
        scores = {"quality_instruction_chars": inst_chars, "quality_output_chars": out_chars}
        return RuleResult(fail, scores, detail_where(fail, detail), reason=reason)


def _max(lengths: pa.Array) -> int:
    """The largest of some lengths, -1 for none (no text is that short)."""
    largest = pc.max(lengths).as_py()
    return -1 if largest is None else int(largest)
