"""Writing an export's data files: parquet or JSON Lines shards, or a ``save_to_disk`` folder; the chat layout."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curate.records import RECORD_SCHEMA
from curate.run.writer import ROW_GROUP_ROWS, dataset_writer
from curate.util.chat import CHAT_MESSAGE_COLUMNS, chat_messages

CHAT_SCHEMA = pa.schema(
    [
        RECORD_SCHEMA.field("id"),
        RECORD_SCHEMA.field("source"),
        RECORD_SCHEMA.field("messages").with_nullable(False),
    ]
)
# What a chat export reads from a record (the ones the run has): its id and source, and what
# chat_messages reads.
CHAT_INPUT_COLUMNS = ("id", "source", *CHAT_MESSAGE_COLUMNS)

# License identifiers the Hub accepts in a card (https://huggingface.co/docs/hub/repositories-licenses).


@dataclass
class DataStats:
    """What the card needs to know about the exported rows."""

    rows: int
    by_source: Counter[str]
    langs: Counter[str]
    schema: pa.Schema

    def add(self, table: pa.Table | pa.RecordBatch) -> None:
        self.rows += table.num_rows
        for column, counter in (("source", self.by_source), ("lang", self.langs)):
            if column in table.schema.names:
                counter.update(v for v in table.column(column).to_pylist() if v is not None)


def _shard_name(index: int, count: int, suffix: str) -> str:
    return f"train-{index:05d}-of-{count:05d}.{suffix}"


def record_batches(path: Path, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    yield from pq.ParquetFile(path).iter_batches(batch_size=ROW_GROUP_ROWS, columns=columns)


def _chat_columns(path: Path) -> list[str]:
    names = pq.read_schema(path).names
    return [c for c in (*CHAT_INPUT_COLUMNS, "lang") if c in names]


def _chat_table(batch: pa.RecordBatch) -> pa.Table:
    rows = batch.to_pylist()
    return pa.table(
        {
            "id": pa.array([r["id"] for r in rows], pa.string()),
            "source": pa.array([r.get("source") or "" for r in rows], pa.string()),
            "messages": pa.array(
                [chat_messages(r) for r in rows], CHAT_SCHEMA.field("messages").type
            ),
        },
        schema=CHAT_SCHEMA,
    )


def _write_parquet(source: Path, target: Path, chat: bool, stats: DataStats) -> None:
    """Rewrite one run data file (as records or chat), with the run writer's options.

    Row groups are exactly ``ROW_GROUP_ROWS`` (the run's files keep one row group per shard, and
    ``datasets`` reads in batches of the first row group's size), and an empty file has no row
    group at all (``datasets`` fails on a zero-row row group).
    """
    schema = CHAT_SCHEMA if chat else pq.read_schema(source)
    with dataset_writer(target, schema) as writer:
        for batch in record_batches(source, _chat_columns(source) if chat else None):
            stats.add(batch)
            table = _chat_table(batch) if chat else pa.Table.from_batches([batch])
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)


def _json_value(value: Any) -> Any:
    # JSON has no NaN/Infinity: non-finite floats are written as null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def _write_jsonl(source: Path, target: Path, chat: bool, stats: DataStats) -> None:
    with target.open("w", encoding="utf-8", newline="\n") as out:
        for batch in record_batches(source, _chat_columns(source) if chat else None):
            stats.add(batch)
            table = _chat_table(batch) if chat else batch
            for row in table.to_pylist():
                out.write(json.dumps(_json_value(row), ensure_ascii=False, separators=(",", ":")))
                out.write("\n")


def write_shards(
    data_files: list[Path], partial: Path, format: str, chat: bool
) -> tuple[list[str], DataStats]:
    """parquet/jsonl: one shard per run data file, named the Hub way under ``data/``."""
    (partial / "data").mkdir()
    schema = CHAT_SCHEMA if chat else pq.read_schema(data_files[0])
    stats = DataStats(0, Counter(), Counter(), schema)
    names = []
    for index, source in enumerate(data_files):
        name = f"data/{_shard_name(index, len(data_files), format)}"
        target = partial / name
        if format == "jsonl":
            _write_jsonl(source, target, chat, stats)
        else:
            _write_parquet(source, target, chat, stats)
        names.append(name)
    return names, stats


def write_hf(data_files: list[Path], partial: Path, chat: bool) -> tuple[list[str], DataStats]:
    """hf: ``Dataset.save_to_disk`` into the folder (loadable with ``datasets.load_from_disk``)."""
    import datasets

    work = partial / ".work"
    work.mkdir()
    # Staged through our parquet writer: datasets' reader needs sane row groups (see _write_parquet).
    stats = DataStats(
        0, Counter(), Counter(), CHAT_SCHEMA if chat else pq.read_schema(data_files[0])
    )
    sources = []
    for index, data_file in enumerate(data_files):
        staged = work / f"part-{index:05d}.parquet"
        _write_parquet(data_file, staged, chat, stats)
        sources.append(staged)
    loaded = datasets.Dataset.from_parquet(
        [str(s) for s in sources], cache_dir=str(work / "cache"), split="train"
    )
    assert isinstance(loaded, datasets.Dataset)
    # A fingerprint and info of our own: the defaults carry cache paths and would differ per export.
    digest = hashlib.sha256(b"curate-export-hf-v1" + (b"chat" if chat else b"records"))
    for source in sources:
        with source.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    dataset = datasets.Dataset(
        loaded.data,
        info=datasets.DatasetInfo(
            description="Exported by curate; see README.md.", features=loaded.features
        ),
        split=datasets.Split.TRAIN,
        fingerprint=digest.hexdigest()[:16],
    )
    dataset.save_to_disk(str(partial))
    state = json.loads((partial / "state.json").read_text(encoding="utf-8"))
    names = [entry["filename"] for entry in state["_data_files"]]
    del dataset, loaded
    shutil.rmtree(work)
    return names, stats


@contextmanager
def quiet_datasets() -> Iterator[None]:
    """No ``datasets`` progress bars while exporting (restored afterwards)."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        yield
        return
    enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if enabled:
            datasets.enable_progress_bars()
