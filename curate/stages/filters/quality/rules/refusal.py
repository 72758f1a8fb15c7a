"""Refusals and model-identity boilerplate in assistant output ("As an AI language model", "I cannot fulfill")."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import ClassVar

import pyarrow.compute as pc
from pydantic import Field

from curate.errors import StageError
from curate.stages.filters.quality.rules import (
    Rule,
    RuleParams,
    RuleResult,
    TextView,
    compile_alternation,
    detail_on,
    first_match,
    true_where,
)
from curate.util.text import count_words


@lru_cache(maxsize=8)
def load_phrases(path: str | None = None) -> tuple[str, ...]:
    """Phrases from a file (one per line, ``#`` comments); default: the packaged ``refusal_phrases.txt``."""
    if path is None:
        text = (
            resources.files("curate")
            .joinpath("data/refusal_phrases.txt")
            .read_text(encoding="utf-8")
        )
    else:
        file = Path(path)
        if not file.is_file():
            raise StageError(
                f"quality.refusal.phrases_file: {path} does not exist (one phrase per line)"
            )
        text = file.read_text(encoding="utf-8")
    lines = (line.strip() for line in text.splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


# An instruction that speaks to the model itself.
_TO_MODEL = r"(?i)\b(?:you|your|yours|yourself)\b"


class Refusal(Rule):
    """The assistant refuses or talks about being an AI model instead of answering.

    Phrases come from ``curate/data/refusal_phrases.txt`` (or ``phrases_file``) plus ``extra_phrases``,
    matched case-insensitively with word boundaries over every assistant turn. Score:
    ``quality_refusal_matches`` (number of phrase hits).
    """

    name: ClassVar[str] = "refusal"
    order: ClassVar[int] = 70
    description: ClassVar[str] = (
        "Rejects rows whose assistant turns refuse or speak as an AI model (refusal)."
    )

    class Params(RuleParams):
        phrases_file: str | None = Field(None, description="Replace the packaged phrase list.")
        extra_phrases: list[str] = Field(
            default_factory=list,
            description="More phrases, added to the packaged list or phrases_file; matched case-insensitively as whole words.",
        )
        max_words: int | None = Field(
            None,
            ge=1,
            description="Only outputs of at most this many words are refusals (a disclaimer followed "
            "by an answer is an answer); none: any length (30 in quality_v2).",
        )
        skip_questions_to_model: bool = Field(
            False,
            description="Do not judge rows whose instruction speaks to the model (you, your): "
            "'What is your favorite team?' is rightly answered with identity talk (on in quality_v2).",
        )

    params: Params

    def check(self, view: TextView) -> RuleResult:
        phrases = [*load_phrases(self.params.phrases_file), *self.params.extra_phrases]
        pattern = compile_alternation(phrases)
        # "such as an AI assistant" is a topic, not the model speaking (RE2 has no look-behind).
        such = r"(?i)\bsuch\s+" + pattern.removeprefix("(?i)")
        count = pc.count_substring_regex(view.assistant, pattern)
        # A "such ..." match holds a phrase match: only rows with one can hold it.
        matched = pc.greater(count, 0)
        if pc.any(matched).as_py():
            such_count = pc.count_substring_regex(view.assistant.filter(matched), such)
            count = pc.replace_with_mask(
                count,
                matched,
                pc.subtract(count.filter(matched), such_count.cast(count.type)),
            )
        fail = pc.greater(count, 0)
        if self.params.max_words is not None:
            most = self.params.max_words
            # Words are counted on the matching rows only.
            short = true_where(
                fail, lambda output: pc.less_equal(count_words(output), most), view.output
            )
            fail = pc.and_(fail, short)
        if self.params.skip_questions_to_model:
            to_model = pc.match_substring_regex(view.instruction, _TO_MODEL)
            fail = pc.and_(fail, pc.invert(pc.fill_null(to_model, False)))
        detail = detail_on(
            fail,
            lambda assistant: pc.binary_join_element_wise(
                "refusal/identity phrase: ", pc.fill_null(first_match(assistant, pattern), ""), ""
            ),
            view.assistant,
        )
        return RuleResult(fail, {"quality_refusal_matches": count}, detail)
