"""Minimal pairs: two requests that read almost alike and ask different things.

An averaged embedding (and a word-set similarity) cannot tell "Why do dogs like humans?" from "Why
do humans like dogs?", "graduate" from "undergraduate", or "Name two animals" from "Name an animal".
:func:`contrast` finds the small differences that change what is asked, read by hand from the
semantic duplicates of Alpaca + Dolly (``bench/semantic.py``): other numbers, a negation, a word
and its opposite, a scope word (before, after, only, ...), another question type (how many), or
the same words in another order.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cached_property, lru_cache

_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
_NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
} | {
    "first": "1st",
    "second": "2nd",
    "third": "3rd",
    "fourth": "4th",
    "fifth": "5th",
    "hundred": "100",
    "thousand": "1000",
    "million": "1000000",
    "single": "1",
    "pair": "2",
    "couple": "2",
    "dozen": "12",
}
_NEGATIONS = {"not", "no", "never", "without", "none", "nothing", "cannot", "nor"}
_SCOPE = {
    "official",
    "before",
    "after",
    "since",
    "until",
    "except",
    "only",
    "more",
    "less",
    "fewer",
    "least",
    "last",
    "next",
    "previous",
    "former",
    "future",
    "past",
}
_PREFIXES = ("un", "in", "im", "ir", "il", "non", "dis", "under", "over", "anti", "mis", "de")
_OPPOSITES = {
    frozenset(pair.split("/"))
    for pair in [
        "big/small",
        "large/small",
        "tall/short",
        "long/short",
        "high/low",
        "hot/cold",
        "warm/cool",
        "old/new",
        "old/young",
        "best/worst",
        "good/bad",
        "better/worse",
        "early/late",
        "fast/slow",
        "rich/poor",
        "strong/weak",
        "heavy/light",
        "open/closed",
        "open/close",
        "win/lose",
        "won/lost",
        "buy/sell",
        "give/take",
        "push/pull",
        "increase/decrease",
        "rise/fall",
        "up/down",
        "in/out",
        "inside/outside",
        "above/below",
        "top/bottom",
        "left/right",
        "north/south",
        "east/west",
        "start/end",
        "first/last",
        "love/hate",
        "like/dislike",
        "positive/negative",
        "pros/cons",
        "advantages/disadvantages",
        "benefits/drawbacks",
        "true/false",
        "same/different",
        "similar/different",
        "agree/disagree",
        "easy/hard",
        "easy/difficult",
        "cheap/expensive",
        "melting/boiling",
        "freezing/boiling",
        "rational/irrational",
        "real/imaginary",
        "odd/even",
        "prime/composite",
        "male/female",
        "men/women",
        "boys/girls",
        "husband/wife",
        "import/export",
        "input/output",
        "maximum/minimum",
        "max/min",
        "add/subtract",
        "addition/subtraction",
        "multiply/divide",
        "multiplication/division",
        "sum/difference",
        "sum/product",
        "product/quotient",
        "area/perimeter",
        "offense/defense",
        "attack/defend",
        "day/night",
        "summer/winter",
        "spring/autumn",
        "spring/fall",
        "morning/evening",
        "sunrise/sunset",
        "legal/illegal",
        "official/unofficial",
        "public/private",
        "internal/external",
        "domestic/foreign",
        "urban/rural",
        "acid/base",
        "acidic/basic",
    ]
}
_OPPOSITES |= {
    frozenset(pair.split("/"))
    for pair in (
        "actor/actress",
        "actors/actresses",
        "king/queen",
        "prince/princess",
        "upper/lower",
        "major/minor",
        "great/minor",
        "celsius/fahrenheit",
        "send/receive",
    )
}
# Words whose place in a sentence says little about what is asked, and the words that frame a
# reading task ("According to the text, ...", "Based on the following passage, ...").
_FUNCTION_WORDS = {
    "according",
    "text",
    "passage",
    "paragraph",
    "article",
    "reference",
    "given",
    "based",
    "following",
    "provided",
    "most",
    "a",
    "an",
    "the",
    "of",
    "to",
    "in",
    "on",
    "for",
    "and",
    "or",
    "is",
    "are",
    "was",
    "were",
    "be",
    "do",
    "does",
    "did",
    "what",
    "which",
    "who",
    "how",
    "why",
    "when",
    "where",
    "that",
    "this",
    "it",
    "its",
    "with",
    "as",
    "by",
    "at",
    "from",
    "me",
    "my",
    "you",
    "your",
    "i",
    "we",
    "our",
    "can",
    "could",
    "would",
    "should",
    "some",
    "any",
    "between",
    "difference",
    "differences",
}
_QUESTION_KINDS = ("how many", "how much", "how long", "how old", "how far")


def _words(text: str) -> tuple[str, ...]:
    return tuple(_NUMBER_WORDS.get(w, w) for w in _WORD.findall(text.lower()))


_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")


class _Reading:
    """What the tests below read off one text, each part computed when first asked for."""

    def __init__(self, text: str) -> None:
        self.text = text

    @cached_property
    def words(self) -> tuple[str, ...]:
        return _words(self.text)

    @cached_property
    def word_set(self) -> frozenset[str]:
        return frozenset(self.words)

    @cached_property
    def numbers(self) -> Counter[str]:
        return Counter(w for w in self.words if w[:1].isdigit())

    @cached_property
    def negations(self) -> int:
        return sum(w in _NEGATIONS or w.endswith("n't") for w in self.words)

    @cached_property
    def content(self) -> frozenset[str]:
        """Content words, crudely singular ("superheroes" / "superhero" stay different words)."""
        return frozenset(
            w[:-1] if w.endswith("s") and len(w) > 3 else w
            for w in self.words
            if len(w) > 2 and w not in _FUNCTION_WORDS
        )

    @cached_property
    def content_words(self) -> frozenset[str]:
        """Content words as written (:attr:`content` without the crude singular)."""
        return frozenset(w for w in self.words if len(w) > 2 and w not in _FUNCTION_WORDS)

    @cached_property
    def question_kinds(self) -> frozenset[str]:
        joined = f" {' '.join(self.words)} "
        return frozenset(kind for kind in _QUESTION_KINDS if f" {kind} " in joined)

    @cached_property
    def sentences(self) -> tuple[tuple[str, ...], ...]:
        parts = _SENTENCE_END.split(self.text.strip())
        return tuple(words for part in parts if (words := _words(part)))


# A dedup stage compares one request with many others (a cluster's keeper with each member, and
# each pair again when its clusters are checked), so the readings of the most recent texts are
# kept. Only texts up to _CACHED_CHARS are kept, which bounds the cache (~100 MB at most; ~3 KB
# per 20-word request).
_CACHED_TEXTS = 8192
_CACHED_CHARS = 1000


@lru_cache(maxsize=_CACHED_TEXTS)
def _cached_reading(text: str) -> _Reading:
    return _Reading(text)


def _read(text: str) -> _Reading:
    return _cached_reading(text) if len(text) <= _CACHED_CHARS else _Reading(text)


def same_question(first: str, second: str) -> bool:
    """The strict test for requests that share their material (one passage, one list): the
    material dominates any similarity of the whole, so the questions must use the same content
    words. "Who amongst these are women: <list>" is not "Who amongst these are tennis players:
    <list>"."""
    return _read(first).content == _read(second).content


_MATERIAL = re.compile(r"[:\n]")


def split_material(text: str, min_chars: int = 40) -> tuple[str, str]:
    """(question, material) when a request carries its material after a colon or a line break
    (a list to classify, a passage); else (text, "")."""
    found = _MATERIAL.search(text)
    if found is None or len(text) - found.end() < min_chars:
        return text, ""
    return text[: found.start()], text[found.end() :]


# Minimal pairs are short requests; in longer ones an added or reworded sentence is common and
# harmless, so only the strongest signal (an opposite) is checked there.
_SHORT_WORDS = 30


def _opposite(only_a: frozenset[str], only_b: frozenset[str]) -> str | None:
    for word in sorted(only_a):
        for other in sorted(only_b):
            if frozenset((word, other)) in _OPPOSITES:
                return f"opposite: {word} / {other}"
            longer, shorter = (word, other) if len(word) > len(other) else (other, word)
            if any(longer == prefix + shorter for prefix in _PREFIXES):
                return f"opposite: {word} / {other}"
    return None


def contrast(first: str, second: str) -> str | None:
    """Why two similar requests ask different things (``None``: nothing found)."""
    question_a, material_a = split_material(first)
    question_b, material_b = split_material(second)
    if material_a and material_b and not same_question(question_a, question_b):
        return "another question about the same material"
    reading_a, reading_b = _read(first), _read(second)
    a, b = reading_a.words, reading_b.words
    if reading_a.numbers != reading_b.numbers:
        return "numbers"
    set_a, set_b = reading_a.word_set, reading_b.word_set
    only_a, only_b = set_a - set_b, set_b - set_a
    if max(len(a), len(b)) > _SHORT_WORDS:
        # A long request that adds a sentence ("My car is not that old!") is still the same
        # request: only an opposite tells two long ones apart here.
        return _opposite(only_a, only_b)
    if reading_a.negations != reading_b.negations:
        return "negation"
    opposite = _opposite(only_a, only_b)
    if opposite:
        return opposite
    scope = (only_a | only_b) & _SCOPE
    if scope:
        return f"scope: {', '.join(sorted(scope))}"
    kinds_a, kinds_b = reading_a.question_kinds, reading_b.question_kinds
    for kind in _QUESTION_KINDS:
        if (kind in kinds_a) != (kind in kinds_b):
            return f"question: {kind}"
    # One request is the other plus a condition: "... in the fewest moves possible".
    content_a, content_b = reading_a.content_words, reading_b.content_words
    if content_a != content_b and (content_a <= content_b or content_b <= content_a):
        extra = content_a ^ content_b
        if len(extra) >= 2:
            return f"added: {', '.join(sorted(extra))}"
    # The words both share, in another order: "Fahrenheit to Celsius" / "Celsius to Fahrenheit".
    shared = set_a & set_b
    order_a = [w for w in a if w in shared and w not in _FUNCTION_WORDS]
    order_b = [w for w in b if w in shared and w not in _FUNCTION_WORDS]
    if Counter(order_a) == Counter(order_b) and order_a != order_b:
        return "order"
    return None


def changed_ask(first: str, second: str) -> str | None:
    """Two long requests that share their setting but end in another ask: the last sentence of
    each was changed, and each keeps content words the other lacks ("... a scenario that involves
    voluntary donation." / "... that involves manipulated, coerced donation."). A sentence only
    added ("My car is not that old!") is not a changed ask."""
    a, b = _read(first).sentences, _read(second).sentences
    if not a or not b or a[-1] == b[-1] or a[-1] in b or b[-1] in a:
        return None
    ask_a = {w for w in a[-1] if len(w) > 2 and w not in _FUNCTION_WORDS}
    ask_b = {w for w in b[-1] if len(w) > 2 and w not in _FUNCTION_WORDS}
    only_a, only_b = ask_a - ask_b, ask_b - ask_a
    if only_a and only_b:
        return f"another ask: {', '.join(sorted(only_a))} / {', '.join(sorted(only_b))}"
    return None


def contrast_with_material(
    first: str, second: str, material_a: str = "", material_b: str = ""
) -> str | None:
    """:func:`contrast` of two requests whose material (a record's ``input``: a passage, a list)
    may be given apart from the request: two requests about material both carry must ask the
    same question (:func:`same_question`); long requests must not end in another ask
    (:func:`changed_ask`)."""
    if material_a.strip() and material_b.strip() and not same_question(first, second):
        return "another question about the same material"
    found = contrast(first, second)
    if found is None and max(len(_read(first).words), len(_read(second).words)) > _SHORT_WORDS:
        found = changed_ask(first, second)
    return found
