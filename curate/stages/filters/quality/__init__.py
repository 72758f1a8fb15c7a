"""The ``quality`` stage: instruction-data defects, one rule per recipe key, every drop explained.

Web-text heuristics (Gopher, C4, FineWeb) drop most of a good instruction set: short answers, lists
and one-sentence outputs are normal here. These rules target what goes wrong in instruction data
instead; each writes its score columns on every row (``quality_*``) so thresholds can be re-tuned
with a DuckDB query over a run, and decides by a threshold in its params.

Recipe::

    - quality: {}                                   # every default rule on
    - quality: {echo: false, length_ratio: true}    # switch rules off / on
    - quality: {min_length: {instruction_chars: 10}, refusal: {extra_phrases: ["as an ai bot"]}}
"""

from __future__ import annotations

from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, create_model

from curate.stages.base import Decision, FilterStage, StageParams
from curate.stages.filters.quality.rules import Rule, RuleResult, TextView, discover_rules

# Every rule under ``quality/rules/``, discovered; evaluation order = reason priority (``Rule.order``):
# a row failing several rules is rejected for the first.
RULES: tuple[type[Rule], ...] = discover_rules()


def params_model(
    rules: tuple[type[Rule], ...],
    defaults: dict[str, dict[str, Any]] | None = None,
    qualname: str = "Quality.Params",
) -> type[StageParams]:
    """The stage's ``Params``: one field per rule, keyed by ``rule.name``, typed by its ``Params``;
    ``defaults`` changes some rules' default params (a later stage version)."""
    changed = defaults or {}

    def factory(rule: type[Rule]) -> Any:
        if rule.name not in changed:
            return rule.Params
        return lambda: rule.Params.model_validate(changed[rule.name])

    fields: dict[str, Any] = {
        rule.name: (rule.Params, Field(default_factory=factory(rule), description=rule.description))
        for rule in rules
    }
    return create_model(
        "Params",
        __base__=StageParams,
        __module__=__name__,
        __qualname__=qualname,
        **fields,
    )


_NULL = pa.scalar(None, pa.string())


class Quality(FilterStage):
    """Drop instruction-data defects; reason = the first failing rule, detail says what was found.

    Reasons: ``empty_output``, ``placeholder_output``, ``instruction_too_short``,
    ``output_too_short``, ``url_only_input``, ``missing_attachment``, ``instruction_leak``,
    ``refusal``, ``echo``, ``repetition``; off by default: ``length_ratio``, ``char_ratio``, ``regex``.
    """

    name: ClassVar[str] = "quality_v1"

    Params: ClassVar[type[StageParams]] = params_model(RULES)

    def rules(self) -> list[Rule]:
        """The enabled rules, in priority order."""
        enabled = []
        for cls in RULES:
            rule_params = getattr(self.params, cls.name)
            if rule_params.enabled:
                enabled.append(cls(rule_params))
        return enabled

    def decide(self, table: pa.Table) -> Decision:
        view = TextView(table)
        n = table.num_rows
        results: list[tuple[Rule, RuleResult]] = [(rule, rule.check(view)) for rule in self.rules()]
        scores: dict[str, pa.Array] = {}
        for _, result in results:
            for name, values in result.scores.items():
                # One type per score column whatever the kernel returned (int32 vs int64 counts).
                scores[name] = (
                    values.cast(pa.int64()) if pa.types.is_integer(values.type) else values
                )
        reason: pa.Array = pa.nulls(n, pa.string())
        detail: pa.Array = pa.nulls(n, pa.string())
        also: pa.Array = pa.nulls(n, pa.string())
        # Walk rules from lowest to highest priority so the first failing rule wins.
        for rule, result in reversed(results):
            fail = pc.fill_null(result.fail, False)
            rule_reason: pa.Array | pa.Scalar
            if result.reason is None:
                rule_reason = pa.scalar(rule.name)
            elif isinstance(result.reason, str):
                rule_reason = pa.scalar(result.reason)
            else:
                rule_reason = result.reason
            previous = pc.if_else(pc.is_valid(reason), reason, _NULL)
            also = pc.if_else(
                pc.and_(fail, pc.is_valid(previous)),
                pc.binary_join_element_wise(
                    previous, pc.fill_null(also, ""), pc.if_else(pc.is_valid(also), ", ", "")
                ),
                also,
            )
            reason = pc.if_else(fail, rule_reason, reason)
            rule_detail = result.detail if result.detail is not None else pa.nulls(n, pa.string())
            detail = pc.if_else(fail, pc.fill_null(rule_detail, rule.name), detail)
        detail = pc.if_else(
            pc.is_valid(also),
            pc.binary_join_element_wise(detail, " (also: ", also, ")", ""),
            detail,
        )
        keep = pc.is_null(reason) if n else pa.array([], pa.bool_())
        return Decision(keep=keep, reason=reason, detail=detail, scores=scores)

    def manifest_info(self) -> dict[str, Any]:
        return {"rules": [rule.name for rule in self.rules()]}


# quality_v2's rule settings (the audit's evidence is in QualityV2's docstring).
V2_DEFAULTS: dict[str, dict[str, Any]] = {
    "echo": {"judge_input": False},
    "repetition": {"enabled": False},
    "refusal": {"max_words": 30, "skip_questions_to_model": True},
    "instruction_leak": {"skip_task_writing": True},
    "url_only_input": {"keep_address_tasks": True, "keep_topic_pages": True},
    "missing_attachment": {"keep_named_subject": True, "described_input_words": 4},
}


class QualityV2(Quality):
    """``quality_v1`` with the defaults the hand-labeled audit of its drops on Alpaca + Dolly
    supports (``bench/audit/``): ``echo`` judges the instruction only (12 of 50 input-echo drops
    were right: copying the input is often the answer), ``repetition`` is off (0 of 3 drops
    right: tables, songs and schedules repeat by design), ``refusal`` judges only outputs of at
    most 30 words and not questions to the model itself (5 of 14 drops were right: the bare
    "cannot be done by a GPT model" replies, 10-25 words; the wrong ones were disclaimers followed
    by an answer, 32-146 words, or answers to "how are you?"). ``url_only_input`` keeps tasks about
    the address itself (domain, owner) and encyclopedic topic pages (Wikipedia, /encyclopedia/,
    /topics/) unless the task wants the page's own words (36 of 50 drops were right; 9 of the 14
    wrong ones go, 1 right one with them). ``missing_attachment`` keeps a short input that names the
    subject ("The Starry Night") and an input that describes the media in 4+ words of its own
    (41 of 50 right; 3 of the 9 wrong ones go). ``instruction_leak`` lets a request for a task or an
    instruction answer with "Instruction:" (37 of 39 right; both wrong ones go). All stay available
    as params."""

    name: ClassVar[str] = "quality_v2"
    Params: ClassVar[type[StageParams]] = params_model(
        RULES, V2_DEFAULTS, qualname="QualityV2.Params"
    )


class QualityV3(QualityV2):
    """``quality_v2`` with three more exceptions from the audit's wrong drops (``bench/audit/``):
    ``missing_attachment`` keeps a caption, title or hashtag for media that a placeholder or alt
    text describes ("Add a short caption to the following photo: <photo of a sunset sky>") and a
    task that builds a tool for media ("Design an algorithm to identify birds in a photo");
    ``url_only_input`` keeps a repository's home page (github.com/<owner>/<name>), which names the
    project as a Wikipedia address names its topic."""

    name: ClassVar[str] = "quality_v3"
    Params: ClassVar[type[StageParams]] = params_model(
        RULES,
        {
            **V2_DEFAULTS,
            "url_only_input": {**V2_DEFAULTS["url_only_input"], "keep_repositories": True},
            "missing_attachment": {
                **V2_DEFAULTS["missing_attachment"],
                "keep_described_gist": True,
                "keep_tool_tasks": True,
            },
        },
        qualname="QualityV3.Params",
    )


class QualityV4(QualityV3):
    """``quality_v3`` after every ``url_only_input`` and ``missing_attachment`` drop on Alpaca +
    Dolly was labeled by hand (171 and 108 rows in ``bench/audit/``; their 50-row samples had
    overstated precision: 83 % and 87 %). The wrong drops fell in a few kinds, each kept now:
    an answer read off the record's own address or placeholder (``…/Flag_of_Denmark.svg`` →
    "Denmark", ``bbc.com/news/business-…`` → "business"); an art task on a file name that names a
    famous work (``Liberty_Leading_the_People``); for URLs, tasks that use the address without its
    page (a link, an API call, blocking it, a phishing verdict) and what kind of site a home page is
    (``nytimes.com``: a news site); for media, an ``<img>`` tag in an HTML task."""

    name: ClassVar[str] = "quality_v4"
    Params: ClassVar[type[StageParams]] = params_model(
        RULES,
        {
            **V2_DEFAULTS,
            "url_only_input": {
                **V2_DEFAULTS["url_only_input"],
                "keep_repositories": True,
                "keep_reference_pages": True,
                "keep_question_writing": True,
                "keep_address_uses": True,
                "keep_site_descriptions": True,
                "keep_answers_in_text": True,
                "keep_named_artworks": True,
            },
            "missing_attachment": {
                **V2_DEFAULTS["missing_attachment"],
                "keep_described_gist": True,
                "keep_tool_tasks": True,
                "keep_described_one_liners": True,
                "keep_markup_tasks": True,
                "keep_answers_in_text": True,
                "keep_named_artworks": True,
            },
        },
        qualname="QualityV4.Params",
    )
