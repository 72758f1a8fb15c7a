"""One shard through one stage, checkpointed: the unit of work both engines schedule."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from curate.engine.checkpoint import StageDir, read_table, write_parquet_atomic
from curate.stages.base import GlobalStage, Stage, StageResult, reason_counts
from curate.util.files import write_json_atomic
from curate.util.storage import RunPath


def checkpoint_shard(
    result: StageResult, rows_in: int, target: StageDir, batch: int, seconds: float
) -> dict[str, Any]:
    """Write one shard's kept rows and rejects; return its stats."""
    write_parquet_atomic(result.kept, target.part(batch))
    if result.rejected.num_rows:
        write_parquet_atomic(result.rejected, target.rejects(batch))
    return {
        "batch": batch,
        "rows_in": rows_in,
        "rows_out": result.kept.num_rows,
        "dropped": reason_counts(result.rejected),
        "seconds": seconds,
    }


def process_shard(stage: Stage, source: RunPath, target: StageDir, batch: int) -> dict[str, Any]:
    """Run a per-batch stage on one shard and checkpoint it (stats last = shard complete)."""
    table = read_table(source)
    started = time.perf_counter()
    result = stage.run(table)
    stats = checkpoint_shard(result, table.num_rows, target, batch, time.perf_counter() - started)
    # ``stage`` is a fresh copy per shard (see _run_per_batch): this is this shard's info.
    info = stage.manifest_info()
    if info is not None:
        stats["info"] = info
    write_json_atomic(stats, target.stats(batch))
    return stats


def warm_shard(stage: GlobalStage, source: RunPath) -> int:
    """A global stage's :meth:`~GlobalStage.warm_cache` on one shard (a worker's task)."""
    table = read_table(source)
    stage.warm_cache(table)
    return table.num_rows


def apply_shards(
    stage: GlobalStage,
    source: StageDir,
    target: StageDir,
    batches: int,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """A fitted global stage's ``apply`` over every shard in order, each shard checkpointed."""
    shard_stats = []
    for batch in range(batches):
        table = read_table(source.part(batch))
        started = time.perf_counter()
        result = stage.apply(table)
        shard_stats.append(
            checkpoint_shard(result, table.num_rows, target, batch, time.perf_counter() - started)
        )
        if progress is not None:
            progress(table.num_rows, batch + 1)
    return shard_stats
