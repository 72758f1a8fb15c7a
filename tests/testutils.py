"""Paths shared by tests (importable as ``testutils``: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from curate.ingest.builder import RowBuilder
from curate.ingest.parse import ReadContext

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data_samples"
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()

needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason="../shared/data is not present"
)


def records_table(rows: Iterable[dict[str, Any]], source: str = "s", **defaults: Any) -> pa.Table:
    """A record table built the way the readers build one (content ids included)."""
    builder = RowBuilder(ReadContext(source, f"{source}.jsonl"))
    for index, row in enumerate(rows):
        builder.add(index, **{**defaults, **row})
    return builder.records()


def tiny_tokenizer_json(path: Path, corpus: list[str]) -> Path:
    """A byte-level BPE trained in memory, the template markers as special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=800,
        special_tokens=["<|im_start|>", "<|im_end|>", "<s>", "</s>", "<bos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    tok.save(str(path))
    return path
