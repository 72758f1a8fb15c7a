"""Checkpoints between stages: one folder per stage, one part per shard, written atomically
(see :mod:`curate.util.files`), so a SIGKILL at any point leaves a state resume can use."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from curate.run.writer import write_parquet
from curate.stages.base import Stage
from curate.util.files import after_write, io_error
from curate.util.storage import ObjectPath, RunPath, read_parquet

SUCCESS = "_SUCCESS"


def write_parquet_atomic(table: pa.Table, path: RunPath) -> None:
    if isinstance(path, ObjectPath):
        # One object, written whole (a multipart upload completes only on close): atomic.
        write_parquet(table, path, checkpoint=True)
        after_write()
        return
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet(table, tmp, checkpoint=True)
        os.replace(tmp, path)
    except OSError as exc:
        raise io_error(path, exc) from None
    after_write()


def read_json(path: RunPath) -> Any:
    return json.loads(path.read_text())


def read_table(path: RunPath) -> pa.Table:
    return read_parquet(path)


class StageDir:
    """One stage's checkpoint folder: a part, its rejects and its stats file per shard."""

    def __init__(self, path: RunPath) -> None:
        self.path = path

    def part(self, batch: int) -> RunPath:
        return self.path / f"part-{batch:05d}.parquet"

    def rejects(self, batch: int) -> RunPath:
        return self.path / "rejects" / f"part-{batch:05d}.parquet"

    def stats(self, batch: int) -> RunPath:
        return self.path / f"part-{batch:05d}.json"

    @property
    def done(self) -> bool:
        return (self.path / SUCCESS).is_file()

    def success(self) -> dict[str, Any]:
        result: dict[str, Any] = read_json(self.path / SUCCESS)
        return result

    def reject_parts(self) -> list[RunPath]:
        directory = self.path / "rejects"
        return sorted(directory.glob("part-*.parquet")) if directory.is_dir() else []


class ShardParts:
    """Re-iterable view of a stage's shards, read one at a time."""

    def __init__(self, stage_dir: StageDir, count: int) -> None:
        self.stage_dir = stage_dir
        self.count = count

    def __iter__(self) -> Iterator[pa.Table]:
        for batch in range(self.count):
            yield read_table(self.stage_dir.part(batch))

    def __len__(self) -> int:
        return self.count


def stage_label(index: int, stage: Stage) -> str:
    """A stage's checkpoint folder name: ``01-normalize_v1``."""
    return f"{index:02d}-{stage.name}"
