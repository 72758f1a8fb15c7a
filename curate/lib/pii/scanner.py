"""Find spans in a column of texts and redact them consistently within a record.

A :class:`Scanner` runs each detector's RE2 prefilter over the whole Arrow column (C++, no Python
per row) and the detector itself only on the rows the prefilter lets through. Overlapping spans of
two types keep the one found first in :data:`PRIORITY` (a card number is not also a phone number).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from curate.lib.pii.detectors import Detector

# When two types claim overlapping text, the earlier one wins.
PRIORITY = ("secret", "email", "card", "iban", "ip", "phone")


@dataclass(frozen=True)
class Found:
    type: str
    start: int
    end: int


class Scanner:
    def __init__(
        self, detectors: Mapping[str, Detector], allow: Sequence[str] = (), salt: str = ""
    ) -> None:
        order = [t for t in PRIORITY if t in detectors] + [
            t for t in detectors if t not in PRIORITY
        ]
        self.detectors = [detectors[t] for t in order]
        self.allow = {value.lower() for value in allow}
        self._salt = salt.encode()

    def digest(self, value: str) -> str:
        """A keyed hash of a found value for the audit: joins equal values, reveals none."""
        return hmac.new(self._salt, value.encode(), hashlib.sha256).hexdigest()[:16]

    def scan(self, texts: pa.Array) -> dict[int, list[Found]]:
        """Spans per row index (rows with none are absent)."""
        texts = pc.fill_null(texts, "")
        found: dict[int, list[Found]] = {}
        for detector in self.detectors:
            if detector.prefilter:
                mask = pc.match_substring_regex(texts, detector.prefilter)
                rows = pc.indices_nonzero(mask).to_pylist()
            else:
                rows = range(len(texts))
            for row in rows:
                text = texts[row].as_py()
                for start, end in detector.find(text):
                    if end <= start or self._allowed(text[start:end], detector.name):
                        continue
                    spans = found.setdefault(row, [])
                    if any(start < other.end and other.start < end for other in spans):
                        continue
                    spans.append(Found(detector.name, start, end))
        for spans in found.values():
            spans.sort(key=lambda f: f.start)
        return found

    def _allowed(self, value: str, kind: str) -> bool:
        if not self.allow:
            return False
        lowered = value.lower()
        if lowered in self.allow:
            return True
        if kind == "email":
            domain = lowered.rsplit("@", 1)[-1]
            return domain in self.allow or f"@{domain}" in self.allow
        return False


class Placeholders:
    """Typed placeholders for one record: the same value always gets the same one; a second
    distinct e-mail is ``<EMAIL_2>``."""

    def __init__(self) -> None:
        self._given: dict[tuple[str, str], str] = {}
        self._count: dict[str, int] = {}

    def __call__(self, kind: str, value: str) -> str:
        key = (kind, value)
        if key not in self._given:
            n = self._count.get(kind, 0) + 1
            self._count[kind] = n
            self._given[key] = f"<{kind.upper()}>" if n == 1 else f"<{kind.upper()}_{n}>"
        return self._given[key]


def redact(text: str, spans: Sequence[Found], placeholder: Placeholders, redacted: set[str]) -> str:
    """``text`` with every span whose type is in ``redacted`` replaced by its placeholder."""
    parts: list[str] = []
    last = 0
    for span in spans:
        if span.type not in redacted:
            continue
        parts.append(text[last : span.start])
        parts.append(placeholder(span.type, text[span.start : span.end]))
        last = span.end
    parts.append(text[last:])
    return "".join(parts)
