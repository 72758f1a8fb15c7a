"""The format of each answer, as a ``response_format`` column (to see, and ``mix`` to balance).

A model tuned on data where most answers have one shape (a numbered list, say) answers
everything in that shape. This stage labels the shape of every answer: the ``output`` (or the
field named by ``field``); for a row with a conversation, its last assistant turn stands for
the ``output`` (the ``output`` itself when the conversation has no assistant turn). The text is
trimmed first and Windows line ends count as newlines. The first label whose rule holds wins,
in this order:

``empty``
    No text (null, or only whitespace), or only a no-answer placeholder: ``<nooutput>``,
    ``<no output>``, ``<noinput>`` (any case; Alpaca's answers to tasks a text model cannot do).
``code``
    A fenced block (a line starting with a triple backtick), or an answer that opens with code
    (a ``def``/``class``/``function`` header, ``#include``, an ``import`` line, ``<!DOCTYPE``,
    ``<html``, a docstring, ``CREATE TABLE``, ``const f =``, ``primes = [2, 3]``), or code-looking lines: at least half of the
    non-blank lines look like code, and two or more do or one is unmistakable (an upper-case
    SQL statement, a call named like code such as ``print("hi")``, a statement ending in ``;``
    with code punctuation, an HTML element). A line looks like code when it is a keyword line
    (``import x``, ``def f(…):``, ``if … {``, ``for … :``, ``return x``, ``int n = 5;`` …), an
    assignment (``total += 1``; a name of 2+ characters given a number, a literal or an
    expression with code punctuation; never "Siamese = Cat", "Mass = 200 kg", nor the steps of
    "x = 15/5"), a call alone on its line, a statement ending in ``;`` with code punctuation
    (``=``, braces, angle brackets, a name right before ``(`` or ``[``) and no sentence end, a
    CSS declaration, a line ending in ``{``, a bracket-only line, a comment (``//``, ``/*``,
    ``# ``), a line opening with an HTML/XML tag, or an upper-case SQL clause (``SELECT``,
    ``FROM``, ``WHERE`` …). Lines starting with a list marker or a digit
    are never code by punctuation. Text that parses as JSON is only code when fenced.
``json``
    The text starts with ``{`` or ``[`` and parses (:func:`json.loads`) as an object or array.
``table``
    A markdown table: a separator line of dash cells between pipes (``|---|:--:|``, or
    ``---|---``) and at least one other line holding a ``|``; or 2+ lines of tab-separated cells
    (text, a tab, text; a list item with a tab in it is a list, not a table row).
``numbered_list``
    2+ lines starting with a number marker: ``1.``, ``2)``, ``(3)``, ``Step 4:`` (1-3 digits, then
    whitespace; ``1.5 million`` and years are not markers).
``bullet_list``
    2+ lines starting with a bullet (``-``, ``*``, ``+``, ``•``, ``–`` and other bullet glyphs)
    and then whitespace or a letter ("-Very dry"; ``**bold**`` and "-5 °C" are no bullets).
``short_answer``
    At most 5 words on one line with no sentence end inside, that do not read as a sentence:
    one word ("Paris", "42", "Yes!"); or no verb cue and no final ``?``, and either no final
    ``.``/``!`` ("Democratic views"), at most 3 words ("Red.", "Tall and leafy."), a comma
    list ("Monkeys, sloths, toucans, frogs.") or a name (no lower-case word but "and", "of",
    "the" …: "Bubble Sort and Quick Sort."). A verb cue is a pronoun (I, you, he, she, it,
    we, they, there), an auxiliary or modal (is, are, was, were, be, has, have, had, do, does,
    did, can, could, will, would, should, may, might, must), a contraction (n't, 're, 'll, 've,
    'm, 'd) or a past-tense-looking word (3+ letters then "ed"). "The house was on fire.",
    "Today is a good day", "She won the award?" and "The cat scratches the carpet." are
    sentences.
``sentence``
    One sentence of at most 40 words: no sentence end (``.``, ``!``, ``?`` or ``…`` then a space
    and an upper-case letter or digit; abbreviations such as "Dr." or "e.g." and initials such
    as "J. K." do not end one) and no line break before its last word.
``paragraph``
    One block of text without a blank line: several sentences or lines, or one sentence of more
    than 40 words.
``multi_paragraph``
    Two or more blocks of text separated by a blank line.

Lists, tables and code win over paragraphs: an essay with a numbered list in it is a
``numbered_list``. Every rule but the JSON parse runs as Arrow compute (RE2) over whole columns;
``json.loads`` runs only on rows whose text starts with ``{`` or ``[``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.stages.base import MapStage, StageParams
from curate.util.arrow import with_columns
from curate.util.text import ASSISTANT_ROLES

COLUMN = "response_format"
LABELS: tuple[str, ...] = (
    "empty",
    "code",
    "json",
    "table",
    "numbered_list",
    "bullet_list",
    "short_answer",
    "sentence",
    "paragraph",
    "multi_paragraph",
)
SHORT_ANSWER_WORDS = 5
SENTENCE_WORDS = 40

# A line starting with a list marker (numbered or bullet): never a code line nor a table row.
_NUMBER_MARKER = r"(?:\d{1,3}[.)]|\(\d{1,3}\)|[Ss]tep[ \t]+\d{1,3}\b[:.)]?)"
_BULLET_MARKER = r"[-*+•◦▪▫●○‣⁃∙–]"


def _line(pattern: str) -> str:
    """A whole line that starts (after indentation) with ``pattern``. Counted matches must run
    to the end of their line: Arrow's ``count_substring_regex`` searches again from the end of
    the last match as if a new text began there (``^`` would match mid-line)."""
    return rf"(?m)^[ \t]*(?:{pattern})[^\n]*"


_NUMBERED_LINE = _line(rf"{_NUMBER_MARKER}[ \t]+\S")
# A bullet, then whitespace or straight a letter ("-Very dry"; "-5 degrees" is no bullet).
_BULLET_LINE = _line(rf"{_BULLET_MARKER}(?:[ \t]+\S|\p{{L}})")

_FENCE = r"(?m)^[ \t]*```"
# The rest of a line that holds no sentence end (a period then a space): a prose line ending in
# a statement is prose.
_CODE_CHARS = r"(?:[^.\n]|\.[^ \n])*"
_TRAILING_COMMENT = r"[ \t]*;?[ \t]*(?:(?:#|//)[^\n]*)?$"
_NAME = r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*"
# A call alone on its line (arguments nest one level): print("hi"), arr.sort(), f(g(x)).
_ARGS = r"\((?:[^()\n]|\([^()\n]*\))*\)"
_CALL = _NAME + _ARGS + _TRAILING_COMMENT
# ...named like code: lower case first, or dotted (not "O(n)", "RGB(255, 0, 255)").
_CODE_CALL = (
    r"(?:[a-z_$][\w$]*|[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+)" + _ARGS + _TRAILING_COMMENT
)
# Assignments, unlike "Siamese = Cat", "Mass = 200 kg" or the steps of "x = 15/5": a compound
# operator (total += 1); or a name of 2+ characters given a number, a literal ("…", […], {…})
# or an expression with code punctuation; or a one-letter name given a literal or a call.
_VALUE = (
    r"""(?:-?\d[\d.]*(?:[eE]-?\d+)?"""
    + _TRAILING_COMMENT
    + r"""|["'\[{][^\n]*|[^\n]*[()\[\]+*/%<>_][^\n]*)"""
)
_ASSIGNMENT = (
    rf"(?:{_NAME}(?:\[[^\]\n]*\])?[ \t]*(?:[-+*/%]|\*\*|//)=[ \t]*\S[^\n]*"
    rf"|[A-Za-z_$][\w$]+(?:\.[A-Za-z_$][\w$]*)*(?:\[[^\]\n]*\])?[ \t]*=[ \t]*{_VALUE}"
    rf"|[A-Za-z_$][ \t]*=[ \t]*(?:[\"'\[{{]|[^\n]*\w\()[^\n]*)"
)
# A statement ending in ";" with code punctuation: =, { }, < >, or a name right before ( or [
# ("Heidi's Pancake house;", "Gran Turismo 3: A-Spec [14.89 million];" are prose), and no
# sentence end; not starting with a list marker or a digit.
_STATEMENT = rf"[^ \t\n\d•*+–-]{_CODE_CHARS}(?:[={{}}<>]|\w[(\[]){_CODE_CHARS};[ \t]*$"
# Code-looking lines (after indentation). The alternatives that may start with any character
# exclude list markers and digits there (a list item is not code).
_CODE_LINE = _line(
    # keywords that only open code lines
    r"(?:import[ \t]+[\w.]+(?:[ \t]+as[ \t]+\w+)?[ \t;]*$)"
    r"|(?:from[ \t]+[\w.]+[ \t]+import[ \t]+\S)"
    r"|(?:#(?:include|define|import)\b)"
    r"|(?:(?:def|class|function|fn|func|struct|interface|enum)[ \t]+\w+[^\n]*[:{(][ \t]*$)"
    r"|(?:(?:if|elif|else[ \t]+if|while|for|foreach|switch|catch|with|unless)\b[^\n]*[:{][ \t]*$)"
    r"|(?:(?:if|for|while|switch)[ \t]*\([^\n]*\)[ \t]*$)"
    r"|(?:(?:else|try|finally|do|except)\b[^\n]*[:{][ \t]*$)"
    r"|(?:(?:return|break|continue|pass|raise|throw|yield)\b(?:[^\n]*[^.\n])?$)"
    r"|(?:(?:var|let|const|int|float|double|char|bool|boolean|String|string|auto|long|void"
    r"|public|private|protected|static)[ \t]+[\w<>\[\]]+[^\n]*[=;({)][ \t]*$)"
    rf"|(?:{_ASSIGNMENT})"
    # a call: name(...) alone on its line, maybe with a ; and a comment
    rf"|(?:{_CALL})"
    # a statement ending in ; with code punctuation in it, or a CSS declaration
    rf"|(?:{_STATEMENT})"
    r"|(?:[a-z-]+[ \t]*:[ \t]*[^;\n]+;[ \t]*$)"
    rf"|(?:[^ \t\n\d•*+–-]{_CODE_CHARS}\{{[ \t]*$)"  # opens a block
    r"|(?:[(){}\[\]]+[ \t]*[;,)]*[ \t]*$)"  # a bracket-only line
    r"|(?://|/\*|\*/|<!--|#[ \t])"  # comments
    r"|(?:</?[A-Za-z][\w-]*(?:[ \t][^>\n]*)?/?>|<!DOCTYPE|<\?xml)"  # markup
    r"|(?:(?:SELECT|INSERT[ \t]+INTO|UPDATE|DELETE[ \t]+FROM|CREATE[ \t]+(?:TABLE|INDEX|VIEW|DATABASE)"
    r"|ALTER[ \t]+TABLE|DROP[ \t]+TABLE|FROM|WHERE|AND|OR|ORDER[ \t]+BY|GROUP[ \t]+BY|HAVING|LIMIT"
    r"|(?:INNER[ \t]+|LEFT[ \t]+|RIGHT[ \t]+|OUTER[ \t]+)?JOIN|VALUES|SET)\b)"
)
# Lines unmistakably code even alone (one of them makes a one-line answer code).
_STRONG_CODE_LINE = _line(
    r"(?:(?:SELECT|INSERT[ \t]+INTO|UPDATE|DELETE[ \t]+FROM|CREATE[ \t]+(?:TABLE|INDEX|VIEW|DATABASE)"
    r"|ALTER[ \t]+TABLE|DROP[ \t]+TABLE)\b[^\n]*\b(?:FROM|INTO|SET|TABLE|INDEX|VIEW|DATABASE|VALUES)\b)"
    rf"|(?:{_CODE_CALL})"
    rf"|(?:{_STATEMENT})"
    r"|(?:<[A-Za-z][\w-]*\b[^>\n]*>[^\n]*</[A-Za-z][\w-]*>)"
    r"|(?:import[ \t]+[\w.]+[ \t;]*$|#include\b|def[ \t]+\w+[ \t]*\()"
)
# An answer that opens with one of these is code (however much prose its docstrings hold).
_CODE_OPENING = (
    r"^(?:def[ \t]+\w+[ \t]*\(|#include\b|import[ \t]+[\w.]+[ \t;]*\n"
    r"|(?:(?:public|private|abstract|final|static)[ \t]+)*class[ \t]+\w+[^\n]*[:{][ \t]*\n"
    r"|(?:const|let|var)[ \t]+\w+[ \t]*=|CREATE[ \t]+(?:TABLE|VIEW|INDEX|DATABASE)\b"
    r"|from[ \t]+[\w.]+[ \t]+import\b|<!DOCTYPE|<html\b|<\?xml|\"\"\"|'''"
    r"|(?:public|private|protected)[ \t][^\n]*\([^\n]*\)[ \t]*\{|function[ \t]+\w+[ \t]*\("
    r"|[a-z_][\w]*(?:\.\w+)*[ \t]*=[ \t]*[\"'\[{])"  # primes = [2, 3, 5]
)
_NONBLANK_LINE = _line(r"\S")

# Markdown table separator: dash cells between pipes, with or without the outer pipes.
_TABLE_SEPARATOR = (
    r"(?m)^[ \t]*(?:\|[ \t]*:?-{3,}:?[ \t]*\||\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)+\|?)"
    r"[ \t]*$"
)
_PIPE_LINE = _line(r"[^\n]*\|")
_TAB_ROW = _line(r"[^\s][^\t\n]*\t[ \t]*\S")
_TAB_LIST_ITEM = _line(rf"(?:{_NUMBER_MARKER}|{_BULLET_MARKER})[^\t\n]*\t[ \t]*\S")

_PLACEHOLDER = r"(?i)^<[ \t]*no[ \t]*(?:output|input)[ \t]*>$"
_BLANK_LINE = r"\n[ \t]*\n"
_WORD = r"\S+"
# Abbreviations and initials whose period ends no sentence (removed before counting ends).
_ABBREVIATION = (
    r"\b(?:Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|Mt|Ft|Gen|Col|Lt|Sgt|Capt|Gov|Sen|Rep|Rev|Hon|Fig|vs|approx"
    r"|[Ee]\.g|[Ii]\.e|U\.S|U\.K|a\.m|p\.m)\.|\b\p{Lu}\."
)
_SENTENCE_END = r"[.!?…]+[\"'”’)\]]*[ \t]+[\"'“‘(\[]?[\p{Lu}\d]"
_FINAL_PUNCTUATION = r"[.!?…][\"'”’)\]]*$"
_QUESTION_END = r"\?[\"'”’)\]]*$"
_FUNCTION_WORD = r"\b(?:a|an|the|and|or|of|in|on|at|to|for|with|by|from|de|la|le|von|van|der)\b"
_VERB_CUE = (
    r"(?i)\b(?:i|you|he|she|it|we|they|there|is|are|was|were|am|be|been|has|have|had|do|does"
    r"|did|can|could|will|would|should|may|might|must)\b|n't\b|\p{L}'(?:re|ll|ve|m|d)\b"
    r"|\b\p{L}{3,}ed\b"
)


def answer_text(table: pa.Table, field: str, conversations: bool = True) -> pa.Array:
    """The answer of each row: its last assistant turn where it has a conversation with one
    (``conversations``), else ``field`` (nulls as "")."""
    column = table.column(field)
    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    values = pc.fill_null(values, "")
    if not conversations or "messages" not in table.column_names:
        return values
    messages = table.column("messages").combine_chunks()
    if messages.null_count == len(messages):
        return values
    flat = pc.list_flatten(messages)
    parents = pc.list_parent_indices(messages).to_numpy(zero_copy_only=False)
    is_answer = pc.fill_null(
        pc.is_in(flat.field("role"), pa.array(list(ASSISTANT_ROLES), pa.string())), False
    )
    turns = np.flatnonzero(is_answer.to_numpy(zero_copy_only=False))
    if len(turns) == 0:
        return values
    owners = parents[turns]
    last = np.r_[owners[1:] != owners[:-1], True]
    mask = np.zeros(len(values), dtype=bool)
    mask[owners[last]] = True
    contents = pc.fill_null(flat.field("content").take(pa.array(turns[last])), "")
    return pc.replace_with_mask(values, pa.array(mask), contents)


def _flag(values: pa.Array, pattern: str) -> np.ndarray:
    return np.asarray(pc.match_substring_regex(values, pattern).to_numpy(zero_copy_only=False))


def _count(values: pa.Array, pattern: str) -> np.ndarray:
    return np.asarray(pc.count_substring_regex(values, pattern).to_numpy(zero_copy_only=False))


def _is_json(text: str) -> bool:
    try:
        return isinstance(json.loads(text), (dict, list))
    except ValueError:
        return False


def response_formats(texts: pa.Array) -> pa.Array:
    """The label of each text (see the module doc), as a string array."""
    n = len(texts)
    text = pc.fill_null(texts, "")
    if pc.any(pc.match_substring(text, "\r")).as_py():
        text = pc.replace_substring(pc.replace_substring(text, "\r\n", "\n"), "\r", "\n")
    text = pc.utf8_trim_whitespace(text)
    empty = np.asarray(pc.equal(pc.utf8_length(text), 0).to_numpy(zero_copy_only=False))
    empty |= _flag(text, _PLACEHOLDER)

    starts_json = _flag(text, r"^[\[{]")
    is_json = np.zeros(n, dtype=bool)
    if starts_json.any():
        rows = np.flatnonzero(starts_json)
        candidates = text.take(pa.array(rows)).to_pylist()
        is_json[rows] = [_is_json(t) for t in candidates]

    nonblank = _count(text, _NONBLANK_LINE)
    code_lines = _count(text, _CODE_LINE)
    strong = _flag(text, _STRONG_CODE_LINE)
    looks_code = (code_lines * 2 >= nonblank) & ((code_lines >= 2) | strong) & (code_lines > 0)
    opens_code = _flag(text, _CODE_OPENING)
    code = _flag(text, _FENCE) | ((looks_code | opens_code) & ~is_json)

    markdown_table = _flag(text, _TABLE_SEPARATOR) & (_count(text, _PIPE_LINE) >= 2)
    tab_table = (_count(text, _TAB_ROW) - _count(text, _TAB_LIST_ITEM)) >= 2
    table = markdown_table | tab_table

    numbered = _count(text, _NUMBERED_LINE) >= 2
    bullets = _count(text, _BULLET_LINE) >= 2

    words = _count(text, _WORD)
    # A list marker ("1. Only item") is no sentence end either.
    unmarked = pc.replace_substring_regex(text, rf"(?m)^[ \t]*{_NUMBER_MARKER}", "_")
    unabbreviated = pc.replace_substring_regex(unmarked, _ABBREVIATION, "_")
    ends = _count(unabbreviated, _SENTENCE_END) + _count(text, "\n")
    one_sentence = ends == 0
    final = _flag(text, _FINAL_PUNCTUATION)
    question = _flag(text, _QUESTION_END)
    verb_cue = _flag(text, _VERB_CUE)
    commas = _count(text, ",")
    # A name or title: no lower-case word but small function words ("Bubble Sort and Quick Sort.").
    titled = ~_flag(pc.replace_substring_regex(text, _FUNCTION_WORD, ""), r"\b\p{Ll}")
    fragment = ~final | (words <= 3) | (commas >= 2) | titled
    short = (
        one_sentence
        & (words <= SHORT_ANSWER_WORDS)
        & ((words == 1) | (~question & ~verb_cue & fragment))
    )
    sentence = one_sentence & (words <= SENTENCE_WORDS)
    paragraph = ~_flag(text, _BLANK_LINE)

    conditions = [empty, code, is_json, table, numbered, bullets, short, sentence, paragraph]
    codes = np.select(conditions, list(range(len(conditions))), default=len(LABELS) - 1)
    return pc.take(pa.array(LABELS, pa.string()), pa.array(codes.astype(np.int32)))


class ResponseFormat(MapStage):
    """Label the format of each answer in a ``response_format`` column: ``empty``, ``code``,
    ``json``, ``table``, ``numbered_list``, ``bullet_list``, ``short_answer``, ``sentence``,
    ``paragraph`` or ``multi_paragraph`` (the first rule that holds, in this order).

    The answer is ``field`` (``output``), or a conversation's last assistant turn. Rows are not
    dropped; ``mix: {by: response_format}`` balances the formats. Counts per label go to the
    manifest.
    """

    name: ClassVar[str] = "response_format_v1"

    class Params(StageParams):
        field: Literal["output", "rationale", "input", "instruction"] = Field(
            "output",
            description="The field whose format is labelled; for output, a conversation's last "
            "assistant turn stands for it on rows that have one.",
        )

    params: Params

    def __init__(self, params: StageParams | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._labels: Counter[str] = Counter()

    def transform(self, table: pa.Table) -> pa.Table:
        field = self.params.field
        labels = response_formats(answer_text(table, field, conversations=field == "output"))
        for item in pc.value_counts(labels).to_pylist():
            self._labels[str(item["values"])] += int(item["counts"])
        return with_columns(table, ((COLUMN, labels),))

    def manifest_info(self) -> dict[str, Any]:
        """Rows per label (labels that occurred, in taxonomy order)."""
        return {"formats": {label: self._labels[label] for label in LABELS if self._labels[label]}}


__all__ = ["COLUMN", "LABELS", "ResponseFormat", "answer_text", "response_formats"]
