"""Answer options: find them in a question's text, and render them in a fixed or seeded style.

FLAN renders options one way ("OPTIONS:\\n- a\\n- b") and also in varied styles; when the
markers are letters or numbers the target becomes the marker, so a model learns to answer "(B)"
as well as the option's text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import xxhash

# A header line that introduces a block of one-per-line options.
_HEADER = re.compile(
    r"^\s*(?:options|choices|answer choices|possible answers|select from|pick from)\s*:?\s*$",
    re.IGNORECASE,
)
# One option line: "- text", "* text", "(A) text", "- (A) text", "A) text", "A. text", "1. text".
_LINE = re.compile(
    r"^\s*(?:[-*•]\s*)?(?:\((?P<pl>[A-Za-z]|\d{1,2})\)|(?P<dl>[A-Z]|\d{1,2})[.)](?=\s))?\s*(?P<text>\S.*?)\s*$"
)
_BULLET = re.compile(r"^\s*[-*•]\s+\S")
_LABELLED = re.compile(r"^\s*(?:[-*•]\s*)?(?:\((?:[A-Za-z]|\d{1,2})\)|(?:[A-Z]|\d{1,2})[.)]\s)")
# An answer given as a marker: "(C)", "C", "C.", "c)", "3".
_ANSWER_MARKER = re.compile(r"^\(?(?P<label>[A-Za-z]|\d{1,2})[.)]?$")
_INLINE_LABEL = re.compile(r"\(([A-Z])\)")


@dataclass(frozen=True)
class ParsedOptions:
    """Options found at the end of a text: the stem before them, the options, their labels."""

    stem: str
    options: list[str]
    labels: list[str]  # "A", "B"... or "1", "2"... as written; empty when the options were bulleted


def _unescape(text: str) -> str:
    # FLAN CoT TSVs carry "\n" as two characters; treat them as line breaks when there are no real ones.
    if "\n" not in text and "\\n" in text:
        return text.replace("\\n", "\n")
    return text


def parse_options(text: str) -> ParsedOptions | None:
    """Options written at the end of ``text``, or None.

    Two layouts are recognised: a header line ("Options:") followed by one option per line, and
    a last line made only of consecutive "(A) x (B) y" choices (MMLU style).
    """
    if not text:
        return None
    lines = _unescape(text).rstrip().split("\n")
    for start in range(len(lines) - 1, -1, -1):
        if _HEADER.match(lines[start]):
            parsed = _block(lines[start + 1 :])
            if parsed is not None:
                stem = "\n".join(lines[:start]).strip()
                return ParsedOptions(stem, parsed[0], parsed[1]) if stem else None
            break
    return _inline(lines)


def _block(lines: list[str]) -> tuple[list[str], list[str]] | None:
    body = [line for line in lines if line.strip()]
    if len(body) < 2:
        return None
    if not (
        all(_LABELLED.match(line) for line in body) or all(_BULLET.match(line) for line in body)
    ):
        return None
    options: list[str] = []
    labels: list[str] = []
    for line in body:
        match = _LINE.match(line)
        if match is None:
            return None
        label = match.group("pl") or match.group("dl")
        if label:
            labels.append(label.upper())
        options.append(match.group("text"))
    if labels and len(labels) != len(options):
        return None
    return options, labels


def _inline(lines: list[str]) -> ParsedOptions | None:
    last = lines[-1].strip()
    if not last.startswith("(A)"):
        return None
    parts = _INLINE_LABEL.split(last)
    # ["", "A", " text ", "B", " text ", ...]
    labels = parts[1::2]
    texts = [p.strip() for p in parts[2::2]]
    expected = [chr(ord("A") + i) for i in range(len(labels))]
    if parts[0].strip() or len(labels) < 2 or labels != expected or not all(texts):
        return None
    stem = "\n".join(lines[:-1]).strip()
    return ParsedOptions(stem, texts, labels) if stem else None


def answer_index(answer: str, options: list[str], labels: list[str] | None = None) -> int | None:
    """Which option ``answer`` names: by marker ("(C)", "C"), by text, or as a "Sentence A:" prefix."""
    answer = answer.strip()
    if not answer or not options:
        return None
    folded = answer.casefold()
    for index, option in enumerate(options):
        if option.strip().casefold() == folded:
            return index
    match = _ANSWER_MARKER.match(answer)
    if match and labels:
        label = match.group("label").upper()
        if label in labels:
            return labels.index(label)
    for index, option in enumerate(options):
        if option.casefold().startswith(folded + ":"):
            return index
    return None


@dataclass(frozen=True)
class Marker:
    """How one option is marked, and what the target is when the options are marked this way."""

    name: str
    kind: str  # "text" (target is the option's text), "letter" or "number" (target is the marker)
    display: str  # format with {label} and {text}
    target: str  # format with {label}; unused when kind == "text"

    def label(self, index: int) -> str:
        if self.kind == "letter":
            return chr(ord("A") + index)
        if self.kind == "lower":
            return chr(ord("a") + index)
        return str(index + 1)

    def line(self, index: int, text: str) -> str:
        return self.display.format(label=self.label(index), text=text)

    def answer(self, index: int, text: str) -> str:
        return text if self.kind == "text" else self.target.format(label=self.label(index))


MARKERS: tuple[Marker, ...] = (
    Marker("dash", "text", "- {text}", ""),
    Marker("bullet", "text", "* {text}", ""),
    Marker("paren_letter", "letter", "({label}) {text}", "({label})"),
    Marker("letter_dot", "letter", "{label}. {text}", "{label}"),
    Marker("letter_paren", "letter", "{label}) {text}", "{label}"),
    Marker("lower_paren", "lower", "{label}) {text}", "{label}"),
    Marker("number_dot", "number", "{label}. {text}", "{label}"),
    Marker("paren_number", "number", "({label}) {text}", "({label})"),
)
HEADERS: tuple[str, ...] = (
    "OPTIONS:",
    "Options:",
    "Choose from:",
    "Pick one of the following:",
    "Possible answers:",
    "Select from the following.",
    "Choices:",
    "Answer choices:",
    "Available options:",
)
FIXED_HEADER = "OPTIONS:"
FIXED_MARKER = MARKERS[0]


@dataclass(frozen=True)
class OptionsStyle:
    header: str
    marker: Marker

    def block(self, options: list[str]) -> str:
        marker = self._marker_for(len(options))
        lines = [marker.line(i, text) for i, text in enumerate(options)]
        return "\n".join([self.header, *lines]) if self.header else "\n".join(lines)

    def answer(self, options: list[str], index: int) -> str:
        return self._marker_for(len(options)).answer(index, options[index])

    def _marker_for(self, count: int) -> Marker:
        # More options than letters: fall back to numbers.
        if self.marker.kind in ("letter", "lower") and count > 26:
            return MARKERS[6]
        return self.marker


FIXED_STYLE = OptionsStyle(FIXED_HEADER, FIXED_MARKER)


def random_style(seed: int, template_id: str, record_id: str) -> OptionsStyle:
    """A header and marker scheme chosen per (record, template) from the seed: stable across runs."""
    value = xxhash.xxh64_intdigest(f"{seed}\x1f{template_id}\x1f{record_id}".encode())
    return OptionsStyle(HEADERS[value % len(HEADERS)], MARKERS[(value >> 20) % len(MARKERS)])
