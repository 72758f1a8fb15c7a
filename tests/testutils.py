"""Paths shared by tests (importable as ``testutils``: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from curate.ingest.builder import RowBuilder
from curate.ingest.parse import ReadContext
from curate.util.storage import ObjectPath, RunPath

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data_samples"
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()

needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason="../shared/data is not present"
)


def demo_command(out: str | Path | ObjectPath, settings: list[str]) -> list[str]:
    """``curate run data_samples/recipe.yaml --out OUT SETTINGS`` in a fresh interpreter."""
    return [
        sys.executable,
        "-m",
        "curate.cli",
        "run",
        "data_samples/recipe.yaml",
        "--out",
        str(out),
        *settings,
    ]


def run_demo(
    out: str | Path | ObjectPath, settings: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """:func:`demo_command` run from the repository with ``env`` added to this environment."""
    return subprocess.run(
        demo_command(out, settings),
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def run_digests(run_dir: RunPath) -> dict[str, str]:
    """SHA-256 of each parquet file in a run's data/ and rejects/ (local or on object storage):
    two runs with equal digests wrote the same bytes."""
    import hashlib

    if isinstance(run_dir, ObjectPath):
        names = [path.relative_to(run_dir) for path in run_dir.files()]
    else:
        names = [path.relative_to(run_dir).as_posix() for path in sorted(run_dir.rglob("*"))]
    return {
        name: hashlib.sha256((run_dir / name).read_bytes()).hexdigest()
        for name in names
        if name.split("/")[0] in ("data", "rejects") and name.endswith(".parquet")
    }


def normalized_samples(names: Iterable[str]) -> pa.Table:
    """The records of these ``data_samples`` files (each its own source, named after the file),
    normalized: what the stages after ``normalize`` see."""
    from curate.ingest import read_file
    from curate.stages.normalize import Normalize

    tables = [read_file(SAMPLES / name, source=name.split(".")[0]).records for name in names]
    return Normalize().run(pa.concat_tables(tables)).kept


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


def pool_tasks(monkeypatch: Any) -> list[str]:
    """The names of the functions the local engine hands to ``_map`` (its worker pool), one per
    task, recorded while the tasks run as usual."""
    from curate.engine.local import LocalExecutor

    tasks: list[str] = []
    original = LocalExecutor._map

    def spy(engine: LocalExecutor, function: Any, arguments: list[Any], label: str) -> Any:
        tasks.extend(function.__name__ for _ in arguments)
        return original(engine, function, arguments, label)

    monkeypatch.setattr(LocalExecutor, "_map", spy)
    return tasks
