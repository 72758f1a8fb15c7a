"""Crash-safe files: every write goes to a temporary name and is renamed into place.

A file that exists under its final name is complete. ``CURATE_FAULT_AFTER_WRITES=N`` makes the
process SIGKILL itself right after its N-th checkpoint write: the fault tests use it to stop a run
at exact points (a real SIGKILL, nothing is cleaned up). With ``CURATE_FAULT_ONLY_WORKERS=1`` only
pool worker processes die.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import RunDirError
from curate.run.writer import write_parquet
from curate.stages.base import Stage

SUCCESS = "_SUCCESS"

_writes = 0


_MAIN_PID = os.getpid()


def _after_write() -> None:
    global _writes
    _writes += 1
    limit = os.environ.get("CURATE_FAULT_AFTER_WRITES")
    if not limit or _writes < int(limit):
        return
    # CURATE_FAULT_ONLY_WORKERS: only pool workers (spawned processes) die.
    if (
        os.environ.get("CURATE_FAULT_ONLY_WORKERS")
        and os.getpid() == _MAIN_PID
        and not _is_worker()
    ):
        return
    os.kill(os.getpid(), signal.SIGKILL)


def _is_worker() -> bool:
    import multiprocessing

    return multiprocessing.parent_process() is not None


def _io_error(path: Path, exc: OSError) -> RunDirError:
    return RunDirError(f"cannot write {path}: {exc.strerror or exc}")


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet(table, tmp, checkpoint=True)
        os.replace(tmp, path)
    except OSError as exc:
        raise _io_error(path, exc) from None
    _after_write()


def write_json_atomic(payload: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise _io_error(path, exc) from None
    _after_write()


def write_bytes_atomic(payload: bytes, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(payload)
        os.replace(tmp, path)
    except OSError as exc:
        raise _io_error(path, exc) from None
    _after_write()


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def read_table(path: Path) -> pa.Table:
    return pq.read_table(path)


class StageDir:
    """One stage's checkpoint folder: a part, its rejects and its stats file per shard."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def part(self, batch: int) -> Path:
        return self.path / f"part-{batch:05d}.parquet"

    def rejects(self, batch: int) -> Path:
        return self.path / "rejects" / f"part-{batch:05d}.parquet"

    def stats(self, batch: int) -> Path:
        return self.path / f"part-{batch:05d}.json"

    @property
    def done(self) -> bool:
        return (self.path / SUCCESS).is_file()

    def success(self) -> dict[str, Any]:
        result: dict[str, Any] = read_json(self.path / SUCCESS)
        return result

    def reject_parts(self) -> list[Path]:
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
