"""langdetect's language profiles, scored deterministically and in batches.

langdetect (Nakatani Shuyo's algorithm) classifies a text by naive Bayes over character 1-3-grams,
but estimates it by *sampling*: seven trials, each multiplying the language probabilities by the
profile of up to thousands of randomly drawn n-grams, in a pure-Python loop over 55 languages. That
is where its ~100-250 texts/s and its run-to-run noise come from.

Here the same profiles and the same n-gram extraction (langdetect's own character normalization,
URL/e-mail removal, Latin-vs-non-Latin cleaning and all-caps rule) feed the exact naive-Bayes sum the
sampler approximates: ``log P(lang | text) = sum over n-grams of log(alpha / 10000 + P(ngram | lang))``
with langdetect's default smoothing (alpha = 0.5), plus a log prior (the share of web pages per
language, ``curate/data/lang_prior.tsv``; langdetect's own default is uniform), normalized over
languages. The prior only decides for texts of a few words, where it lifts accuracy on 1-5-word
texts from 75 % to 80 %. One numpy gather-and-sum
per batch replaces the sampling loop: deterministic by construction and about 10-20x faster. A
word's n-grams never cross a space, so each distinct word's sum is computed once and cached; a
text then costs one gather per word rather than per n-gram (another 2-3x).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from importlib import resources

import numpy as np

_ALPHA = 0.5
_BASE_FREQ = 10000
_CHUNK_ROWS = 1 << 18  # vectors gathered per numpy step
_WORD_CACHE = 200_000  # distinct words whose vectors are cached (~45 MB of float32 at most)
_CAPS = re.compile(r"[^\W\d_]*[A-Z\u00c0-\u00de\u0391-\u03a9\u0410-\u042f]{2}")


class LangdetectProfiles:
    """The langdetect profiles as a (n-gram x language) matrix of log-probabilities."""

    _lock = threading.Lock()
    _shared: LangdetectProfiles | None = None

    def __init__(self) -> None:
        from langdetect import detector_factory
        from langdetect.detector import Detector
        from langdetect.utils.ngram import NGram

        factory = detector_factory.DetectorFactory()
        factory.load_profile(detector_factory.PROFILES_DIRECTORY)
        self.full_codes: list[str] = list(factory.langlist)
        self.langs: list[str] = [_base_code(code) for code in factory.langlist]
        self._web_prior: np.ndarray | None = None
        grams = list(factory.word_lang_prob_map)
        probs = np.array([factory.word_lang_prob_map[g] for g in grams], dtype=np.float64)
        self.log_prob = np.log(probs + _ALPHA / _BASE_FREQ).astype(np.float32)
        self.index: dict[str, int] = {g: i for i, g in enumerate(grams)}
        # Per-character normalization as one str.translate table over the BMP (langdetect's rules).
        table: dict[int, str] = {}
        for code in range(0x10000):
            ch = chr(code)
            if 0xD800 <= code <= 0xDFFF:
                continue
            normalized = NGram.normalize(ch)
            if normalized != ch:
                table[code] = normalized
        self.table = table
        self.url_re = Detector.URL_RE
        self.mail_re = Detector.MAIL_RE
        self.normalize_vi = NGram.normalize_vi
        # Distinct output codes: zh-cn and zh-tw both become zh (their posteriors add up).
        self.codes = sorted(set(self.langs))
        self.code_of = np.array([self.codes.index(lang) for lang in self.langs])
        # Word-vector cache: word -> row of ``_vectors`` (its n-grams' summed log-probabilities).
        self._vocab: dict[str, int] = {}
        self._vectors = np.zeros((0, len(self.langs)), np.float32)
        self._sizes = np.zeros(0, np.int64)
        self._cache_lock = threading.Lock()

    @classmethod
    def shared(cls) -> LangdetectProfiles:
        """One instance per process (loading takes about a second)."""
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def words(self, text: str) -> list[str]:
        """The space-delimited words of ``text`` after langdetect's normalization and cleaning."""
        # Each step only where it can change something (the same words, faster): an address
        # needs "http", an e-mail "@", Vietnamese marks and non-Latin letters a non-ASCII text.
        if "http" in text:
            text = self.url_re.sub(" ", text)
        if "@" in text:
            text = self.mail_re.sub(" ", text)
        plain = text.isascii()
        if not plain:
            text = self.normalize_vi(text)
        text = text.translate(self.table)
        return (text if plain else _clean_latin(text)).split()

    def ngram_ids(self, text: str) -> list[int]:
        """Ids of the profile n-grams of ``text``, extracted the way langdetect does it."""
        ids: list[int] = []
        for word in self.words(text):
            ids.extend(self._word_ids(word))
        return ids

    def _word_rows(self, words: list[str]) -> list[int]:
        """The row of each word in the word-vector cache, adding the words it lacks (a word's
        row holds the sum of its n-grams' log-probabilities per language, and its n-gram count)."""
        vocab = self._vocab
        new: list[str] = []
        rows: list[int] = []
        for word in words:
            row = vocab.get(word)
            if row is None:
                row = vocab[word] = len(vocab)
                new.append(word)
            rows.append(row)
        if new:
            self._add_vectors(len(vocab) - len(new), new)
        return rows

    def _add_vectors(self, first: int, words: list[str]) -> None:
        """Fill cache rows ``first`` … for ``words``: one gather and one sum for all of them."""
        needed = first + len(words)
        if self._vectors.shape[0] < needed:
            grown = np.zeros((max(needed, 2 * self._vectors.shape[0]), len(self.langs)), np.float32)
            grown[:first] = self._vectors[:first]
            self._vectors = grown
            sizes = np.zeros(grown.shape[0], np.int64)
            sizes[:first] = self._sizes[:first]
            self._sizes = sizes
        ids_per_word = [self._word_ids(word) for word in words]
        sizes = np.fromiter((len(ids) for ids in ids_per_word), np.int64, len(words))
        self._sizes[first:needed] = sizes
        vectors = np.zeros((len(words), len(self.langs)), np.float32)
        flat = np.fromiter((i for ids in ids_per_word for i in ids), np.int64, int(sizes.sum()))
        owners = np.repeat(np.arange(len(words)), sizes)
        _add_rows(vectors, owners, self.log_prob[flat])
        self._vectors[first:needed] = vectors

    def _word_ids(self, word: str) -> tuple[int, ...]:
        """Profile n-grams of one space-delimited word: its letters, and 2-/3-grams of " word "."""
        index = self.index
        ids: list[int] = []
        if _CAPS.search(word):
            _caps_word(word, index, ids)
            return tuple(ids)
        padded = f" {word} "
        size = len(word)
        for gram in (
            *word,
            *(padded[i : i + 2] for i in range(size + 1)),
            *(padded[i : i + 3] for i in range(size)),
        ):
            found = index.get(gram)
            if found is not None:
                ids.append(found)
        return tuple(ids)

    def web_prior(self) -> np.ndarray:
        """log P(lang) from ``curate/data/lang_prior.tsv`` (share of web pages per language)."""
        text = resources.files("curate").joinpath("data/lang_prior.tsv").read_text(encoding="utf-8")
        shares: dict[str, float] = {}
        for line in text.splitlines():
            if line.strip() and not line.startswith("#"):
                code, percent = line.split("\t")
                shares[code.strip()] = float(percent)
        floor = min(shares.values())
        return np.log(np.array([shares.get(code, floor) for code in self.full_codes]) / 100.0)

    def raw_scores(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per text and profile language: the naive-Bayes log-likelihood sum; and n-grams per text.

        A text's sum is the sum of its words' cached sums (a word's n-grams never cross a space),
        so each distinct word is scored once and a text costs one gather per word, not per n-gram.
        """
        n = len(texts)
        scores = np.zeros((n, len(self.langs)), dtype=np.float64)
        counts = np.zeros(n, dtype=np.int64)
        words_per_text = np.zeros(n, dtype=np.int64)
        with self._cache_lock:
            first = 0
            word_rows: list[int] = []
            for row, text in enumerate(texts):
                words = self.words(text)
                if len(self._vocab) + len(words) > _WORD_CACHE:
                    # The cache is full: score the texts gathered so far, then start it afresh.
                    self._sum_words(scores, counts, first, word_rows, words_per_text[first:row])
                    first, word_rows = row, []
                    self._vocab.clear()
                words_per_text[row] = len(words)
                word_rows.extend(self._word_rows(words))
            self._sum_words(scores, counts, first, word_rows, words_per_text[first:])
        return scores, counts

    def _sum_words(
        self,
        scores: np.ndarray,
        counts: np.ndarray,
        first: int,
        word_rows: list[int],
        words_per_text: np.ndarray,
    ) -> None:
        """Add to ``scores``/``counts`` from row ``first`` on: each text's cached word sums."""
        if not word_rows:
            return
        flat = np.asarray(word_rows, dtype=np.int64)
        owners = np.repeat(np.arange(len(words_per_text)), words_per_text)
        np.add.at(counts[first:], owners, self._sizes[flat])
        view = scores[first:]
        for start in range(0, len(flat), _CHUNK_ROWS):
            part = slice(start, start + _CHUNK_ROWS)
            _add_rows(view, owners[part], self._vectors[flat[part]])

    def detect(
        self, texts: Sequence[str], prior: str = "web"
    ) -> tuple[list[str | None], np.ndarray]:
        """(language, posterior) per text; ``None`` where no profile n-gram was found.

        ``prior="web"`` weighs languages by their share of the web (it decides only when a text has
        a handful of n-grams); ``"uniform"`` is langdetect's own default.
        """
        scores, counts = self.raw_scores(texts)
        return self._posterior(scores, counts, prior)

    def judge_scores(
        self, texts: Sequence[str], prior: str = "web"
    ) -> tuple[np.ndarray, np.ndarray, list[str | None], np.ndarray]:
        """One pass for :func:`curate.lib.langid.request.judge`: log-likelihood per text and code
        (no prior; variants such as zh-cn/zh-tw by their best), n-grams per text, and the
        labels and posteriors :meth:`detect` gives."""
        scores, counts = self.raw_scores(texts)
        loglik = np.full((len(texts), len(self.codes)), -np.inf)
        for j, code_index in enumerate(self.code_of):
            loglik[:, code_index] = np.maximum(loglik[:, code_index], scores[:, j])
        langs, probs = self._posterior(scores, counts, prior)
        return loglik, counts, langs, probs

    def _posterior(
        self, scores: np.ndarray, counts: np.ndarray, prior: str
    ) -> tuple[list[str | None], np.ndarray]:
        n = len(counts)
        scores = scores.copy()
        if prior == "web":
            if self._web_prior is None:
                self._web_prior = self.web_prior()
            scores += self._web_prior
        # Posterior over languages, then merge variants (zh-cn + zh-tw).
        scores -= scores.max(axis=1, keepdims=True)
        post = np.exp(scores)
        post /= post.sum(axis=1, keepdims=True)
        merged = np.zeros((n, len(self.codes)))
        for j, code_index in enumerate(self.code_of):
            merged[:, code_index] += post[:, j]
        best = merged.argmax(axis=1)
        prob = merged[np.arange(n), best]
        langs: list[str | None] = [
            self.codes[b] if c else None for b, c in zip(best, counts, strict=True)
        ]
        return langs, np.where(counts > 0, prob, 0.0)


def _add_rows(scores: np.ndarray, rows: np.ndarray, gathered: np.ndarray) -> None:
    """scores[row] += sum of gathered rows with that row index (rows sorted ascending)."""
    if len(rows) == 0:
        return
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    # float32 accumulation: 4-8x faster than float64 here, and far more precise than the margins
    # between languages (sums of at most a few thousand terms of about -10).
    sums = np.add.reduceat(gathered, starts, axis=0)
    scores[rows[starts]] += sums


def _base_code(code: str) -> str:
    return code.split("-")[0]


_LATIN = re.compile(r"[A-Za-z]")
_NON_LATIN = re.compile(r"[\u0300-\u1e9f\u1f00-\U0010ffff]")


def _clean_latin(text: str) -> str:
    """langdetect's cleaning: drop ASCII letters when non-Latin letters outnumber them twice over."""
    latin = len(_LATIN.findall(text))
    if not latin:
        return text
    non_latin = len(_NON_LATIN.findall(text))
    if latin * 2 < non_latin:
        return _LATIN.sub("", text)
    return text


def _caps_word(word: str, index: dict[str, int], ids: list[int]) -> None:
    """langdetect's n-gram buffer for a word with consecutive capitals (skips all-caps runs)."""
    grams = " "
    capital = False
    for ch in (*word, " "):
        last = grams[-1]
        if last == " ":
            grams = " "
            capital = False
            if ch == " ":
                return
        elif len(grams) >= 3:
            grams = grams[1:]
        grams += ch
        if ch.isupper():
            if last.isupper():
                capital = True
        else:
            capital = False
        if capital:
            continue
        for n in (1, 2, 3):
            if len(grams) < n:
                break
            gram = grams[-n:]
            if gram != " ":
                found = index.get(gram)
                if found is not None:
                    ids.append(found)
