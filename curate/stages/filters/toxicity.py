"""The ``toxicity`` stage: score the prompt and the answer of every record for abuse, drop toxic ones.

Recipe::

    - toxicity: {}                                             # word list, both sides
    - toxicity: {backend: classifier}                          # extra [toxicity], threshold 0.98
    - toxicity: {backend: classifier, scope: completion, threshold: 0.99}  # only the answers
    - toxicity: {extra_terms: ["darn you"], allow_terms: ["shit"]}

Two sides are scored apart: the prompt (instruction, input, system and user turns) and the
completion (output, assistant turns). A conversation replaces instruction/input/output on rows that
have one (they only repeat its last exchange), and a conversation is as toxic as its worst turn.

Backends: ``classifier`` is the linear bag-of-words model of ``alt-profanity-check`` (extra
``curate[toxicity]``; its model ships in the wheel). A TF-IDF vector is normalized over the whole
text, so one slur in a long answer is diluted to nothing: each field and turn is scored in chunks
of about ``chunk_chars`` characters (cut at sentence and line ends) and the worst chunk counts.
``wordlist`` scores 1.0 where a term of ``curate/data/toxicity_words.txt`` occurs as a whole word,
else 0.0. ``extra_terms`` force 1.0 with either backend; ``allow_terms`` are blanked out of the
text before either backend looks at it.

Measured on Alpaca + Dolly (67,013 rows, ``bench/toxicity.py``): the classifier drops 39 rows at
0.9, nearly all for an innocent word the model weighs high ("pig", "garbage", "hate", "Dick"); at
0.98 it drops 9, 7 of them holding an insult or profanity (moderation tasks quoting "so stupid",
"Fuck you, you piece of shit"). One insult planted in 200 long clean answers: whole texts catch
0, chunks of 150 characters 123 (500: 3; every sentence alone: 200, but twice the false drops on
real rows). The word list drops 2 rows, both holding a listed term. Hence the defaults: the word
list (precise, no extra needed), and a threshold of 0.98 for the classifier when it is chosen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata, resources
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from curate.errors import StageError
from curate.stages.base import (
    Decision,
    FilterStage,
    StageParams,
    StageResult,
    apply_decision,
    merge_infos,
)
from curate.util.text import ASSISTANT_ROLES, PROMPT_ROLES, record_text

TextField = Literal["instruction", "input", "output", "messages"]
TurnRole = Literal["system", "user", "assistant"]
Side = Literal["prompt", "completion"]
SIDES: tuple[Side, Side] = ("prompt", "completion")
_ALL_FIELDS: tuple[TextField, ...] = ("instruction", "input", "output", "messages")
_ALL_ROLES: tuple[TurnRole, ...] = ("system", "user", "assistant")
_PROMPT_FIELDS = ("instruction", "input")
_COMPLETION_FIELDS = ("output",)
# Letters, digits and "_" make a word; anything else (or the text's ends) bounds a term. Spelled
# out instead of \b, which is ASCII-only in RE2: "Scunthorpe", "Schwanzkönig" are one word each.
_WORD = r"[\pL\pN_]"
_BOUND_L = r"(?:^|[^\pL\pN_])"
_BOUND_R = r"(?:[^\pL\pN_]|$)"
# Sentence and line ends where a long text is cut into chunks for the classifier.
_SENTENCE_END = r"([.!?;:…。！？])\s+"
_CLASSIFIER_PACKAGE = "alt-profanity-check"
_INSTALL_HINT = "pip install 'curate[toxicity]'"
SCORE_COLUMNS = ("toxicity_score", "toxicity_prompt_score", "toxicity_completion_score")
_DIGITS = 4  # scores are rounded: the column, the detail and the decision read the same number
_MAX_TERMS_SHOWN = 5


@lru_cache(maxsize=1)
def packaged_terms() -> tuple[str, ...]:
    """The terms of ``curate/data/toxicity_words.txt`` (``#`` comments and blank lines skipped)."""
    text = resources.files("curate").joinpath("data/toxicity_words.txt").read_text("utf-8")
    lines = (line.strip() for line in text.splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


def term_regex(term: str, word: str = _WORD) -> str:
    """One term as an RE2 pattern: words separated by any whitespace, a trailing ``*`` for any
    word ending (``word``: what a word character is), every other character literal."""
    core = term.strip()
    wildcard = core.endswith("*")
    words = core.rstrip("*").split()
    body = r"\s+".join("".join(_literal(ch) for ch in part) for part in words)
    return body + (f"{word}*" if wildcard else "")


def _literal(ch: str) -> str:
    if ch.isalnum() or ch == "_" or not ch.isascii():
        return ch
    return "\\" + ch


def _ascii_word(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


@dataclass(frozen=True)
class TermMatcher:
    """Whole-word, case-insensitive matching of a list of terms over Arrow string arrays.

    ``exact`` bounds a term by any character that is not a letter, digit or "_" (Unicode). RE2 runs
    Unicode classes about 80x slower than ASCII ones, so ``quick``, an ASCII pattern that matches
    every text ``exact`` matches (and a few more: a non-ASCII letter next to a term), picks the
    texts ``exact`` then runs on. The term itself is group ``term`` of ``exact``.
    """

    exact: str
    quick: str

    @classmethod
    def of(cls, terms: Sequence[str]) -> TermMatcher | None:
        unique = sorted({t.strip() for t in terms if t.strip().rstrip("*").strip()})
        if not unique:
            return None
        unique.sort(key=len, reverse=True)  # at one position, the longest term is the match
        quick = []
        for term in unique:
            core = term.rstrip("*").strip()
            left = r"\b" if _ascii_word(core[0]) else ""
            right = r"\b" if _ascii_word(core[-1]) and not term.endswith("*") else ""
            quick.append(left + term_regex(term, r"\w") + right)
        exact = "|".join(term_regex(term) for term in unique)
        return cls(
            exact=f"(?i){_BOUND_L}(?P<term>{exact}){_BOUND_R}",
            quick=f"(?i)(?:{'|'.join(quick)})",
        )

    def match(self, texts: pa.Array) -> np.ndarray:
        """Per text: does a term occur in it as a whole word."""
        found = pc.match_substring_regex(texts, self.quick).to_numpy(zero_copy_only=False).copy()
        at = np.flatnonzero(found)
        if len(at):
            exact = pc.match_substring_regex(texts.take(pa.array(at)), self.exact)
            found[at] = exact.to_numpy(zero_copy_only=False)
        return np.asarray(found, dtype=bool)

    def blank(self, texts: pa.Array) -> pa.Array:
        """The texts with every occurrence of a term replaced by a space."""
        hit = self.match(texts)
        if not hit.any():
            return texts
        blanked = texts.filter(pa.array(hit))
        # A match takes the character on each side with it: twice catches back-to-back terms.
        for _ in range(2):
            blanked = pc.replace_substring_regex(blanked, self.exact, " ")
        return pc.replace_with_mask(texts, pa.array(hit), blanked)

    def terms(self, text: str, limit: int) -> list[str]:
        """The distinct terms in ``text``, lower-cased, in order of occurrence, at most ``limit``."""
        found: list[str] = []
        value = pa.array([text], pa.string())
        for _ in range(4 * limit):
            match = pc.extract_regex(value, self.exact)[0]
            if not match.is_valid:
                break
            term = str(match["term"].as_py()).lower()
            if term not in found:
                found.append(term)
                if len(found) >= limit:
                    break
            value = pc.replace_substring_regex(value, self.exact, " ", max_replacements=1)
        return found


@lru_cache(maxsize=1)
def load_classifier() -> Callable[[list[str]], np.ndarray]:
    """``profanity_check.predict_prob``, or a :class:`StageError` saying which extra to install."""
    try:
        from profanity_check import predict_prob
    except ImportError as error:
        raise StageError(
            f"toxicity: backend 'classifier' needs the {_CLASSIFIER_PACKAGE} package "
            f"({_INSTALL_HINT}), or use `backend: wordlist` ({error})"
        ) from None
    return predict_prob


def _combined(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def chunk_texts(texts: pa.Array, limit: int) -> tuple[pa.Array, np.ndarray]:
    """Cut texts longer than ``limit`` characters at sentence and line ends into chunks of about
    ``limit`` characters (a chunk starts before ``limit`` and ends at the next cut; one long
    sentence stays whole). Returns the chunks and, per chunk, the index of its text."""
    index = np.arange(len(texts), dtype=np.int64)
    if limit <= 0 or not len(texts):
        return texts, index
    long = pc.greater(pc.utf8_length(texts), limit).to_numpy(zero_copy_only=False)
    if not long.any():
        return texts, index
    short_at = np.flatnonzero(~long)
    long_at = np.flatnonzero(long)
    marked = pc.replace_substring_regex(texts.take(pa.array(long_at)), _SENTENCE_END, "\\1\n")
    pieces = pc.split_pattern_regex(marked, r"\s*\n\s*")
    flat = pc.list_flatten(pieces)
    owner = pc.list_parent_indices(pieces).to_numpy()
    sizes = pc.utf8_length(flat).to_numpy().astype(np.int64) + 1
    start = np.cumsum(sizes) - sizes
    first = np.ones(len(owner), dtype=bool)
    first[1:] = owner[1:] != owner[:-1]
    text_start = np.maximum.accumulate(np.where(first, start, 0))
    chunk = (start - text_start) // limit
    cut = first.copy()
    cut[1:] |= chunk[1:] != chunk[:-1]
    starts = np.flatnonzero(cut)
    offsets = pa.array(np.append(starts, len(owner)).astype(np.int32), pa.int32())
    chunks = pc.binary_join(pa.ListArray.from_arrays(offsets, flat), " ")
    return (
        pa.concat_arrays([texts.take(pa.array(short_at)), chunks]),
        np.concatenate([short_at, long_at[owner[starts]]]),
    )


class Toxicity(FilterStage):
    """Score the prompt and the completion side of every record for toxicity; drop rows whose
    score reaches ``threshold`` on a side ``scope`` judges.

    Writes ``toxicity_prompt_score``, ``toxicity_completion_score`` and ``toxicity_score`` (their
    max) on kept rows; a rejected row's detail gives the side, its score and the threshold, and the
    matched terms. Reason: ``toxic``.
    """

    name: ClassVar[str] = "toxicity_v1"

    class Params(StageParams):
        threshold: float = Field(
            0.98,
            ge=0,
            le=1,
            description="Rows scoring at least this on a judged side are dropped (the word list "
            "scores 1 or 0).",
        )
        backend: Literal["classifier", "wordlist"] = Field(
            "wordlist",
            description="classifier: alt-profanity-check's linear model (extra [toxicity]); "
            "wordlist: the packaged list of unambiguous slurs and profanity (score 1 or 0).",
        )
        scope: Literal["completion", "prompt", "both"] = Field(
            "both", description="Which side's score can drop a row (both are always scored)."
        )
        fields: list[TextField] = Field(
            default_factory=lambda: list(_ALL_FIELDS),
            min_length=1,
            description="Fields scored: instruction and input are the prompt, output the "
            "completion; with messages, a conversation replaces them on rows that have one.",
        )
        roles: list[TurnRole] = Field(
            default_factory=lambda: list(_ALL_ROLES),
            description="Conversation turns scored: system and user on the prompt side, "
            "assistant on the completion side.",
        )
        chunk_chars: int = Field(
            150,
            ge=0,
            description="classifier: a field or turn longer than this is scored in chunks of about "
            "this many characters, cut at sentence and line ends; the worst chunk counts "
            "(0: whole texts; 1: every sentence alone).",
        )
        extra_terms: list[str] = Field(
            default_factory=list,
            description="More terms (whole words, case-insensitive, trailing * for any ending); a "
            "match scores the side 1.0 with either backend.",
        )
        allow_terms: list[str] = Field(
            default_factory=list,
            description="Terms never counted: blanked out of the text before scoring, and removed "
            "from the word list.",
        )

        @field_validator("extra_terms", "allow_terms")
        @classmethod
        def _terms(cls, terms: list[str]) -> list[str]:
            stripped = [term.strip() for term in terms]
            if any(not term.rstrip("*").strip() for term in stripped):
                raise ValueError("a term must have at least one character besides '*'")
            return stripped

    params: Params

    def __init__(self, params: StageParams | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._counts: Counter[str] = Counter()
        self._compiled: tuple[TermMatcher | None, TermMatcher | None] | None = None

    # -- setup ---------------------------------------------------------------------------------

    def prepare(self) -> None:
        if self.params.backend == "classifier":
            load_classifier()  # fail before any work when the extra is not installed
        self._matchers()

    def _matchers(self) -> tuple[TermMatcher | None, TermMatcher | None]:
        """(the terms that score a side 1.0, the allowed terms)."""
        if self._compiled is not None:
            return self._compiled
        p = self.params
        terms = list(p.extra_terms)
        if p.backend == "wordlist":
            terms = [*packaged_terms(), *terms]
        allowed = {term.lower() for term in p.allow_terms}
        terms = [term for term in terms if term.lower() not in allowed]
        self._compiled = (TermMatcher.of(terms), TermMatcher.of(p.allow_terms))
        return self._compiled

    # -- scoring -------------------------------------------------------------------------------

    def _side_fields(self, side: Side) -> list[str]:
        own = _PROMPT_FIELDS if side == "prompt" else _COMPLETION_FIELDS
        return [name for name in self.params.fields if name in own or name == "messages"]

    def _side_roles(self, side: Side) -> list[str]:
        own = PROMPT_ROLES if side == "prompt" else ASSISTANT_ROLES
        return [role for role in self.params.roles if role in own]

    def side_text(self, table: pa.Table, side: Side) -> pa.Array:
        """The side's text per row, fields and turns joined by newlines, allowed terms blanked."""
        text = record_text(
            table,
            self._side_fields(side),
            separator="\n",
            roles=self._side_roles(side),
            prefer_messages=True,
        )
        return self._allowed_blanked(text)

    def _allowed_blanked(self, text: pa.Array) -> pa.Array:
        _, allow = self._matchers()
        return text if allow is None else allow.blank(text)

    def _units(self, table: pa.Table) -> tuple[pa.Array, np.ndarray, np.ndarray]:
        """Every scored field and turn on its own: (text, row, side: 0 prompt, 1 completion)."""
        p = self.params
        n = table.num_rows
        texts: list[pa.Array] = []
        rows: list[np.ndarray] = []
        sides: list[np.ndarray] = []
        conversation = np.zeros(n, dtype=bool)
        if "messages" in p.fields:
            messages = _combined(table.column("messages"))
            conversation = pc.is_valid(messages).to_numpy(zero_copy_only=False)
            if conversation.any() and p.roles:
                flat = pc.list_flatten(messages)
                owner = pc.list_parent_indices(messages).to_numpy()
                role = flat.field("role")
                chosen = pc.fill_null(pc.is_in(role, pa.array(p.roles, pa.string())), False)
                at = np.flatnonzero(chosen.to_numpy(zero_copy_only=False))
                texts.append(pc.fill_null(flat.field("content"), "").take(pa.array(at)))
                rows.append(owner[at])
                assistant = pc.is_in(role, pa.array(list(ASSISTANT_ROLES), pa.string()))
                sides.append(pc.fill_null(assistant, False).to_numpy(zero_copy_only=False)[at])
        single = np.flatnonzero(~conversation)
        for name in ("instruction", "input", "output"):
            if name in p.fields and len(single):
                column = pc.fill_null(_combined(table.column(name)), "")
                texts.append(column.take(pa.array(single)))
                rows.append(single)
                sides.append(np.full(len(single), name in _COMPLETION_FIELDS))
        if not texts:
            return pa.array([], pa.string()), np.zeros(0, np.int64), np.zeros(0, bool)
        return (
            pa.concat_arrays([t.cast(pa.string()) for t in texts]),
            np.concatenate(rows).astype(np.int64),
            np.concatenate(sides).astype(bool),
        )

    def _classify(self, table: pa.Table) -> np.ndarray:
        """Per side and row (shape 2 x rows), the classifier's worst chunk; 0.0 where no text."""
        scores = np.zeros((2, table.num_rows), dtype=np.float64)
        texts, rows, sides = self._units(table)
        if not len(texts):
            return scores
        chunks, unit = chunk_texts(self._allowed_blanked(texts), self.params.chunk_chars)
        # Only chunks with a word are scored: the model gives an empty text its intercept.
        worded = pc.match_substring_regex(chunks, r"[\pL\pN]").to_numpy(zero_copy_only=False)
        at = np.flatnonzero(worded)
        if not len(at):
            return scores
        probabilities = np.asarray(
            load_classifier()(chunks.take(pa.array(at)).to_pylist()), dtype=np.float64
        )
        unit = unit[at]
        np.maximum.at(scores, (sides[unit].astype(np.int64), rows[unit]), probabilities)
        return scores

    def score(self, table: pa.Table) -> tuple[np.ndarray, np.ndarray, list[pa.Array]]:
        """(scores 2 x rows, term hits 2 x rows, side texts): prompt first, then completion."""
        self.prepare()
        n = table.num_rows
        texts = [self.side_text(table, side) for side in SIDES]
        if self.params.backend == "classifier":
            scores = self._classify(table)
        else:
            scores = np.zeros((2, n), dtype=np.float64)
        terms, _ = self._matchers()
        hits = np.zeros((2, n), dtype=bool)
        if terms is not None:
            for i, text in enumerate(texts):
                hits[i] = terms.match(text)
        scores = np.round(np.where(hits, 1.0, scores), _DIGITS)
        return scores, hits, texts

    # -- decision ------------------------------------------------------------------------------

    def decide(self, table: pa.Table) -> Decision:
        p = self.params
        n = table.num_rows
        scores, hits, texts = self.score(table)
        over = scores >= p.threshold
        judged = np.array([p.scope in ("prompt", "both"), p.scope in ("completion", "both")])
        drops = over & judged[:, None]
        drop = drops.any(axis=0)
        reasons: list[str | None] = [None] * n
        details: list[str | None] = [None] * n
        for row in np.flatnonzero(drop):
            reasons[row] = "toxic"
            details[row] = self._detail(int(row), scores, drops, hits, texts)
        self._counts["rows"] += n
        for i, side in enumerate(SIDES):
            self._counts[f"over_threshold.{side}"] += int(over[i].sum())
            self._counts[f"dropped_by.{side}"] += int(drops[i].sum())
            self._counts[f"term_matches.{side}"] += int(hits[i].sum())
        self._counts["dropped"] += int(drop.sum())
        return Decision(
            keep=pa.array(~drop, pa.bool_()),
            reason=pa.array(reasons, pa.string()),
            detail=pa.array(details, pa.string()),
            scores={
                "toxicity_score": pa.array(scores.max(axis=0, initial=0.0), pa.float64()),
                "toxicity_prompt_score": pa.array(scores[0], pa.float64()),
                "toxicity_completion_score": pa.array(scores[1], pa.float64()),
            },
        )

    def _detail(
        self,
        row: int,
        scores: np.ndarray,
        drops: np.ndarray,
        hits: np.ndarray,
        texts: list[pa.Array],
    ) -> str:
        threshold = self.params.threshold
        parts = [
            f"{side} score {scores[i, row]:.2f} >= threshold {threshold:g}"
            for i, side in enumerate(SIDES)
            if drops[i, row]
        ]
        found: list[str] = []
        for i in range(len(SIDES)):
            if hits[i, row]:
                for term in self.matched_terms(texts[i][row].as_py() or ""):
                    if term not in found:
                        found.append(term)
        if found:
            shown = found[:_MAX_TERMS_SHOWN]
            more = f" (+{len(found) - len(shown)} more)" if len(found) > len(shown) else ""
            parts.append(f"terms: {', '.join(shown)}{more}")
        return "; ".join(parts)

    def matched_terms(self, text: str, limit: int = _MAX_TERMS_SHOWN + 1) -> list[str]:
        """The distinct terms (listed or extra) found in ``text``, lower-cased, in order."""
        terms, _ = self._matchers()
        return [] if terms is None else terms.terms(text, limit)

    def run(self, table: pa.Table) -> StageResult:
        return apply_decision(table, self.decide(table), self.name)

    # -- manifest ------------------------------------------------------------------------------

    def manifest_info(self) -> dict[str, Any]:
        p = self.params
        if p.backend == "classifier":
            try:
                package = f"{_CLASSIFIER_PACKAGE} {metadata.version(_CLASSIFIER_PACKAGE)}"
            except metadata.PackageNotFoundError:
                package = f"{_CLASSIFIER_PACKAGE} not installed"
        else:
            package = "curate data/toxicity_words.txt"
        counts = self._counts
        return {
            "backend": p.backend,
            "package": package,
            "threshold": p.threshold,
            "scope": p.scope,
            "counts": {
                "rows": counts["rows"],
                "dropped": counts["dropped"],
                **{
                    group: {side: counts[f"{group}.{side}"] for side in SIDES}
                    for group in ("over_threshold", "dropped_by", "term_matches")
                },
            },
        }

    def merge_manifest_info(self, infos: list[Any]) -> Any:
        """Counts add up over shards; the settings (threshold included) are the same in each."""
        infos = [info for info in infos if info is not None]
        if not infos:
            return None
        merged = dict(infos[0])
        merged["counts"] = merge_infos([info.get("counts") for info in infos])
        return merged
