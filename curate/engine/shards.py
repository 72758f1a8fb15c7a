"""One shard through one stage, checkpointed: the unit of work both engines schedule."""

from __future__ import annotations

import pickle
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather

from curate.engine.checkpoint import StageDir, read_table, write_parquet_atomic
from curate.stages.base import GlobalStage, SplitFitStage, Stage, StageResult, reason_counts
from curate.util.files import write_json_atomic
from curate.util.storage import RunPath, parquet_file


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


def process_shard_copy(
    pristine: bytes, source: RunPath, target: StageDir, batch: int
) -> dict[str, Any]:
    """:func:`process_shard` with a fresh copy of the stage (pickled once by the engine): every
    shard's manifest info is its own, whether it runs in this process or a worker."""
    return process_shard(pickle.loads(pristine), source, target, batch)


def shard_offsets(source: StageDir, batches: int) -> list[int]:
    """The first global row number of each shard, and the total last (from parquet metadata)."""
    sizes = [parquet_file(source.part(b)).metadata.num_rows for b in range(batches)]
    return np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()


def fit_shard_part(stage: GlobalStage, source: RunPath) -> Any:
    """A global stage's :meth:`~GlobalStage.fit_part` of one shard (a worker's task)."""
    return stage.fit_part(read_table(source))


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


def shard_copies(stage: GlobalStage, offsets: list[int]) -> list[bytes]:
    """Each shard's pickled copy of a fitted stage (see :meth:`GlobalStage.shard_copy`; the
    whole stage is pickled once when its copies are itself)."""
    whole: bytes | None = None
    copies = []
    for batch in range(len(offsets) - 1):
        copy = stage.shard_copy(batch, offsets[batch], offsets[batch + 1] - offsets[batch])
        if copy is stage:
            whole = whole if whole is not None else pickle.dumps(stage)
            copies.append(whole)
        else:
            copies.append(pickle.dumps(copy))
    return copies


def apply_shard_copy(
    pristine: bytes, source: RunPath, target: StageDir, batch: int
) -> dict[str, Any]:
    """One shard through a fitted global stage's copy (pickled once by the engine, fit
    included; see :meth:`~GlobalStage.applies_per_shard`), checkpointed; its stats carry what
    the copy counted under ``applied``."""
    stage = pickle.loads(pristine)
    table = read_table(source)
    started = time.perf_counter()
    result = stage.apply_shard(table, batch)
    stats = checkpoint_shard(result, table.num_rows, target, batch, time.perf_counter() - started)
    stats["applied"] = stage.applied_info()
    return stats


# ------------------------------------------------------------------ band grouping on local disk
#
# A global stage that fits in steps (``SplitFitStage``: minhash_dedup) runs its band grouping
# through files instead of memory: each shard's band rows are written split into ``groups``
# files by ``part`` (every row of a part lands in one group), then each group's files are read
# back together and turned into candidate pairs. Memory is one shard's band rows, then one
# group's, never every signature at once; both steps run on the worker pool. ``fit_pairs``
# then gives the state ``fit`` would have built, bit for bit.


def spill_band_rows(
    stage: SplitFitStage,
    source: RunPath,
    rows_of_shard: tuple[int, int],
    offset: int,
    spill: Path,
    task: int,
    groups: int,
) -> tuple[int, int]:
    """Write the band rows of ``rows_of_shard`` (first row, row count) of one shard, whose first
    row is document ``offset``, as ``spill/group-GGG/shard-TTTTT.arrow``; (rows, max doc)."""
    first, count = rows_of_shard
    rows = stage.band_rows(read_table(source).slice(first, count), offset + first)
    group = pc.bit_wise_and(rows.column("part"), pa.scalar(groups - 1, pa.uint32()))
    for index in range(groups):
        part = rows.filter(pc.equal(group, pa.scalar(index, pa.uint32())))
        folder = spill / f"group-{index:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        feather.write_feather(part, folder / f"shard-{task:05d}.arrow", compression="uncompressed")
    docs = rows.column("doc")
    return rows.num_rows, int(pc.max(docs).as_py()) if rows.num_rows else -1


def group_pairs(stage: SplitFitStage, spill: Path, index: int, max_doc: int) -> np.ndarray:
    """The candidate pairs of one group: every shard's rows of its parts, read back together."""
    folder = spill / f"group-{index:03d}"
    tables = [feather.read_table(path) for path in sorted(folder.glob("shard-*.arrow"))]
    if not tables:
        return np.zeros(0, np.uint64)
    pairs = stage.band_pairs(pa.concat_tables(tables), max_doc)
    shutil.rmtree(folder, ignore_errors=True)
    return pairs
