"""Language identification for instruction records.

``identify(texts, backend=...)`` labels a batch of texts with a language code and a score:

1. prose only: code blocks, inline code, URLs, e-mails and HTML tags removed; cut to ``max_chars``
   (the first few hundred characters decide the language as well as the whole text);
2. texts with fewer than ``min_letters`` letters (empty, numbers, URLs, emoji, ``x = 5``) are ``und``;
3. the Unicode-script rule (:mod:`curate.lib.langid.script`): kana -> ja, Hangul -> ko, Han -> zh, …;
4. the rest goes to the backend: ``langdetect`` (langdetect's profiles scored deterministically in
   batches, :mod:`curate.lib.langid.langdetect_nb`) or ``fasttext`` (the bundled lid.176.ftz);
5. results are cached by text hash within the process: repeated texts (shared Dolly contexts, FLAN
   templates) are detected once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate.lib.langid.clean import prose
from curate.lib.langid.script import SINGLE_LANGUAGE_SCRIPTS, count_scripts, script_rule

Backend = Literal["langdetect", "fasttext"]
Prior = Literal["web", "uniform"]
UND = "und"
_CACHE_LIMIT = 200_000
_DETECT_CHUNK = 2_048


@dataclass
class LangResult:
    lang: list[str]
    score: np.ndarray
    method: list[
        str
    ]  # "script", the backend name, "too_few_letters", or "cache" hits keep their method


_cache: dict[tuple[str, bool, bytes], tuple[str, float, str]] = {}


def detect_backend(
    texts: Sequence[str], backend: Backend, prior: Prior = "web"
) -> tuple[list[str | None], np.ndarray]:
    if backend == "fasttext":
        from curate.lib.langid import fasttext_backend

        return fasttext_backend.detect(texts)
    from curate.lib.langid.langdetect_nb import LangdetectProfiles

    return LangdetectProfiles.shared().detect(texts, prior)


def known_languages(backend: Backend) -> frozenset[str]:
    """Every code :func:`identify` can return with ``backend`` (the backend's own, the script
    rule's, and ``und``); reads the backend's label list, no input."""
    codes = {UND, "ja", "ko", "zh", *SINGLE_LANGUAGE_SCRIPTS.values()}
    if backend == "fasttext":
        from curate.lib.langid import fasttext_backend

        codes.update(fasttext_backend.labels())
    else:
        from langdetect import detector_factory

        codes.update(name.split("-")[0] for name in os.listdir(detector_factory.PROFILES_DIRECTORY))
    return frozenset(codes)


def screen(
    cleaned: pa.Array, min_letters: int, script_first: bool
) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """What needs no detector: ``und`` for too few letters, the script rule for single-language
    scripts. Returns labels, scores, methods and the rows left for the backend."""
    n = len(cleaned)
    counts = count_scripts(cleaned)
    langs: list[str] = [UND] * n
    score = np.zeros(n)
    method = ["too_few_letters"] * n
    # A CJK character or Hangul syllable carries about a word: it counts as three letters.
    weighted = counts.letters + 2 * (counts.han + counts.kana + counts.hangul)
    enough = weighted >= max(min_letters, 1)
    pending = np.flatnonzero(enough)
    if script_first and len(pending):
        by_script, script_score = script_rule(cleaned, counts)
        still = []
        for i in pending:
            code = by_script[i]
            if code is None:
                still.append(i)
            else:
                langs[i], score[i], method[i] = code, float(script_score[i]), "script"
        pending = np.asarray(still, dtype=np.int64)
    return langs, score, method, pending


def identify(
    texts: pa.Array | Sequence[str],
    backend: Backend = "langdetect",
    *,
    max_chars: int = 512,
    min_letters: int = 3,
    script_first: bool = True,
    prior: Prior = "web",
    cache: bool = True,
) -> LangResult:
    """Language and score for every text (``und`` with score 0 when there is too little text)."""
    values = (
        texts
        if isinstance(texts, pa.Array | pa.ChunkedArray)
        else pa.array(list(texts), pa.string())
    )
    cleaned = prose(values, max_chars)
    langs, score, method, pending = screen(cleaned, min_letters, script_first)
    if len(pending):
        text_list = pc.take(cleaned, pa.array(pending)).to_pylist()
        todo: list[int] = []
        keys: list[tuple[str, bool, bytes]] = []
        for j, text in enumerate(text_list):
            key = (f"{backend}:{prior}", script_first, xxhash.xxh3_128_digest(text.encode("utf-8")))
            keys.append(key)
            hit = _cache.get(key) if cache else None
            if hit is None:
                todo.append(j)
            else:
                row = int(pending[j])
                langs[row], score[row], method[row] = hit
        if todo:
            # Bounded chunks: the n-gram ids of a chunk are Python ints (~1.5k per 512-char text).
            found: list[str | None] = []
            prob_parts: list[np.ndarray] = []
            for start in range(0, len(todo), _DETECT_CHUNK):
                chunk = [text_list[j] for j in todo[start : start + _DETECT_CHUNK]]
                chunk_found, chunk_probs = detect_backend(chunk, backend, prior)
                found.extend(chunk_found)
                prob_parts.append(np.asarray(chunk_probs))
            probs = np.concatenate(prob_parts)
            if cache and len(_cache) + len(todo) > _CACHE_LIMIT:
                _cache.clear()
            for j, code, prob in zip(todo, found, probs, strict=True):
                row = int(pending[j])
                result = (code or UND, round(float(prob), 4) if code else 0.0, backend)
                langs[row], score[row], method[row] = result
                if cache:
                    _cache[keys[j]] = result
    return LangResult(langs, score, method)


__all__ = ["UND", "Backend", "LangResult", "identify"]
