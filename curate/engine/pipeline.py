"""``Pipeline``: stages chained over in-memory Arrow tables, without an executor.

``Pipeline(stages).run(table)`` is the Python API: global stages get ``fit`` over every batch
before ``apply``. Running a recipe with shards, checkpoints and a run directory is
:func:`curate.engine.run.run_recipe`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from curate.engine.manifest import add_counts, stage_entry
from curate.records import REJECT_SCHEMA, empty_records
from curate.stages.base import GlobalStage, Stage, StageResult, reason_counts

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


class Pipeline:
    """Chain stages over Arrow batches. Usable without the CLI::

    result = Pipeline([Normalize(), ExactDedup()]).run(table)
    """

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = list(stages)

    def run(self, table: pa.Table) -> StageResult:
        batches, rejects, _ = self.run_batches([table])
        kept = pa.concat_tables(batches) if batches else empty_records()
        rejected = pa.concat_tables(rejects) if rejects else REJECT_SCHEMA.empty_table()
        return StageResult(kept, rejected)

    def run_batches(
        self, batches: list[pa.Table], log: Log = _quiet
    ) -> tuple[list[pa.Table], list[pa.Table], list[dict[str, Any]]]:
        rejects: list[pa.Table] = []
        stats: list[dict[str, Any]] = []
        for index, stage in enumerate(self.stages):
            started = time.perf_counter()
            rows_in = sum(b.num_rows for b in batches)
            if isinstance(stage, GlobalStage):
                stage.fit(batches)
                results = [stage.apply(b) for b in batches]
            else:
                results = [stage.run(b) for b in batches]
            batches = [r.kept for r in results if r.kept.num_rows]
            stage_rejects = [r.rejected for r in results if r.rejected.num_rows]
            rejects.extend(stage_rejects)
            dropped: dict[str, int] = {}
            for r in stage_rejects:
                add_counts(dropped, reason_counts(r))
            entry = stage_entry(
                index,
                stage,
                rows_in,
                sum(b.num_rows for b in batches),
                dropped,
                time.perf_counter() - started,
                stage.manifest_info(),
            )
            stats.append(entry)
            log(
                f"stage {index} {stage.name}: {entry['rows_in']} -> {entry['rows_out']} rows {entry['dropped'] or ''}"
            )
        return batches, rejects, stats


__all__ = ["Pipeline"]
