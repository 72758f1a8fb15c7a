"""Unicode-script pre-rule: languages whose script says it all, decided before any detector runs.

Character-n-gram detectors are weak exactly where the script is decisive: Chinese containing Latin
identifiers ("要在数据库中查询 JSONField") gets labeled Korean, Norwegian or English by langdetect.
Counting scripts is one Arrow regex pass per script over the whole batch.

- any kana (hiragana/katakana) with CJK dominating the Latin words -> ``ja``
- Hangul dominating -> ``ko``
- Han without kana, dominating the Latin words -> ``zh``
- a script used by one language only (Thai, Greek, Hebrew, Georgian, Armenian, Tamil, …) holding at
  least half the letters -> that language

"Dominating" compares CJK characters with Latin *words* (a Han character is about a word), so a
Chinese sentence with a few English identifiers is still Chinese, and an English sentence quoting
你好 is not. Scripts shared by several languages (Latin, Cyrillic, Arabic, Devanagari) are left to
the detector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.util.text import ASCII_LETTERS, count_class

# Scripts used by a single language among those the detectors know.
SINGLE_LANGUAGE_SCRIPTS: dict[str, str] = {
    "Thai": "th",
    "Greek": "el",
    "Hebrew": "he",
    "Georgian": "ka",
    "Armenian": "hy",
    "Tamil": "ta",
    "Telugu": "te",
    "Kannada": "kn",
    "Malayalam": "ml",
    "Gujarati": "gu",
    "Gurmukhi": "pa",
    "Sinhala": "si",
    "Khmer": "km",
    "Lao": "lo",
    "Myanmar": "my",
    "Ethiopic": "am",
    "Tibetan": "bo",
}


@dataclass
class ScriptCounts:
    letters: np.ndarray
    han: np.ndarray
    kana: np.ndarray
    hangul: np.ndarray
    latin_words: np.ndarray
    single: dict[str, np.ndarray]


def _count(values: pa.Array, pattern: str) -> np.ndarray:
    return pc.count_substring_regex(values, pattern).to_numpy(zero_copy_only=False).astype(np.int64)


def count_scripts(values: pa.Array) -> ScriptCounts:
    n = len(values)
    # On ASCII rows both are counted by byte (numpy); the regex runs on the other rows.
    letters = count_class(values, r"\pL", ASCII_LETTERS, runs=False)
    latin_words = count_class(values, r"\p{Latin}+", ASCII_LETTERS, runs=True)
    han = np.zeros(n, np.int64)
    kana = np.zeros(n, np.int64)
    hangul = np.zeros(n, np.int64)
    single: dict[str, np.ndarray] = {}
    # An ASCII text has no Han, kana, Hangul or single-language script: count those on the
    # others only (most rows of an English corpus are ASCII).
    other = np.flatnonzero(
        ~pc.fill_null(pc.string_is_ascii(values), True).to_numpy(zero_copy_only=False)
    )
    if len(other):
        subset = values.take(pa.array(other))
        han[other] = _count(subset, r"\p{Han}")
        kana[other] = _count(subset, r"[\p{Hiragana}\p{Katakana}]")
        hangul[other] = _count(subset, r"\p{Hangul}")
        # Only count scripts that occur at all in the batch (one cheap pass for all of them first).
        any_single = "|".join(rf"\p{{{name}}}" for name in SINGLE_LANGUAGE_SCRIPTS)
        if pc.any(pc.match_substring_regex(subset, any_single)).as_py():
            for name in SINGLE_LANGUAGE_SCRIPTS:
                counted = np.zeros(n, np.int64)
                counted[other] = _count(subset, rf"\p{{{name}}}")
                single[name] = counted
    return ScriptCounts(letters, han, kana, hangul, latin_words, single)


def script_rule(
    values: pa.Array, counts: ScriptCounts | None = None
) -> tuple[list[str | None], np.ndarray]:
    """(language or None, score) per text from its scripts alone; score = the deciding script's share."""
    c = counts or count_scripts(values)
    n = len(values)
    langs: list[str | None] = [None] * n
    score = np.zeros(n)
    cjk = c.han + c.kana
    units = cjk + c.hangul + c.latin_words
    with np.errstate(invalid="ignore", divide="ignore"):
        cjk_share = np.where(units > 0, cjk / np.maximum(units, 1), 0.0)
        hangul_share = np.where(units > 0, c.hangul / np.maximum(units, 1), 0.0)
    ja = (c.kana > 0) & (cjk >= c.latin_words) & (cjk > c.hangul)
    ko = ~ja & (c.hangul > 0) & (c.hangul >= c.latin_words) & (c.hangul >= cjk)
    zh = ~ja & ~ko & (c.han > 0) & (c.han >= c.latin_words) & (c.han > c.hangul)
    for mask, code, share in (
        (ja, "ja", cjk_share),
        (ko, "ko", hangul_share),
        (zh, "zh", cjk_share),
    ):
        for i in np.flatnonzero(mask):
            langs[i] = code
            score[i] = share[i]
    decided = ja | ko | zh
    for name, count in c.single.items():
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(c.letters > 0, count / np.maximum(c.letters, 1), 0.0)
        mask = ~decided & (share >= 0.5)
        for i in np.flatnonzero(mask):
            langs[i] = SINGLE_LANGUAGE_SCRIPTS[name]
            score[i] = share[i]
        decided |= mask
    return langs, np.round(score, 4)
